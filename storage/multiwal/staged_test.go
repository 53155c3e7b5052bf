package multiwal

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// TestStagedOneSync: staged writes of 50 groups are not durable (nor
// visible) until Sync, which writes them all with one write and one
// fsync; they survive a crash after it.
func TestStagedOneSync(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	defer func() { w.Close() }()
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	for id := uint64(1); id <= 50; id++ {
		g, _ := w.Group(id)
		s := g.Staged()
		logs := m.g(id).entries(rng, 3, 200)
		m.g(id).append(logs)
		require.NoError(t, s.StoreLogs(logs))
		require.NoError(t, s.SetUint64([]byte("term"), id))
		m.g(id).stable["term"] = string(be64(id))
	}
	before := w.Stats()
	require.Equal(t, uint64(1), before.Fsyncs, "staged writes synced before Sync (the one fsync is the first segment's creation)")
	g7, _ := w.Group(7)
	last, err := g7.LastIndex()
	require.NoError(t, err)
	require.Zero(t, last, "a staged entry is visible before Sync")

	require.NoError(t, w.Sync())
	after := w.Stats()
	require.Equal(t, uint64(1), after.Fsyncs-before.Fsyncs, "fsyncs for 50 groups' staged writes")
	require.Equal(t, uint64(1), after.Writes-before.Writes)
	require.Equal(t, uint64(150), after.Entries)
	require.Empty(t, diff(w, m))

	// Nothing queued: Sync writes nothing.
	require.NoError(t, w.Sync())
	require.Equal(t, after.Fsyncs, w.Stats().Fsyncs)

	rw, err := Open(testDir, memOptions(fsys.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage})))
	require.NoError(t, err)
	require.Empty(t, diff(rw, m))
	require.NoError(t, rw.Close())
}

// TestStagedChecks: a staged write is checked when it is queued, and a
// refused one queues nothing.
func TestStagedChecks(t *testing.T) {
	w, err := Open(testDir, memOptions(newMem()))
	require.NoError(t, err)
	defer func() { w.Close() }()
	g, _ := w.Group(1)
	s := g.Staged()
	require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 5, Term: 1}}))
	require.ErrorContains(t, s.StoreLogs([]*raft.Log{{Index: 7, Term: 1}}), "has index 7, want 6")
	require.ErrorContains(t, s.Set(make([]byte, maxKeyLen+1), nil), "key of")
	require.ErrorContains(t, s.StoreLogs([]*raft.Log{{Index: 6, Term: 1, Data: make([]byte, w.opts.MaxEntrySize+1)}}), "MaxEntrySize")
	// Staged writes follow each other, as the Group's do.
	require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 6, Term: 1}, {Index: 7, Term: 2}}))
	require.NoError(t, s.DeleteRange(7, 9))
	require.NoError(t, w.Sync())
	first, _ := g.FirstIndex()
	last, _ := g.LastIndex()
	require.Equal(t, [2]uint64{5, 6}, [2]uint64{first, last})
	require.Equal(t, uint64(3), w.Stats().Entries)
	require.Same(t, w, s.Syncer().(*WAL))
}

// TestStagedCrashMatrix is TestCrashMatrix with each step a run of 1-6
// staged calls on four groups followed by one Sync: at every cut point,
// in every crash variant, each group recovers as of the last Sync or as
// of the one in flight, never a part of a step.
func TestStagedCrashMatrix(t *testing.T) {
	total := 0
	for seed := range uint64(crashSeeds) {
		fsys := newMem()
		c := &crashChecker{t: t, fsys: fsys, rng: rand.New(rand.NewPCG(seed, 98)), stride: crashStride, acked: model{}}
		rng := rand.New(rand.NewPCG(seed, 8))
		fsys.SetHook(c.hook)
		var w *WAL
		c.step(model{}, func() (err error) { w, err = Open(testDir, memOptions(fsys)); return err })
		ids := []uint64{1, 2, 3, 4}
		for op := 0; op < crashOps/2 && !c.failed; op++ {
			next := c.acked.clone()
			var calls []func() error
			for range 1 + rng.IntN(6) {
				calls = append(calls, randomOp(rng, func() *WAL { return w }, next, ids, 400, true))
			}
			c.step(next, func() error {
				for _, call := range calls {
					if err := call(); err != nil {
						return err
					}
				}
				return w.Sync()
			})
		}
		fsys.SetHook(nil)
		require.Empty(t, diff(w, c.acked))
		require.NoError(t, w.Close())
		total += c.cuts
		if c.failed {
			break
		}
	}
	t.Logf("staged crash matrix: %d cut points", total)
	require.Positive(t, total)
}

// TestStagedSyncFails: when the fsync of a Sync fails, Sync reports it,
// every later call is refused with ErrFailed (the fsync is not retried),
// and after a crash the staged step is there whole or not at all.
func TestStagedSyncFails(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync} {
		mem := newMem()
		ffs := vfs.NewFaultFS(mem)
		w, err := Open(testDir, memOptions(ffs))
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(3, uint64(op)))
		acked := model{}
		next := acked.clone()
		for id := uint64(1); id <= 3; id++ {
			g, _ := w.Group(id)
			logs := next.g(id).entries(rng, 2, 100)
			next.g(id).append(logs)
			require.NoError(t, g.Staged().StoreLogs(logs))
		}
		ffs.FailNth(op, 1)
		require.Error(t, w.Sync(), "%v", op)
		require.ErrorIs(t, w.Sync(), ErrFailed)
		g, _ := w.Group(1)
		require.ErrorIs(t, g.Staged().StoreLogs([]*raft.Log{{Index: 1 << 40}}), ErrFailed)
		w.Close()
		rw, err := Open(testDir, memOptions(mem.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage, KeepPercent: 50})))
		require.NoError(t, err)
		if d := diff(rw, acked); d != "" {
			require.Empty(t, diff(rw, next), "%v: neither nothing (%s) nor the whole step", op, d)
		}
		require.NoError(t, rw.Close())
	}
}

// TestStagedConcurrentSyncs: goroutines staging and syncing at once, as a
// Host's persist workers do. When a Sync returns, every write its
// goroutine staged before it is durable; the Syncs share fsyncs.
func TestStagedConcurrentSyncs(t *testing.T) {
	w, err := Open(testDir, memOptions(newMem()))
	require.NoError(t, err)
	defer func() { w.Close() }()
	const workers, groupsEach, rounds = 4, 8, 20
	var wg sync.WaitGroup
	for k := range uint64(workers) {
		wg.Go(func() {
			for r := range uint64(rounds) {
				for j := range uint64(groupsEach) {
					g, _ := w.Group(1 + k*groupsEach + j)
					if err := g.Staged().StoreLogs([]*raft.Log{{Index: r + 1, Term: 1, Data: []byte(fmt.Sprint(r))}}); err != nil {
						t.Error(err)
						return
					}
				}
				if err := w.Sync(); err != nil {
					t.Error(err)
					return
				}
				for j := range uint64(groupsEach) {
					g, _ := w.Group(1 + k*groupsEach + j)
					if last, err := g.LastIndex(); err != nil || last != r+1 {
						t.Errorf("group %d after Sync of round %d: last %d, %v", g.ID(), r+1, last, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	st := w.Stats()
	require.Equal(t, uint64(workers*groupsEach*rounds), st.Entries)
	// Each segment made costs the seal of the one before and its own sync.
	require.LessOrEqual(t, st.Fsyncs, 1+workers*rounds+2*(st.Segments+st.SegmentsRemoved), "at most one fsync per Sync")
	t.Logf("%d entries, %d staged calls, %d fsyncs", st.Entries, st.Calls, st.Fsyncs)
}
