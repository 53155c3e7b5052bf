package multiwal

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

func segIDs(t *testing.T, fsys vfs.FS) []string {
	names, err := fsys.ReadDir(testDir)
	require.NoError(t, err)
	return names
}

// TestReclamation: groups compact at different speeds. A segment is freed
// only once every group is past it: a slow group pins segments, its
// compaction frees exactly the segments it alone was holding, and a
// removed group unpins. Stable values written in freed segments survive
// in the checkpoints.
func TestReclamation(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	m := model{}
	groups := map[uint64]*Group{}
	for _, id := range []uint64{1, 2, 3} {
		groups[id], _ = w.Group(id)
		require.NoError(t, groups[id].SetUint64([]byte("CurrentTerm"), id*10))
		m.g(id).stable["CurrentTerm"] = string(be64(id * 10))
	}
	appendAll := func(rounds int) {
		for range rounds {
			for _, id := range []uint64{1, 2, 3} {
				gm := m.g(id)
				logs := []*raft.Log{{Index: gm.last + 1, Term: 1, Data: []byte(fmt.Sprintf("entry %d of group %d, padded out", gm.last+1, id))}}
				require.NoError(t, groups[id].StoreLogs(logs))
				gm.append(logs)
			}
		}
	}
	appendAll(200)
	require.Greater(t, len(w.segs), 5)
	// pinned checks that the oldest segment is the oldest holding a live
	// entry of any group: nothing a group needs is freed, and nothing
	// else is kept.
	pinned := func() {
		t.Helper()
		oldest := w.segs[len(w.segs)-1].id
		for _, g := range w.groups {
			if len(g.runs) > 0 {
				oldest = min(oldest, g.runs[0].seg.id)
			}
		}
		require.Equal(t, oldest, w.segs[0].id)
		names := segIDs(t, fsys)
		require.Equal(t, segmentName(oldest), names[0])
		require.Len(t, names, len(w.segs))
	}
	pinned()
	c3 := w.groups[3].runs[0].seg.id

	// Groups 1 and 2 compact everything; group 3 pins all segments.
	for _, id := range []uint64{1, 2} {
		require.NoError(t, groups[id].DeleteRange(0, m.g(id).last-1))
		m.g(id).deleteRange(0, m.g(id).last-1)
	}
	pinned()
	require.Equal(t, c3, w.segs[0].id, "the slow group pins its segments")
	require.LessOrEqual(t, w.Stats().SegmentsRemoved, uint64(1))
	freed := w.Stats().SegmentsRemoved

	// Group 3 compacts half: the segments wholly below its new first
	// index are freed, and no other.
	half := m.g(3).first + (m.g(3).last-m.g(3).first)/2
	seg, _ := w.groups[3].locate(half + 1)
	require.NoError(t, groups[3].DeleteRange(0, half))
	m.g(3).deleteRange(0, half)
	require.Equal(t, seg.id, w.segs[0].id, "the oldest segment is the one holding group 3's first entry")
	require.Greater(t, w.Stats().SegmentsRemoved, freed+3)
	pinned()
	require.Empty(t, diff(w, m))

	// Removing group 3 unpins the rest.
	require.NoError(t, w.RemoveGroup(3))
	delete(m, 3)
	require.LessOrEqual(t, len(w.segs), 2)
	pinned()
	require.Empty(t, diff(w, m))
	require.NoError(t, w.Close())

	// After a restart and a crash the state is the same, stable values
	// written in segment 1 included.
	for _, f := range []*vfs.MemFS{fsys, fsys.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage})} {
		w, err = Open(testDir, memOptions(f))
		require.NoError(t, err)
		require.Empty(t, diff(w, m))
		require.NotContains(t, segIDs(t, f), segmentName(1))
		require.NoError(t, w.Close())
	}
}

// TestInterruptedReclaim leaves a gap in the segment IDs, as an
// interrupted deletion of several segments may: recovery starts after
// the gap and deletes the older files. A gap that loses needed entries
// is ErrCorrupt.
func TestInterruptedReclaim(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	g, _ := w.Group(1)
	m := model{}
	for i := uint64(1); len(w.segs) < 6; i++ {
		logs := []*raft.Log{{Index: i, Term: 1, Data: make([]byte, 200)}}
		require.NoError(t, g.StoreLogs(logs))
		m.g(1).append(logs)
	}
	require.NoError(t, w.Close())

	// Removing a middle segment loses entries: corrupt, nothing deleted.
	lost := fsys.Crash(vfs.CrashOptions{})
	require.NoError(t, lost.Remove(testDir+"/"+segmentName(3)))
	_, err = Open(testDir, memOptions(lost))
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, segIDs(t, lost), segmentName(1))

	// After compaction past segment 4, a leftover of 1 with 2 and 3 gone
	// is deleted.
	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	g, _ = w.Group(1)
	seg5 := w.segs[4]
	x := w.groups[1].runs[len(w.groups[1].runs)-1].first
	for _, r := range w.groups[1].runs {
		if r.seg == seg5 {
			x = r.first
			break
		}
	}
	// Keep segment 1 from being deleted by holding its file contents.
	seg1, err := vfs.ReadFile(fsys, testDir+"/"+segmentName(1))
	require.NoError(t, err)
	require.NoError(t, g.DeleteRange(0, x-1))
	m.g(1).deleteRange(0, x-1)
	require.NoError(t, w.Close())
	require.NoError(t, vfs.WriteFile(fsys, testDir+"/"+segmentName(1), seg1))
	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Empty(t, diff(w, m))
	require.NotContains(t, segIDs(t, fsys), segmentName(1))
	require.NoError(t, w.Close())
}

// TestOnlyIncompleteSegment: a lone segment without its checkpoint is an
// interrupted creation only if it is a new log's first; a later one means
// the state it would have carried is gone: ErrCorrupt, not an empty start.
func TestOnlyIncompleteSegment(t *testing.T) {
	for _, id := range []uint64{1, 5} {
		fsys := newMem()
		require.NoError(t, fsys.MkdirAll(testDir))
		require.NoError(t, vfs.WriteFile(fsys, testDir+"/"+segmentName(id), encodeHeader(id, 512)))
		w, err := Open(testDir, memOptions(fsys))
		if id == 1 {
			require.NoError(t, err)
			require.Empty(t, w.Groups())
			require.NoError(t, w.Close())
			continue
		}
		require.ErrorIs(t, err, ErrCorrupt)
	}
}
