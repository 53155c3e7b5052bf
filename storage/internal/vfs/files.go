package vfs

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ReadFile returns the whole of file name, as os.ReadFile does. Tests and
// tools use it to look at what a store wrote.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		return nil, fmt.Errorf("vfs: read %s: %d of %d bytes: %w", name, n, len(b), err)
	}
	return b, nil
}

// WriteFile creates (or replaces) file name with b and makes it durable:
// the file and its directory entry are synced.
func WriteFile(fsys FS, name string, b []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fsys.SyncDir(filepath.Dir(name))
}
