package raft_test

import (
	"context"
	"fmt"
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
		first := firstIndex(t, behind)
		require.True(t, first == 0 || first > 200, "%s's log starts after the snapshot (or is empty), not at %d", behind, first)
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
