package multiwal

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// TestNewerVersion: a segment of a newer format version, first, middle or
// last, is a *VersionError matching raft.ErrUnsupportedVersion and not
// ErrCorrupt, and no file is changed. A damaged version byte (the header
// checksum matches with the byte set back) is ErrCorrupt.
func TestNewerVersion(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	g, _ := w.Group(1)
	for i := uint64(1); len(w.segs) < 3; i++ {
		require.NoError(t, g.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: make([]byte, 300)}}))
	}
	require.NoError(t, w.Close())
	snapshot := func(f vfs.FS) map[string][]byte {
		out := map[string][]byte{}
		names, _ := f.ReadDir(testDir)
		for _, n := range names {
			out[n], _ = vfs.ReadFile(f, filepath.Join(testDir, n))
		}
		return out
	}
	for _, id := range []uint64{1, 2, 3} {
		f := fsys.Crash(vfs.CrashOptions{})
		name := filepath.Join(testDir, segmentName(id))
		b, err := vfs.ReadFile(f, name)
		require.NoError(t, err)
		b[7] = '2'
		le.PutUint32(b[28:], crc(b[:28]))
		require.NoError(t, vfs.WriteFile(f, name, b))
		before := snapshot(f)
		_, err = Open(testDir, memOptions(f))
		var ve *VersionError
		require.ErrorAs(t, err, &ve, "segment %d", id)
		require.ErrorIs(t, err, raft.ErrUnsupportedVersion)
		require.False(t, errors.Is(err, ErrCorrupt))
		require.Equal(t, 2, ve.Version)
		after := snapshot(f)
		require.Equal(t, len(before), len(after))
		for n := range before {
			require.True(t, bytes.Equal(before[n], after[n]), "file %s changed", n)
		}
	}
	// A rotted version byte is corruption.
	f := fsys.Crash(vfs.CrashOptions{})
	xorByte(t, f, filepath.Join(testDir, segmentName(1)), 7, 2) // '1' -> '3'
	_, err = Open(testDir, memOptions(f))
	require.ErrorIs(t, err, ErrCorrupt)
	require.False(t, errors.Is(err, raft.ErrUnsupportedVersion))
}
