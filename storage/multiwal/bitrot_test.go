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

// bitRotWAL writes three groups' entries and stable values until
// segments 1 and 2 are sealed and segment 3 holds at least three batches
// after its checkpoint. It returns the sealed segments' sizes.
func bitRotWAL(t *testing.T) (*vfs.MemFS, model, []int64) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	m := model{}
	batches := 0
	for i := uint64(1); len(w.segs) < 3 || batches < 3; i++ {
		if len(w.segs) == 3 {
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
	require.True(t, w.segs[0].sealed && w.segs[1].sealed)
	require.EqualValues(t, 1, w.segs[0].id)
	sizes := []int64{w.segs[0].size, w.segs[1].size}
	require.NoError(t, w.Close())
	return fsys, m, sizes
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

// TestBitRot flips, one at a time, every bit of the sealed segments 1 (the
// oldest) and 2 (a middle one): header, checkpoint, batches, padding,
// seal. Every flip must make Open fail with a CorruptError naming the
// segment, never recover a different state.
func TestBitRot(t *testing.T) {
	fsys, m, sizes := bitRotWAL(t)
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Empty(t, diff(w, m))
	require.NoError(t, w.Close())
	flips := 0
	for k, size := range sizes {
		seg := uint64(k + 1)
		name := filepath.Join(testDir, segmentName(seg))
		for bit := int64(0); bit < size*8; bit += bitRotStride {
			off, mask := bit/8, byte(1)<<(bit%8)
			xorByte(t, fsys, name, off, mask)
			w, err := Open(testDir, memOptions(fsys))
			if err == nil {
				d := diff(w, m)
				w.Close()
				t.Fatalf("segment %d: flipping bit %d of byte %d went unnoticed (state diff: %q)", seg, bit%8, off, d)
			}
			var ce *CorruptError
			require.ErrorAs(t, err, &ce, "flip at %d: %v", off, err)
			require.False(t, errors.Is(err, raft.ErrUnsupportedVersion))
			require.Equal(t, seg, ce.Segment, "flip at %d: %v", off, err)
			xorByte(t, fsys, name, off, mask)
			flips++
		}
	}
	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Empty(t, diff(w, m))
	require.NoError(t, w.Close())
	t.Logf("%d flips in segments of %v bytes, all refused", flips, sizes)
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
