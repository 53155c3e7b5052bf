package multiwal

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func TestGroupContract(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	_, err = w.Group(0)
	require.Error(t, err)
	require.Error(t, w.RemoveGroup(0))
	g, err := w.Group(7)
	require.NoError(t, err)
	other, _ := w.Group(8)

	first, err := g.FirstIndex()
	require.NoError(t, err)
	require.Zero(t, first)
	var e raft.Log
	require.ErrorIs(t, g.GetLog(1, &e), raft.ErrLogNotFound)
	require.Empty(t, w.Groups())

	// A log may start at any index; then entries must follow.
	require.NoError(t, g.StoreLogs([]*raft.Log{{Index: 5, Term: 1, Data: []byte("a")}, {Index: 6, Term: 2, Type: raft.LogNoop}}))
	require.Error(t, g.StoreLogs([]*raft.Log{{Index: 8, Term: 2}}))
	require.Error(t, g.StoreLogs([]*raft.Log{{Index: 7, Term: 2}, {Index: 9, Term: 2}}))
	require.NoError(t, g.StoreLogs([]*raft.Log{{Index: 7, Term: 2, Data: []byte("c")}}))
	require.NoError(t, g.StoreLogs(nil))
	require.NoError(t, g.GetLog(5, &e))
	require.Equal(t, raft.Log{Index: 5, Term: 1, Data: []byte("a")}, e)
	e.Data[0] = 'z' // the caller's copy
	require.NoError(t, g.GetLog(5, &e))
	require.Equal(t, "a", string(e.Data))
	require.NoError(t, g.GetLog(6, &e))
	require.Equal(t, raft.LogNoop, e.Type)
	require.ErrorIs(t, g.GetLog(4, &e), raft.ErrLogNotFound)
	require.ErrorIs(t, g.GetLog(8, &e), raft.ErrLogNotFound)
	// Another group is independent.
	require.ErrorIs(t, other.GetLog(5, &e), raft.ErrLogNotFound)
	require.NoError(t, other.StoreLogs([]*raft.Log{{Index: 1, Term: 9}}))
	require.Equal(t, []uint64{7, 8}, w.Groups())

	// Deletion: a middle range is refused, suffix and prefix work, a
	// range outside does nothing.
	require.NoError(t, g.StoreLogs([]*raft.Log{{Index: 8, Term: 2}, {Index: 9, Term: 2}, {Index: 10, Term: 3}}))
	require.Error(t, g.DeleteRange(7, 8))
	require.NoError(t, g.DeleteRange(20, 30))
	require.NoError(t, g.DeleteRange(9, 10))
	last, _ := g.LastIndex()
	require.EqualValues(t, 8, last)
	require.NoError(t, g.StoreLogs([]*raft.Log{{Index: 9, Term: 4}}))
	require.NoError(t, g.DeleteRange(0, 6))
	first, _ = g.FirstIndex()
	require.EqualValues(t, 7, first)
	require.ErrorIs(t, g.GetLog(6, &e), raft.ErrLogNotFound)
	require.NoError(t, g.GetLog(9, &e))
	require.EqualValues(t, 4, e.Term)
	// Everything; then the log starts anew at any index.
	require.NoError(t, g.DeleteRange(7, 9))
	first, _ = g.FirstIndex()
	last, _ = g.LastIndex()
	require.Zero(t, first)
	require.Zero(t, last)
	require.NoError(t, g.StoreLogs([]*raft.Log{{Index: 100, Term: 5}}))

	// Stable store.
	v, err := g.Get([]byte("missing"))
	require.NoError(t, err)
	require.Empty(t, v)
	n, err := g.GetUint64([]byte("missing"))
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, g.SetUint64([]byte("CurrentTerm"), 42))
	require.NoError(t, g.Set([]byte("LastVoteCand"), []byte("node1")))
	require.NoError(t, other.SetUint64([]byte("CurrentTerm"), 3))
	n, err = g.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.EqualValues(t, 42, n)
	_, err = g.GetUint64([]byte("LastVoteCand"))
	require.Error(t, err)

	require.NoError(t, w.Close())
	require.ErrorIs(t, w.Close(), ErrClosed)
	require.ErrorIs(t, g.StoreLogs([]*raft.Log{{Index: 101}}), ErrClosed)
	_, err = g.FirstIndex()
	require.ErrorIs(t, err, ErrClosed)

	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	g, _ = w.Group(7)
	other, _ = w.Group(8)
	n, _ = g.GetUint64([]byte("CurrentTerm"))
	require.EqualValues(t, 42, n)
	v, _ = g.Get([]byte("LastVoteCand"))
	require.Equal(t, "node1", string(v))
	n, _ = other.GetUint64([]byte("CurrentTerm"))
	require.EqualValues(t, 3, n)
	first, _ = g.FirstIndex()
	last, _ = g.LastIndex()
	require.EqualValues(t, 100, first)
	require.EqualValues(t, 100, last)

	// RemoveGroup is durable.
	require.NoError(t, w.RemoveGroup(7))
	require.Equal(t, []uint64{8}, w.Groups())
	require.NoError(t, w.Close())
	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Equal(t, []uint64{8}, w.Groups())
	g, _ = w.Group(7)
	v, _ = g.Get([]byte("LastVoteCand"))
	require.Empty(t, v)
	require.ErrorIs(t, g.GetLog(100, &e), raft.ErrLogNotFound)
	require.NoError(t, w.Close())
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{})
	require.NoError(t, err)
	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, w.Close())
	w, err = Open(dir, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Close())
}

func TestEntryTooLarge(t *testing.T) {
	opts := memOptions(newMem())
	opts.MaxEntrySize = 10
	w, err := Open(testDir, opts)
	require.NoError(t, err)
	g, _ := w.Group(1)
	require.Error(t, g.StoreLogs([]*raft.Log{{Index: 1, Data: make([]byte, 11)}}))
	require.Error(t, g.Set([]byte("k"), make([]byte, 11)))
	require.Empty(t, w.Groups())
	require.NoError(t, w.Close())
}

// TestRandomGroups runs random calls on many interleaved groups against a
// model, with small segments (rotation, checkpoints, reclamation), and
// reopens now and then.
func TestRandomGroups(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	ids := []uint64{1, 2, 3, 5, 8, 13, 21, 1 << 60}
	m := model{}
	removed := uint64(0)
	for op := range randomOps {
		next := m.clone()
		call := randomOp(rng, func() *WAL { return w }, next, ids, 300, false)
		require.NoError(t, call(), "op %d", op)
		m = next
		if op%50 == 49 {
			removed += w.Stats().SegmentsRemoved
			require.NoError(t, w.Close())
			w, err = Open(testDir, memOptions(fsys))
			require.NoError(t, err)
		}
		if op%10 == 0 {
			require.Empty(t, diff(w, m), "op %d", op)
		}
	}
	require.Empty(t, diff(w, m))
	st := w.Stats()
	removed += st.SegmentsRemoved
	require.Greater(t, removed, uint64(0))
	t.Logf("stats: %+v, %d segments removed in all", st, removed)
	require.NoError(t, w.Close())
	w, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.Empty(t, diff(w, m))
	require.NoError(t, w.Close())
}
