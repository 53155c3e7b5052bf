// Package vfs is the file-system seam shared by keel's durable stores.
//
// The stores do all their I/O through FS so that tests can swap the
// operating system for MemFS, an in-memory file system that can crash
// (keeping exactly what was synced, optionally plus some unsynced data and a
// torn sector), and for FaultFS, which makes the Nth write, sync or rename
// fail.
package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// FS is the file-system interface used by the stores.
//
// Names are slash- or OS-separated paths; implementations clean them.
// Creating, renaming and removing a file is durable only once the directory
// that holds it has been synced with SyncDir.
type FS interface {
	// Create creates the named file, or truncates it if it exists, and
	// opens it for reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// Remove removes the named file.
	Remove(name string) error
	// ReadDir returns the names of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string) error
	// SyncDir makes the creations, renames and removals in dir durable.
	SyncDir(dir string) error
}

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Write writes at the file's offset, which starts at 0 and advances
	// with each Write.
	io.Writer
	// Sync makes the file's contents and size durable.
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Allocate grows the file with zeros to at least size bytes, reserving
	// the space on disk. It never shrinks the file.
	Allocate(size int64) error
	// Size returns the file's size.
	Size() (int64, error)
	// Close closes the file.
	Close() error
}

// OS is the FS of the operating system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ f *os.File }

func (o *osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o *osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o *osFile) Write(p []byte) (int, error)              { return o.f.Write(p) }
func (o *osFile) Sync() error                              { return datasync(o.f) }
func (o *osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o *osFile) Close() error                             { return o.f.Close() }

func (o *osFile) Size() (int64, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (o *osFile) Allocate(size int64) error {
	cur, err := o.Size()
	if err != nil {
		return err
	}
	if cur >= size {
		return nil
	}
	if err := fallocate(o.f, size); err == nil {
		return nil
	} else if !errors.Is(err, errNoFallocate) {
		return err
	}
	return o.f.Truncate(size)
}
