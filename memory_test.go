package raft_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// statUint reads a numeric Stats value.
func statUint(t *testing.T, r *raft.Raft, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(r.Stats()[key], 10, 64)
	require.NoError(t, err, "Stats()[%q]", key)
	return v
}

// A flood of proposals faster than the disk: the leader refuses what is
// beyond MaxPendingBytes with ErrProposalQueueFull (not appended: no
// server ever applies a refused command), never holds more than the bound
// plus one batch, and loses nothing it acknowledged.
func TestProposalFloodIsRefusedNotQueued(t *testing.T) {
	const limit = 64 << 10
	const cmdSize = 200
	c := newDurableCluster(t, 3, 21, func(cf *raft.Config) {
		cf.MaxPendingBytes = limit
		cf.MaxLogCacheBytes = 64 << 10
	})
	l := c.Leader()
	const floods, each = 8, 400
	type outcome struct {
		cmd string
		f   raft.ApplyFuture
	}
	results := make([][]outcome, floods)
	var wg sync.WaitGroup
	for g := range floods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pad := make([]byte, cmdSize-16)
			for i := range each {
				// Fire and forget: no waiting for the previous command.
				cmd := fmt.Sprintf("%02d-%05d-%s", g, i, pad)
				results[g] = append(results[g], outcome{cmd, l.Raft().Apply(context.Background(), []byte(cmd))})
			}
		}()
	}
	stop := make(chan struct{})
	var peak uint64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			// Not statUint: FailNow must not run off the test's goroutine.
			if v, err := strconv.ParseUint(l.Raft().Stats()["log_pending_bytes"], 10, 64); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	wg.Wait()
	acked, refused := map[string]bool{}, map[string]bool{}
	for _, rs := range results {
		for _, o := range rs {
			switch err := o.f.Error(); {
			case err == nil:
				acked[o.cmd] = true
			case errors.Is(err, raft.ErrProposalQueueFull):
				refused[o.cmd] = true
			default:
				t.Fatalf("%s: unexpected error %v", o.cmd[:8], err)
			}
		}
	}
	close(stop)
	<-sampled
	require.NotEmpty(t, refused, "the flood outran the disk")
	require.NotEmpty(t, acked)
	// One batch (MaxAppendEntries commands) may go in on top of the bound.
	require.LessOrEqual(t, peak, uint64(limit+256*(cmdSize+64)), "pending bytes")
	cmds := c.waitConverged()
	applied := map[string]bool{}
	for _, cmd := range cmds {
		applied[cmd] = true
	}
	for cmd := range acked {
		require.True(t, applied[cmd], "acknowledged %s lost", cmd[:8])
	}
	for cmd := range refused {
		require.False(t, applied[cmd], "refused %s was applied", cmd[:8])
	}
	require.Len(t, cmds, len(acked))
}

// A follower that was down while the leader evicted the entries it lacks
// catches up from the leader's LogStore, not through a snapshot, and the
// leader's log memory stays within MaxLogCacheBytes.
func TestLaggingFollowerReadsEvictedEntries(t *testing.T) {
	const cache = 8 << 10
	c := newDurableCluster(t, 3, 22, func(cf *raft.Config) {
		cf.MaxLogCacheBytes = cache
		cf.SnapshotThreshold = 1 << 40
		cf.SnapshotMaxEntries = 1 << 40
	})
	l := c.Leader()
	behind := c.Others(l)[0]
	c.Crash(behind)
	for i := range 600 {
		c.apply(fmt.Sprintf("c%d", i))
	}
	require.LessOrEqual(t, statUint(t, l.Raft(), "log_memory_bytes"), uint64(cache))
	c.Restart(behind)
	c.apply("after")
	cmds := c.waitConverged()
	require.Len(t, cmds, 601)
	metas, err := behind.SnapshotStore().List()
	require.NoError(t, err)
	require.Empty(t, metas, "%s caught up from the log, without a snapshot", behind)
	require.LessOrEqual(t, statUint(t, l.Raft(), "log_memory_bytes"), uint64(cache))
}

// SnapshotMaxEntries takes a snapshot as soon as that many entries were
// applied, without waiting for SnapshotInterval, so the log stays bounded
// under any load.
func TestSnapshotMaxEntriesBoundsTheLog(t *testing.T) {
	c := newCluster(t, 3, 23, func(cf *raft.Config) {
		cf.SnapshotThreshold = 50
		cf.SnapshotMaxEntries = 100
		cf.SnapshotInterval = time.Hour
		cf.TrailingLogs = 10
	})
	l := c.Leader()
	for i := range 350 {
		c.apply(fmt.Sprintf("c%d", i))
	}
	rafttest.WaitFor(t, c.Timeout(), "the leader compacts its log", func() bool {
		return firstIndex(t, l) > 200
	})
	metas, err := l.SnapshotStore().List()
	require.NoError(t, err)
	require.NotEmpty(t, metas)
}

// A restart reads the whole log but keeps only MaxLogCacheBytes of it in
// memory (the terms and configurations of the rest); the entries it has not
// applied yet are read back from the LogStore as they commit. The whole
// cluster restarts, so leaders and followers both replay that way.
func TestRestartKeepsOnlyTheLogTailInMemory(t *testing.T) {
	const cache = 8 << 10
	c := newDurableCluster(t, 3, 24, func(cf *raft.Config) {
		cf.MaxLogCacheBytes = cache
		cf.SnapshotThreshold = 1 << 40
	})
	for i := range 600 {
		c.apply(fmt.Sprintf("c%d", i))
	}
	c.waitConverged()
	for _, s := range c.Servers() {
		c.Crash(s)
	}
	for _, s := range c.Servers() {
		c.Restart(s)
		require.LessOrEqual(t, statUint(t, s.Raft(), "log_memory_bytes"), uint64(cache), "%s right after its start", s)
	}
	c.apply("after")
	cmds := c.waitConverged()
	require.Len(t, cmds, 601)
	for _, s := range c.Servers() {
		require.LessOrEqual(t, statUint(t, s.Raft(), "log_memory_bytes"), uint64(cache), "%s", s)
	}
}
