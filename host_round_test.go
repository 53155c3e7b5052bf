package raft_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/keelraft/raft/storage/multiwal"
)

// gatedLog is a multiwal group whose staged view syncs through a gate:
// the test holds Syncs back, counts them and can make them fail.
type gatedLog struct {
	*multiwal.Group
	gate *syncGate
}

func (g gatedLog) Staged() raft.StagedStore { return gatedStaged{g.Group.Staged(), g.gate} }

type gatedStaged struct {
	raft.StagedStore
	gate *syncGate
}

func (s gatedStaged) Syncer() raft.Syncer { return s.gate }

func (s gatedStaged) StoreLogs(logs []*raft.Log) error {
	s.gate.stored.Add(1)
	return s.StagedStore.StoreLogs(logs)
}

type syncGate struct {
	wal    *multiwal.WAL
	stored atomic.Int64 // staged StoreLogs calls
	syncs  atomic.Int64

	mu      sync.Mutex
	cond    *sync.Cond
	closed  bool
	waiting int
	err     error // returned instead of syncing, once set
}

func newSyncGate(w *multiwal.WAL) *syncGate {
	g := &syncGate{wal: w}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *syncGate) Sync() error {
	g.syncs.Add(1)
	g.mu.Lock()
	for g.closed {
		g.waiting++
		g.cond.Wait()
		g.waiting--
	}
	err := g.err
	g.mu.Unlock()
	if err != nil {
		return err
	}
	return g.wal.Sync()
}

func (g *syncGate) set(closed bool, err error) {
	g.mu.Lock()
	g.closed, g.err = closed, err
	g.mu.Unlock()
	g.cond.Broadcast()
}

func (g *syncGate) blocked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// TestHostWritesReadyGroupsInOneSync: a persist worker writes every group
// ready on it through their staged views and makes them durable with one
// Sync, and acknowledges nothing before that Sync returns. Forty
// single-voter groups on one persist worker: while group 1's round is
// held in its Sync, the other 39 queue a write each; once the Sync is let
// through, they all take one more round, one more Sync. A failed Sync then
// stops every group of its round.
func TestHostWritesReadyGroupsInOneSync(t *testing.T) {
	const groups = 40
	w, err := multiwal.Open(t.TempDir(), multiwal.Options{})
	require.NoError(t, err)
	gate := newSyncGate(w)
	h, err := raft.NewHost(raft.HostConfig{Transport: newMemHostNet().transport("h1"), HeartbeatInterval: 20 * time.Millisecond, PersistWorkers: 1})
	require.NoError(t, err)
	t.Cleanup(func() {
		gate.set(false, nil)
		require.NoError(t, h.Close())
		require.NoError(t, w.Close())
	})
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "h1", Address: "h1"}}}
	rafts := make([]*raft.Raft, groups+1)
	for g := raft.GroupID(1); g <= groups; g++ {
		mg, err := w.Group(uint64(g))
		require.NoError(t, err)
		st := gatedLog{mg, gate}
		rc, snaps := hostConf("h1"), storeinmem.NewSnapshotStore()
		require.NoError(t, raft.BootstrapCluster(rc, st, st, snaps, conf))
		rafts[g], err = h.StartGroup(g, rc, &testFSM{}, st, st, snaps)
		require.NoError(t, err)
	}
	for g := 1; g <= groups; g++ {
		require.Eventually(t, func() bool { return rafts[g].State() == raft.Leader }, 10*time.Second, time.Millisecond, "group %d", g)
	}
	// Each group's leader entry is written and applied: the groups are idle.
	for g := 1; g <= groups; g++ {
		require.NoError(t, rafts[g].Barrier(context.Background()).Error())
	}

	gate.set(true, nil)
	apply := func(g int) chan error {
		done := make(chan error, 1)
		f := rafts[g].Apply(context.Background(), []byte("x"))
		go func() { done <- f.Error() }()
		return done
	}
	first := apply(1)
	require.Eventually(t, func() bool { return gate.blocked() == 1 }, 10*time.Second, time.Millisecond, "group 1's round never reached its Sync")
	var rest []chan error
	for g := 2; g <= groups; g++ {
		rest = append(rest, apply(g))
	}
	for g := 2; g <= groups; g++ {
		require.Eventually(t, func() bool { return raft.PersistQueued(rafts[g]) > 0 }, 10*time.Second, time.Millisecond, "group %d's write never queued", g)
	}
	require.Empty(t, first, "group 1's write was acknowledged before its Sync returned")
	syncs, stored := gate.syncs.Load(), gate.stored.Load()
	gate.set(false, nil)
	require.NoError(t, <-first)
	for _, done := range rest {
		require.NoError(t, <-done)
	}
	more := gate.syncs.Load() - syncs
	t.Logf("%d groups' writes after the held Sync: %d staged StoreLogs, %d Syncs", groups-1, gate.stored.Load()-stored, more)
	require.Equal(t, int64(groups-1), gate.stored.Load()-stored)
	require.LessOrEqual(t, more, int64(2), "the waiting groups' writes did not share a Sync")

	// A failed Sync stops the groups whose writes it held, not others.
	diskErr := errors.New("disk on fire")
	gate.set(true, diskErr)
	fails := []chan error{apply(1)}
	require.Eventually(t, func() bool { return gate.blocked() == 1 }, 10*time.Second, time.Millisecond)
	fails = append(fails, apply(2))
	require.Eventually(t, func() bool { return raft.PersistQueued(rafts[2]) > 0 }, 10*time.Second, time.Millisecond)
	gate.set(false, diskErr)
	for _, done := range fails {
		require.Error(t, <-done)
	}
	for g := 1; g <= 2; g++ {
		require.Eventually(t, func() bool { return rafts[g].State() == raft.Shutdown }, 10*time.Second, time.Millisecond, "group %d", g)
		require.ErrorIs(t, h.StopGroup(raft.GroupID(g)), diskErr)
	}
	require.Equal(t, raft.Leader, rafts[3].State())
}
