package wal

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// bitRotLog writes a log of two segments: segment 1 sealed and full,
// segment 2 holding three batches. It returns the ends of segment 2's
// batches.
func bitRotLog(t *testing.T) (*vfs.MemFS, *model, []int64) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	var m model
	var ends []int64
	for i := 0; len(l.segs) < 2 || len(ends) < 3; i++ {
		logs := []*raft.Log{
			{Index: uint64(2*i + 1), Term: 1, Data: []byte("twenty bytes of data")},
			{Index: uint64(2*i + 2), Term: 2, Type: raft.LogNoop},
		}
		require.NoError(t, l.StoreLogs(logs))
		m.append(logs)
		if len(l.segs) == 2 {
			ends = append(ends, l.segs[1].size)
		}
	}
	require.True(t, l.segs[0].sealed)
	require.EqualValues(t, 4096, l.segs[0].size)
	require.NoError(t, l.Close())
	return fsys, &m, ends
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

// TestBitRot flips, one at a time, every bit of the synced records of a
// sealed segment (header, batches, padding, seal) and of the last segment
// but for its final batch, which a crash could have torn. Every flip must
// make Open fail with a CorruptError naming the segment and an offset at
// or before the flipped byte, in the same batch: none may be silently
// truncated.
func TestBitRot(t *testing.T) {
	fsys, m, ends := bitRotLog(t)
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	requireLog(t, l, m)
	require.NoError(t, l.Close())

	flips := 0
	check := func(seg uint64, end int64) {
		name := filepath.Join(testDir, segmentName(seg))
		for bit := int64(0); bit < end*8; bit += bitRotStride {
			off, mask := bit/8, byte(1)<<(bit%8)
			xorByte(t, fsys, name, off, mask)
			l, err := Open(testDir, memOptions(fsys))
			if err == nil {
				l.Close()
				t.Fatalf("segment %d: flipping bit %d of byte %d went unnoticed", seg, bit%8, off)
			}
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.ErrorIs(t, err, ErrCorrupt)
			require.Equal(t, seg, ce.Segment, "flip at %d: %v", off, err)
			require.LessOrEqual(t, ce.Offset, off, "flip at %d: %v", off, err)
			require.Less(t, off-ce.Offset, int64(512), "flip at %d: %v", off, err)
			xorByte(t, fsys, name, off, mask)
			flips++
		}
	}
	check(1, 4096)
	check(2, ends[len(ends)-2])
	t.Logf("bit rot: %d single-bit flips, all detected", flips)

	l, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	requireLog(t, l, m)
	require.NoError(t, l.Close())
}

// TestGetLogDetectsRot checks that a record rotting after Open is reported
// by GetLog, not returned.
func TestGetLogDetectsRot(t *testing.T) {
	fsys, _, _ := bitRotLog(t)
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	defer l.Close()
	name, off, n := recordOf(t, l, 1)
	xorByte(t, fsys, name, off+n-1, 0x10)
	var e raft.Log
	err = l.GetLog(1, &e)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "segment 1 offset 512")
	require.NoError(t, l.GetLog(2, &e))
}

// TestMissingSegment checks that a lost middle segment is corruption.
func TestMissingSegment(t *testing.T) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	for i := range 60 {
		require.NoError(t, l.StoreLogs([]*raft.Log{{Index: uint64(i + 1), Data: make([]byte, 300)}}))
	}
	require.Greater(t, len(l.segs), 3)
	require.NoError(t, l.Close())
	require.NoError(t, fsys.Remove(filepath.Join(testDir, segmentName(2))))
	_, err = Open(testDir, memOptions(fsys))
	require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
	require.Contains(t, err.Error(), "segment 2")
}
