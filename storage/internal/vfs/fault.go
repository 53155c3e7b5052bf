package vfs

import (
	"errors"
	"fmt"
	"sync"
)

// ErrInjected is the error FaultFS injects.
var ErrInjected = errors.New("vfs: injected fault")

// Op is a kind of operation FaultFS counts and can fail.
type Op uint8

const (
	// OpWrite is File.Write or File.WriteAt. A failing write writes half
	// of its bytes first, like a short write.
	OpWrite Op = iota
	// OpSync is File.Sync. A failing sync syncs nothing.
	OpSync
	// OpRename is FS.Rename.
	OpRename
	// OpCreate is FS.Create.
	OpCreate
	// OpRemove is FS.Remove.
	OpRemove
	// OpSyncDir is FS.SyncDir.
	OpSyncDir
	// OpTruncate is File.Truncate.
	OpTruncate
	// OpAllocate is File.Allocate.
	OpAllocate
	numOps
)

var opNames = [numOps]string{"write", "sync", "rename", "create", "remove", "syncdir", "truncate", "allocate"}

// String returns the operation's name.
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// FaultFS wraps an FS and makes chosen operations fail with ErrInjected.
// It is safe for concurrent use.
type FaultFS struct {
	inner FS

	mu       sync.Mutex
	counts   [numOps]int
	failAt   [numOps]int
	injected int
}

// NewFaultFS returns a FaultFS that passes everything to inner until told
// to fail.
func NewFaultFS(inner FS) *FaultFS { return &FaultFS{inner: inner} }

// FailNth makes the nth operation of kind op from now on (n >= 1) fail.
// Only that one fails; later ones succeed again, so a store that retries
// is caught acknowledging after a failure.
func (f *FaultFS) FailNth(op Op, n int) {
	f.mu.Lock()
	f.failAt[op] = f.counts[op] + n
	f.mu.Unlock()
}

// Count returns how many operations of kind op were attempted.
func (f *FaultFS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// Injected returns how many faults were injected.
func (f *FaultFS) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// hit counts an operation and reports whether it must fail.
func (f *FaultFS) hit(op Op) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[op]++
	if f.counts[op] == f.failAt[op] {
		f.injected++
		return true
	}
	return false
}

func injected(op Op, name string) error {
	return fmt.Errorf("%s %s: %w", op, name, ErrInjected)
}

// Create implements FS.
func (f *FaultFS) Create(name string) (File, error) {
	if f.hit(OpCreate) {
		return nil, injected(OpCreate, name)
	}
	file, err := f.inner.Create(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{fs: f, f: file, name: name}, nil
}

// Open implements FS.
func (f *FaultFS) Open(name string) (File, error) {
	file, err := f.inner.Open(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{fs: f, f: file, name: name}, nil
}

// Rename implements FS.
func (f *FaultFS) Rename(oldname, newname string) error {
	if f.hit(OpRename) {
		return injected(OpRename, oldname)
	}
	return f.inner.Rename(oldname, newname)
}

// Remove implements FS.
func (f *FaultFS) Remove(name string) error {
	if f.hit(OpRemove) {
		return injected(OpRemove, name)
	}
	return f.inner.Remove(name)
}

// ReadDir implements FS.
func (f *FaultFS) ReadDir(dir string) ([]string, error) { return f.inner.ReadDir(dir) }

// MkdirAll implements FS.
func (f *FaultFS) MkdirAll(dir string) error { return f.inner.MkdirAll(dir) }

// SyncDir implements FS.
func (f *FaultFS) SyncDir(dir string) error {
	if f.hit(OpSyncDir) {
		return injected(OpSyncDir, dir)
	}
	return f.inner.SyncDir(dir)
}

type faultFile struct {
	fs   *FaultFS
	f    File
	name string
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.hit(OpWrite) {
		n, _ := f.f.WriteAt(p[:len(p)/2], off)
		return n, injected(OpWrite, f.name)
	}
	return f.f.WriteAt(p, off)
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.hit(OpWrite) {
		n, _ := f.f.Write(p[:len(p)/2])
		return n, injected(OpWrite, f.name)
	}
	return f.f.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.hit(OpSync) {
		return injected(OpSync, f.name)
	}
	return f.f.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if f.fs.hit(OpTruncate) {
		return injected(OpTruncate, f.name)
	}
	return f.f.Truncate(size)
}

func (f *faultFile) Allocate(size int64) error {
	if f.fs.hit(OpAllocate) {
		return injected(OpAllocate, f.name)
	}
	return f.f.Allocate(size)
}

func (f *faultFile) Size() (int64, error) { return f.f.Size() }
func (f *faultFile) Close() error         { return f.f.Close() }
