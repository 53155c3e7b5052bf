package raft_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// snapConfig snapshots often and keeps few trailing entries, so that a
// server away for a few hundred entries needs a snapshot.
func snapConfig(c *raft.Config) {
	c.SnapshotThreshold = 50
	c.SnapshotInterval = 5 * time.Millisecond
	c.TrailingLogs = 10
	c.SnapshotChunkSize = 1 << 10
}

func firstIndex(t *testing.T, s *rafttest.Server) uint64 {
	t.Helper()
	first, err := s.LogStore().FirstIndex()
	require.NoError(t, err)
	return first
}

// stores runs a test on the in-memory stores and on the durable ones.
func stores(t *testing.T, f func(t *testing.T, mk func(t testing.TB, n int, seed uint64, tweak func(*raft.Config)) *cluster)) {
	t.Run("inmem", func(t *testing.T) { f(t, newCluster) })
	t.Run("durable", func(t *testing.T) { f(t, newDurableCluster) })
}

// Scenario 10a: a server far behind catches up through InstallSnapshot.
func TestScenario10FarBehindCatchesUpBySnapshot(t *testing.T) {
	stores(t, func(t *testing.T, mk func(testing.TB, int, uint64, func(*raft.Config)) *cluster) {
		c := mk(t, 3, 10, snapConfig)
		l := c.Leader()
		behind := c.Others(l)[0]
		c.Crash(behind)
		for i := range 300 {
			c.apply(fmt.Sprintf("c%d", i))
		}
		// The leader's log no longer holds what the crashed server lacks.
		rafttest.WaitFor(t, c.Timeout(), "the leader compacts its log", func() bool {
			first, err := l.LogStore().FirstIndex()
			return err == nil && first > 200
		})
		c.Restart(behind)
		c.apply("after")
		cmds := c.waitConverged()
		require.Len(t, cmds, 301)
		metas, err := behind.SnapshotStore().List()
		require.NoError(t, err)
		require.NotEmpty(t, metas, "%s caught up through a snapshot", behind)
		// The install trims the LogStore on the persister, beside the FSM
		// restore on the applier: the restored state can show first.
		rafttest.WaitFor(t, c.Timeout(), fmt.Sprintf("%s's log starts after the snapshot (or is empty)", behind), func() bool {
			first := firstIndex(t, behind)
			return first == 0 || first > 200
		})
	})
}

// Scenario 10b: a restarted server recovers from its snapshot plus the log
// after it: the whole cluster restarts, and the log alone could not give
// the state (it is compacted).
func TestScenario10RestartRecoversFromSnapshotPlusLog(t *testing.T) {
	stores(t, func(t *testing.T, mk func(testing.TB, int, uint64, func(*raft.Config)) *cluster) {
		c := mk(t, 3, 11, func(cf *raft.Config) {
			snapConfig(cf)
			cf.SnapshotThreshold = 1 << 40 // snapshots only when asked
		})
		l := c.Leader()
		for i := range 100 {
			c.apply(fmt.Sprintf("c%d", i))
		}
		c.WaitApplied(l.Raft().LastIndex())
		for _, s := range c.Servers() {
			require.NoError(t, s.Raft().Snapshot(context.Background()).Error(), s.ID)
		}
		for i := range 20 {
			c.apply(fmt.Sprintf("d%d", i))
		}
		want := c.waitConverged()
		for _, s := range c.Servers() {
			require.Greater(t, firstIndex(t, s), uint64(50), "%s compacted its log", s)
			c.Crash(s)
		}
		// Restarted while cut off from everyone, a server has the snapshot's
		// state at once.
		s1 := c.Servers()[0]
		c.Network().Isolate(s1.Addr)
		c.Restart(s1)
		require.GreaterOrEqual(t, len(commands(s1)), 100, "restored from the snapshot")
		c.Network().Rejoin(s1.Addr)
		for _, s := range c.Servers()[1:] {
			c.Restart(s)
		}
		c.apply("after")
		got := c.waitConverged()
		require.Equal(t, append(want, "after"), got)
	})
}

// Snapshot answers ErrNothingNewToSnapshot when nothing was applied since
// the last one, and its future opens the snapshot.
func TestUserSnapshot(t *testing.T) {
	c := newCluster(t, 1, 12, func(cf *raft.Config) { cf.SnapshotThreshold = 1 << 40 })
	l := c.Leader()
	c.apply("a")
	f := l.Raft().Snapshot(context.Background())
	require.NoError(t, f.Error())
	meta, rc, err := f.Open()
	require.NoError(t, err)
	rc.Close()
	require.Equal(t, l.Raft().AppliedIndex(), meta.Index)
	require.ErrorIs(t, l.Raft().Snapshot(context.Background()).Error(), raft.ErrNothingNewToSnapshot)
}

func TestValidateSnapshotConfigNamesTheField(t *testing.T) {
	for field, breakIt := range map[string]func(*raft.Config){
		"SnapshotThreshold": func(c *raft.Config) { c.SnapshotThreshold = 0 },
		"SnapshotInterval":  func(c *raft.Config) { c.SnapshotInterval = 0 },
		"SnapshotChunkSize": func(c *raft.Config) { c.SnapshotChunkSize = raft.MaxSnapshotChunk + 1 },
	} {
		c := raft.DefaultConfig()
		c.LocalID = "a"
		breakIt(c)
		err := raft.ValidateConfig(c)
		require.ErrorIs(t, err, raft.ErrInvalidConfig, field)
		require.Contains(t, err.Error(), field)
	}
}

// gatedSnaps holds the sinks' writes once gateAt bytes are written, until
// open is closed.
type gatedSnaps struct {
	raft.SnapshotStore
	gateAt  int64
	written *atomic.Int64
	open    chan struct{}
}

type gatedSink struct {
	raft.SnapshotSink
	g *gatedSnaps
}

func (s gatedSnaps) Create(index, term uint64, c raft.Configuration, ci uint64) (raft.SnapshotSink, error) {
	sk, err := s.SnapshotStore.Create(index, term, c, ci)
	if err != nil {
		return nil, err
	}
	return gatedSink{sk, &s}, nil
}

func (s gatedSink) Write(p []byte) (int, error) {
	if s.g.written.Add(int64(len(p))) > s.g.gateAt {
		<-s.g.open
	}
	return s.SnapshotSink.Write(p)
}

// A transfer cut short by a leader change restarts cleanly from the new
// leader, which sends its own snapshot.
func TestSnapshotTransferSurvivesLeaderChange(t *testing.T) {
	gate := gatedSnaps{gateAt: 8 << 10, written: &atomic.Int64{}, open: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(gate.open) }) }
	t.Cleanup(release)
	var behindID atomic.Value
	logs := &lockedBuffer{}
	c := &cluster{rafttest.New(t, 3, newTestFSM, rafttest.WithSeed(15),
		rafttest.WithConfig(func(cf *raft.Config) {
			snapConfig(cf)
			cf.Logger = slog.New(slog.NewTextHandler(logs, nil))
			cf.SnapshotThreshold = 1 << 40
			cf.TrailingLogs = 0
		}),
		rafttest.WithSnapshotStoreWrapper(func(id raft.ServerID, s raft.SnapshotStore) raft.SnapshotStore {
			if b, _ := behindID.Load().(raft.ServerID); b == id {
				g := gate
				g.SnapshotStore = s
				return g
			}
			return s
		})), t}
	l := c.Leader()
	behind, other := c.Others(l)[0], c.Others(l)[1]
	behindID.Store(behind.ID)
	c.Crash(behind)
	for i := range 300 {
		c.apply(fmt.Sprintf("command-%03d-%s", i, strings.Repeat("x", 64)))
	}
	c.WaitApplied(l.Raft().LastIndex())
	require.NoError(t, l.Raft().Snapshot(context.Background()).Error())
	require.NoError(t, other.Raft().Snapshot(context.Background()).Error())

	c.Restart(behind)
	rafttest.WaitFor(t, c.Timeout(), "the transfer is under way", func() bool { return gate.written.Load() > gate.gateAt })
	c.Crash(l)
	c.WaitLeader(behind, other)
	release()
	c.apply("after")
	cmds := c.waitConverged()
	require.Len(t, cmds, 301)
	require.Contains(t, logs.String(), "snapshot transfer superseded", "the new leader's transfer replaced the old one")
	c.Restart(l)
	c.waitConverged()
}
