//go:build !linux

package vfs

import (
	"errors"
	"os"
)

var errNoFallocate = errors.New("fallocate not supported")

func datasync(f *os.File) error { return f.Sync() }

func fallocate(*os.File, int64) error { return errNoFallocate }
