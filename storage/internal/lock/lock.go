// Package lock keeps two stores from opening the same files at once.
//
// A store takes an exclusive lock on a file next to its data when it opens
// and releases it when it closes. Two stores on the same directory, in two
// processes or in one, would otherwise both recover and write it: a
// recovery truncating what the other just appended, or both appending at
// the same offset. The lock is advisory: it stops keel's stores and tools
// that take it, nothing else.
//
// Across processes the lock is flock(2) where the platform has it (see
// lock_unix.go); elsewhere only the in-process check applies. The kernel
// drops a process's flocks when it exits, however it exits, so a crash
// never leaves a directory locked. Within a process, locks are also
// tracked by absolute path, because where flock is emulated with fcntl
// locks (NFS on Linux) a process never conflicts with itself.
//
// The lock file is never removed: removing it while another opener waits
// to lock it would let two openers lock two different files of one name.
package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// ErrInUse means the lock is held: another process, or another open store
// in this process, is using the files.
var ErrInUse = errors.New("in use: another process, or another open in this process, holds its lock")

var (
	mu   sync.Mutex
	held = map[string]bool{} // absolute paths of the locks this process holds
)

// Lock is a held lock.
type Lock struct {
	path string
	f    *os.File
}

// Acquire takes the lock at path, creating the file if needed. It does not
// wait: a lock held elsewhere is an error wrapping ErrInUse, naming path.
func Acquire(path string) (*Lock, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if held[abs] {
		return nil, fmt.Errorf("%s: %w", abs, ErrInUse)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%s: %w", abs, ErrInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", abs, err)
	}
	held[abs] = true
	return &Lock{path: abs, f: f}, nil
}

// Path returns the lock file's absolute path.
func (l *Lock) Path() string { return l.path }

// Release releases the lock. Releasing a nil or released Lock does nothing.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	if l.f == nil {
		return nil
	}
	delete(held, l.path)
	// Closing the only descriptor of the open file drops its flock.
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.path, err)
	}
	return nil
}
