package wal

import (
	"fmt"
	"path/filepath"

	"github.com/keelraft/raft/storage/internal/lock"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// lockName is the lock file of a log directory. It is not a segment name
// (%020d.wal), so recovery passes it by.
const lockName = "LOCK"

// lockFile takes the lock at path, for the store named by what, so that
// two stores never recover and write the same files. Only the operating
// system's files are locked: an in-memory test file system is one
// process's, and its crash tests abandon a store unclosed as a killed
// process would, whose locks the kernel drops.
func lockFile(fsys vfs.FS, path, what string) (*lock.Lock, error) {
	if fsys != vfs.OS {
		return nil, nil
	}
	if err := fsys.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lk, err := lock.Acquire(path)
	if err != nil {
		return nil, fmt.Errorf("wal: %s: %w", what, err)
	}
	return lk, nil
}
