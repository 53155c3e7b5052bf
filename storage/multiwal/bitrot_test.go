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

// bitRotWAL writes three groups' entries and stable values until segment
// 1 is sealed and segment 2 holds at least three batches after its
// checkpoint.
func bitRotWAL(t *testing.T) (*vfs.MemFS, model, int64) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	m := model{}
	batches := 0
	for i := uint64(1); len(w.segs) < 2 || batches < 3; i++ {
		if len(w.segs) == 2 {
			batches++
		}
		gid := 1 + i%3
		g, _ := w.Group(gid)
		logs := []*raft.Log{{Index: i, Term: 1, Data: []byte("twenty bytes of data")}}
		if gm := m.g(gid); !gm.empty() {
			logs[0].Index = gm.last + 1
		}
		require.NoError(t, g.StoreLogs(logs))
		m.g(gid).append(logs)
		if i%4 == 0 {
			require.NoError(t, g.SetUint64([]byte("term"), i))
			m.g(gid).stable["term"] = string(be64(i))
		}
	}
	require.True(t, w.segs[0].sealed)
	size := w.segs[0].size
	require.NoError(t, w.Close())
	return fsys, m, size
}

func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func xorByte(t *testing.T, fsys vfs.FS, name string, off int64, mask byte) {
	f, err := fsys.Open(name)
	require.NoError(t, err)
	var b [1]byte
	_, err = f.ReadAt(b[:], off)
	require.NoError(t, err)
	b[0] ^= mask
	_, err = f.WriteAt(b[:], off)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// TestBitRot flips, one at a time, every bit of the sealed segment 1
// (header, checkpoint, batches, padding, seal). Every flip must make
// Open fail with a CorruptError naming segment 1, never recover a
// different state.
func TestBitRot(t *testing.T) {
	fsys, m, size := bitRotWAL(t)
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Empty(t, diff(w, m))
	require.NoError(t, w.Close())
	name := filepath.Join(testDir, segmentName(1))
	flips := 0
	for bit := int64(0); bit < size*8; bit += bitRotStride {
		off, mask := bit/8, byte(1)<<(bit%8)
		xorByte(t, fsys, name, off, mask)
		w, err := Open(testDir, memOptions(fsys))
		if err == nil {
			d := diff(w, m)
			w.Close()
			t.Fatalf("flipping bit %d of byte %d went unnoticed (state diff: %q)", bit%8, off, d)
		}
		var ce *CorruptError
		require.ErrorAs(t, err, &ce, "flip at %d: %v", off, err)
		require.False(t, errors.Is(err, raft.ErrUnsupportedVersion))
		require.EqualValues(t, 1, ce.Segment, "flip at %d: %v", off, err)
		xorByte(t, fsys, name, off, mask)
		flips++
	}
	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Empty(t, diff(w, m))
	require.NoError(t, w.Close())
	t.Logf("%d flips of %d bytes, all refused", flips, size)
}

// TestGetLogRot damages an entry's record in an open WAL: GetLog returns
// ErrCorrupt, never the damaged entry.
func TestGetLogRot(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	g, _ := w.Group(5)
	require.NoError(t, g.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: bytes.Repeat([]byte("x"), 100)}, {Index: 2, Term: 1, Data: []byte("y")}}))
	seg, off := w.groups[5].locate(1)
	xorByte(t, fsys, seg.name, off+recHeaderLen+entryHdrLen+50, 4)
	var e raft.Log
	require.ErrorIs(t, g.GetLog(1, &e), ErrCorrupt)
	require.NoError(t, g.GetLog(2, &e))
	require.NoError(t, w.Close())
}
