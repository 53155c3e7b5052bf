package frame

import (
	"fmt"
	"log/slog"
)

// The defaults of Sizes.
const (
	DefaultSegmentSize  = 64 << 20
	DefaultMaxEntrySize = 64 << 20
	DefaultAlign        = 4096
)

// Sizes are the size options both segment logs take.
type Sizes struct {
	SegmentSize  int64
	MaxEntrySize int
	Align        int
}

// Fill replaces zero sizes with the defaults and validates them. Errors
// start with pkg, the calling package's name.
func (s *Sizes) Fill(pkg string) error {
	if s.Align == 0 {
		s.Align = DefaultAlign
	}
	if s.Align < 1 || s.Align > MaxAlign || s.Align&(s.Align-1) != 0 {
		return fmt.Errorf("%s: Align %d is not a power of two between 1 and %d", pkg, s.Align, MaxAlign)
	}
	if s.SegmentSize == 0 {
		s.SegmentSize = DefaultSegmentSize
	}
	if s.SegmentSize < 4096 || s.SegmentSize < 4*int64(s.Align) || s.SegmentSize%int64(s.Align) != 0 || s.SegmentSize > 1<<40 {
		return fmt.Errorf("%s: SegmentSize %d must be a multiple of Align (%d), at least 4 KiB and 4 Align, and at most 1 TiB", pkg, s.SegmentSize, s.Align)
	}
	if s.MaxEntrySize == 0 {
		s.MaxEntrySize = DefaultMaxEntrySize
	}
	if s.MaxEntrySize < 1 || s.MaxEntrySize > 1<<30 {
		return fmt.Errorf("%s: MaxEntrySize %d must be between 1 and 1 GiB", pkg, s.MaxEntrySize)
	}
	return nil
}

// Logger returns l, or a logger that discards everything when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
