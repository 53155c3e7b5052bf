//go:build !linux

package peers

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func fsType(string) string { return "unknown file system" }
