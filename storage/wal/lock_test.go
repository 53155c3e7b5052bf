package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

func requireLocked(t *testing.T, err error, path string) {
	t.Helper()
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), path)
	require.Contains(t, err.Error(), "another process, or another open in this process")
}

// A log directory in use is refused until the Log using it is closed.
func TestOpenRefusesLogInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{SegmentSize: 64 << 10, Logger: quiet}
	a, err := Open(dir, opts)
	require.NoError(t, err)
	require.NoError(t, a.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}))
	_, err = Open(dir, opts)
	requireLocked(t, err, filepath.Join(dir, lockName))
	t.Log(err)
	// The refused Open left the open Log alone.
	require.NoError(t, a.StoreLogs([]*raft.Log{{Index: 2, Term: 1}}))
	require.NoError(t, a.Close())

	b, err := Open(dir, opts)
	require.NoError(t, err)
	last, err := b.LastIndex()
	require.NoError(t, err)
	require.EqualValues(t, 2, last)
	require.NoError(t, b.Close())
}

func TestOpenStableRefusesStoreInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stable")
	a, err := OpenStable(path)
	require.NoError(t, err)
	require.NoError(t, a.SetUint64([]byte("term"), 3))
	_, err = OpenStableWith(path, StableOptions{})
	requireLocked(t, err, path+".lock")
	require.NoError(t, a.Close())

	b, err := OpenStable(path)
	require.NoError(t, err)
	v, err := b.GetUint64([]byte("term"))
	require.NoError(t, err)
	require.EqualValues(t, 3, v)
	require.NoError(t, b.Close())
	// The log's and the stable store's locks are distinct files: both
	// may live in one directory.
	l, err := Open(filepath.Dir(path), Options{SegmentSize: 64 << 10, Logger: quiet})
	require.NoError(t, err)
	s, err := OpenStable(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, l.Close())
}

// On the operating system's files too, a refused newer segment changes
// nothing, and the refused Open releases the lock it took.
func TestOpenNewerVersionOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	opts := Options{SegmentSize: 64 << 10, Logger: quiet}
	l, err := Open(dir, opts)
	require.NoError(t, err)
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}))
	require.NoError(t, l.Close())
	name := filepath.Join(dir, segmentName(1))
	setSegmentVersion(t, vfs.OS, name, '2', true)
	before := files(t, vfs.OS, dir)
	require.Contains(t, before, filepath.Join(dir, lockName))
	for range 2 {
		_, err = Open(dir, opts)
		requireNewer(t, err, name, 2)
	}
	require.Equal(t, before, files(t, vfs.OS, dir))
}

// A lock file left by a process that died, or by a Log abandoned without
// Close in another process, is no obstacle: only a held lock is.
func TestLeftoverLockFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, lockName), nil, 0o644))
	l, err := Open(dir, Options{SegmentSize: 64 << 10, Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, l.Close())
}
