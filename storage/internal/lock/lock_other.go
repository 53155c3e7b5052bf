//go:build !unix

package lock

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("lock held")

// lockFile does nothing: without flock only the in-process check of
// Acquire applies, and two processes on one directory are not detected.
// (Windows has LockFileEx; keel does not use it yet.)
func lockFile(*os.File) error { return nil }
