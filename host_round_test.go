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

// newGatedHost starts a host with one persist worker and n single-voter
// groups on gatedLogs, each with its leader entry applied; conf, when
// set, adjusts each group's Config. rafts[g] is group g.
func newGatedHost(t *testing.T, n int, conf func(*raft.Config)) (h *raft.Host, gate *syncGate, rafts []*raft.Raft) {
	w, err := multiwal.Open(t.TempDir(), multiwal.Options{})
	require.NoError(t, err)
	gate = newSyncGate(w)
	h, err = raft.NewHost(raft.HostConfig{Transport: newMemHostNet().transport("h1"), HeartbeatInterval: 20 * time.Millisecond, PersistWorkers: 1})
	require.NoError(t, err)
	t.Cleanup(func() {
		gate.set(false, nil)
		require.NoError(t, h.Close())
		require.NoError(t, w.Close())
	})
	members := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "h1", Address: "h1"}}}
	rafts = make([]*raft.Raft, n+1)
	for g := 1; g <= n; g++ {
		mg, err := w.Group(uint64(g))
		require.NoError(t, err)
		st := gatedLog{mg, gate}
		rc, snaps := hostConf("h1"), storeinmem.NewSnapshotStore()
		if conf != nil {
			conf(rc)
		}
		require.NoError(t, raft.BootstrapCluster(rc, st, st, snaps, members))
		rafts[g], err = h.StartGroup(raft.GroupID(g), rc, &testFSM{}, st, st, snaps)
		require.NoError(t, err)
	}
	for g := 1; g <= n; g++ {
		require.Eventually(t, func() bool { return rafts[g].State() == raft.Leader }, 10*time.Second, time.Millisecond, "group %d", g)
		// Its leader entry written and applied, the group is idle.
		require.NoError(t, rafts[g].Barrier(context.Background()).Error())
	}
	return h, gate, rafts
}

// applyAsync proposes on r and returns where its outcome will be.
func applyAsync(r *raft.Raft) chan error {
	done := make(chan error, 1)
	f := r.Apply(context.Background(), []byte("x"))
	go func() { done <- f.Error() }()
	return done
}

// holdRound closes the gate (its Syncs fail with err once it opens),
// writes on rs[0] until its round waits in its Sync, then writes on rs[1:]
// until each has a job queued behind it. It returns the writes' outcomes,
// in the order of rs.
func holdRound(t *testing.T, gate *syncGate, rs []*raft.Raft, err error) []chan error {
	gate.set(true, err)
	out := []chan error{applyAsync(rs[0])}
	require.Eventually(t, func() bool { return gate.blocked() == 1 }, 10*time.Second, time.Millisecond, "the first group's round never reached its Sync")
	for _, r := range rs[1:] {
		out = append(out, applyAsync(r))
	}
	for i, r := range rs[1:] {
		require.Eventually(t, func() bool { return raft.PersistQueued(r) > 0 }, 10*time.Second, time.Millisecond, "write %d never queued", i+1)
	}
	return out
}

// TestHostWritesReadyGroupsInOneSync: a persist worker writes every group
// ready on it through their staged views and makes them durable with one
// Sync, and acknowledges nothing before that Sync returns. Forty
// single-voter groups on one persist worker: while group 1's round is
// held in its Sync, the other 39 queue a write each; once the Sync is let
// through, they all take one more round, one more Sync. A failed Sync then
// stops every group of its round, and no other.
func TestHostWritesReadyGroupsInOneSync(t *testing.T) {
	const groups = 40
	h, gate, rafts := newGatedHost(t, groups, nil)
	writes := holdRound(t, gate, rafts[1:], nil)
	require.Empty(t, writes[0], "group 1's write was acknowledged before its Sync returned")
	syncs, stored := gate.syncs.Load(), gate.stored.Load()
	gate.set(false, nil)
	for _, done := range writes {
		require.NoError(t, <-done)
	}
	more := gate.syncs.Load() - syncs
	t.Logf("%d groups' writes after the held Sync: %d staged StoreLogs, %d Syncs", groups-1, gate.stored.Load()-stored, more)
	require.Equal(t, int64(groups-1), gate.stored.Load()-stored)
	require.LessOrEqual(t, more, int64(2), "the waiting groups' writes did not share a Sync")

	diskErr := errors.New("disk on fire")
	writes = holdRound(t, gate, rafts[1:3], diskErr)
	gate.set(false, diskErr)
	for _, done := range writes {
		require.Error(t, <-done)
	}
	for g := 1; g <= 2; g++ {
		require.Eventually(t, func() bool { return rafts[g].State() == raft.Shutdown }, 10*time.Second, time.Millisecond, "group %d", g)
		require.ErrorIs(t, h.StopGroup(raft.GroupID(g)), diskErr)
	}
	require.Equal(t, raft.Leader, rafts[3].State())
}

// TestHostStallBehindAHungRound: a group whose write waits for its persist
// worker, held in another group's hung Sync, sees the disk stall too: the
// wait counts from when its write was handed over. Once the Sync returns,
// the stall is over for both.
func TestHostStallBehindAHungRound(t *testing.T) {
	const stall = 200 * time.Millisecond
	_, gate, rafts := newGatedHost(t, 2, func(c *raft.Config) { c.DiskStallTimeout = stall })
	writes := holdRound(t, gate, rafts[1:], nil)
	for g := 1; g <= 2; g++ {
		require.Eventually(t, func() bool { return rafts[g].Stats()["disk_stalled"] == "true" }, 10*time.Second, time.Millisecond, "group %d never saw the stall", g)
	}
	gate.set(false, nil)
	for _, done := range writes {
		<-done // the stalled leaders stepped aside: the writes may have failed
	}
	for g := 1; g <= 2; g++ {
		require.Eventually(t, func() bool { return rafts[g].Stats()["disk_stalled"] == "false" }, 10*time.Second, time.Millisecond, "group %d", g)
	}
}
