package wal

import (
	"errors"
	"fmt"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/frame"
	"github.com/keelraft/raft/storage/internal/lock"
)

var (
	// ErrCorrupt is returned when stored data fails its checksum or is
	// inconsistent. Errors wrapping it are *CorruptError, naming the file
	// and offset.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrFailed is returned by every call after a write, fsync or other
	// modifying file-system operation failed. The store must be closed and
	// reopened; reopening recovers every acknowledged write.
	ErrFailed = errors.New("wal: failed")
	// ErrClosed is returned by calls on a closed store.
	ErrClosed = errors.New("wal: closed")
	// ErrLocked is returned by Open and OpenStable when another process,
	// or another open Log or Stable in this process, is using the same
	// log directory or stable file. Errors wrapping it name the lock
	// file.
	ErrLocked = lock.ErrInUse
)

// CorruptError says where stored data is corrupt. It matches ErrCorrupt
// with errors.Is.
type CorruptError struct {
	// Segment is the ID of the damaged segment (0 for the stable file).
	Segment uint64
	// File is the damaged file's path.
	File string
	// Offset is the offset of the first damaged record or batch.
	Offset int64
	// Reason says what is wrong.
	Reason string
}

// Error names the segment (or file) and offset.
func (e *CorruptError) Error() string {
	if e.Segment != 0 {
		return fmt.Sprintf("wal: segment %d offset %d: %s: %v", e.Segment, e.Offset, e.Reason, ErrCorrupt)
	}
	return fmt.Sprintf("wal: %s offset %d: %s: %v", e.File, e.Offset, e.Reason, ErrCorrupt)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// VersionError says a file is in a format version newer than this build
// reads. It matches raft.ErrUnsupportedVersion with errors.Is, and not
// ErrCorrupt: the file is not damaged, and it is left exactly as it is,
// for the newer build that wrote it.
type VersionError struct {
	// Segment is the ID of the segment (0 for the stable file).
	Segment uint64
	// File is the file's path.
	File string
	// Version is the version the file has; Newest is the newest this
	// build reads.
	Version, Newest int
}

// Error names the file and both versions.
func (e *VersionError) Error() string {
	what := "segment"
	if e.Segment == 0 {
		what = "stable store"
	}
	return fmt.Sprintf("wal: %s %s: format version %d, this build reads up to %d: %v",
		what, e.File, e.Version, e.Newest, raft.ErrUnsupportedVersion)
}

// Unwrap returns raft.ErrUnsupportedVersion.
func (e *VersionError) Unwrap() error { return raft.ErrUnsupportedVersion }

// newerVersion returns the version of a file b that starts with family
// and a version byte newer than newest, unless it is a damaged byte of
// this build's format; see frame.NewerVersion. b is restored before
// newerVersion returns.
func newerVersion(b []byte, family string, newest int, intact func([]byte) bool) (int, bool) {
	return frame.NewerVersion(b, family, newest, intact)
}
