package multiwal

import (
	"errors"
	"fmt"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/lock"
)

var (
	// ErrCorrupt is returned when stored data fails its checksum or is
	// inconsistent. Errors wrapping it are *CorruptError, naming the
	// segment and offset.
	ErrCorrupt = errors.New("multiwal: corrupt")
	// ErrFailed is returned by every call after a write, fsync or other
	// modifying file-system operation failed. The WAL must be closed and
	// reopened; reopening recovers every acknowledged write. A failed
	// fsync is never retried.
	ErrFailed = errors.New("multiwal: failed")
	// ErrClosed is returned by calls on a closed WAL.
	ErrClosed = errors.New("multiwal: closed")
	// ErrLocked is returned by Open when another process, or another open
	// WAL in this process, is using the directory.
	ErrLocked = lock.ErrInUse
)

// CorruptError says where stored data is corrupt. It matches ErrCorrupt
// with errors.Is.
type CorruptError struct {
	// Segment is the ID of the damaged segment.
	Segment uint64
	// File is the damaged file's path.
	File string
	// Offset is the offset of the first damaged record or batch.
	Offset int64
	// Reason says what is wrong.
	Reason string
}

// Error names the segment and offset.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("multiwal: segment %d (%s) offset %d: %s: %v", e.Segment, e.File, e.Offset, e.Reason, ErrCorrupt)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// VersionError says a segment is in a format version newer than this
// build reads. It matches raft.ErrUnsupportedVersion with errors.Is, not
// ErrCorrupt; Open leaves every file as it was.
type VersionError struct {
	// Segment is the segment's ID.
	Segment uint64
	// File is the segment's path.
	File string
	// Version is the version the segment has; Newest is the newest this
	// build reads.
	Version, Newest int
}

// Error names the file and both versions.
func (e *VersionError) Error() string {
	return fmt.Sprintf("multiwal: segment %s: format version %d, this build reads up to %d: %v",
		e.File, e.Version, e.Newest, raft.ErrUnsupportedVersion)
}

// Unwrap returns raft.ErrUnsupportedVersion.
func (e *VersionError) Unwrap() error { return raft.ErrUnsupportedVersion }
