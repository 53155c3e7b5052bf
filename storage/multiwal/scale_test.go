package multiwal

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// TestRestart1000Groups writes entries and term/vote for 1,000 groups on
// the real disk, closes, reopens and checks that every group's state is
// back, timing the write and the recovery.
func TestRestart1000Groups(t *testing.T) {
	const groups, perGroup, workers = 1000, 20, 64
	dir := t.TempDir()
	w, err := Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	start := time.Now()
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			for id := uint64(k + 1); id <= groups; id += workers {
				g, _ := w.Group(id)
				logs := make([]*raft.Log, perGroup)
				for i := range logs {
					logs[i] = &raft.Log{Index: uint64(i + 1), Term: id, Data: fmt.Appendf(nil, "g%d-e%d", id, i+1)}
				}
				if err := g.StoreLogs(logs); err != nil {
					t.Error(err)
					return
				}
				if err := g.SetUint64([]byte("CurrentTerm"), id); err != nil {
					t.Error(err)
					return
				}
				if err := g.Set([]byte("LastVoteCand"), fmt.Appendf(nil, "node-%d", id%5)); err != nil {
					t.Error(err)
					return
				}
				if id%3 == 0 {
					if err := g.DeleteRange(0, 5); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	wrote := time.Since(start)
	st := w.Stats()
	require.NoError(t, w.Close())

	start = time.Now()
	w, err = Open(dir, Options{SegmentSize: 1 << 20})
	require.NoError(t, err)
	recovered := time.Since(start)
	require.Len(t, w.Groups(), groups)
	for id := uint64(1); id <= groups; id++ {
		g, _ := w.Group(id)
		term, err := g.GetUint64([]byte("CurrentTerm"))
		require.NoError(t, err)
		require.Equal(t, id, term)
		v, _ := g.Get([]byte("LastVoteCand"))
		require.Equal(t, fmt.Sprintf("node-%d", id%5), string(v))
		first, _ := g.FirstIndex()
		last, _ := g.LastIndex()
		wantFirst := uint64(1)
		if id%3 == 0 {
			wantFirst = 6
		}
		require.Equal(t, wantFirst, first)
		require.EqualValues(t, perGroup, last)
		var e raft.Log
		require.NoError(t, g.GetLog(last, &e))
		require.Equal(t, fmt.Sprintf("g%d-e%d", id, last), string(e.Data))
	}
	t.Logf("1000 groups: wrote in %v (%d calls, %d fsyncs, %d segments), recovered in %v", wrote, st.Calls, st.Fsyncs, st.Segments, recovered)
	require.NoError(t, w.Close())
}

// TestConcurrentGroupCommit: one goroutine per group appends; the calls
// must share fsyncs, and every group's log must be intact.
func TestConcurrentGroupCommit(t *testing.T) {
	const groups, batches = 32, 40
	dir := t.TempDir()
	w, err := Open(dir, Options{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for gid := range uint64(groups) {
		wg.Go(func() {
			g, _ := w.Group(gid + 1)
			for i := range uint64(batches) {
				logs := []*raft.Log{{Index: 2*i + 1, Term: 1, Data: fmt.Appendf(nil, "%d/%d", gid+1, 2*i+1)}, {Index: 2*i + 2, Term: 1}}
				if err := g.StoreLogs(logs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := w.Stats()
	require.EqualValues(t, groups*batches, st.Calls)
	require.Less(t, st.Fsyncs, st.Calls, "fsyncs shared by calls")
	check := func(w *WAL) {
		for gid := uint64(1); gid <= groups; gid++ {
			g, _ := w.Group(gid)
			last, _ := g.LastIndex()
			require.EqualValues(t, 2*batches, last)
			for i := uint64(1); i <= 2*batches; i += 2 {
				var e raft.Log
				require.NoError(t, g.GetLog(i, &e))
				require.Equal(t, fmt.Sprintf("%d/%d", gid, i), string(e.Data))
			}
		}
	}
	check(w)
	require.NoError(t, w.Close())
	w, err = Open(dir, Options{})
	require.NoError(t, err)
	check(w)
	require.NoError(t, w.Close())
	t.Logf("%d calls, %d entries, %d fsyncs: %.2f fsyncs per call", st.Calls, st.Entries, st.Fsyncs, float64(st.Fsyncs)/float64(st.Calls))
}
