package raft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// Apply on a follower is forwarded to the leader; the follower's future
// completes once the follower applied the command, with its own FSM's
// response, so a stale read there sees the write. Barrier works the same.
func TestApplyOnFollowerIsForwarded(t *testing.T) {
	c := newCluster(t, 3, 61, nil)
	l := c.Leader()
	ctx := context.Background()
	for i, s := range c.Others(l) {
		cmd := fmt.Sprintf("via-%s", s.ID)
		f := s.Raft().Apply(ctx, []byte(cmd))
		require.NoError(t, f.Error(), "%s", s.ID)
		cmds := commands(s)
		require.Equal(t, cmd, cmds[len(cmds)-1], "applied on the follower when Apply returns")
		require.Equal(t, len(cmds), f.Response(), "the follower's own FSM's response")
		require.Equal(t, i+1, len(cmds))
		require.GreaterOrEqual(t, s.Raft().AppliedIndex(), f.Index())
		require.NoError(t, s.Raft().Barrier(ctx).Error())
	}
	cmds := c.waitConverged()
	require.Len(t, cmds, 2)
	for _, s := range c.Others(l) {
		require.Equal(t, 1, count(cmds, "via-"+string(s.ID)))
	}
}

// With forwarding off, Apply on a follower fails at once naming the leader.
func TestApplyOnFollowerNamesTheLeader(t *testing.T) {
	c := newCluster(t, 3, 3, func(cfg *raft.Config) { cfg.ForwardingDisabled = true })
	l := c.Leader()
	for _, nd := range c.Others(l) {
		err := nd.Raft().Apply(context.Background(), []byte("x")).Error()
		require.ErrorIs(t, err, raft.ErrNotLeader)
		var nl *raft.NotLeaderError
		require.ErrorAs(t, err, &nl)
		require.Equal(t, l.ID, nl.LeaderID)
		require.Equal(t, l.Addr, nl.LeaderAddress)
	}
	require.Empty(t, commands(l))
}

// Forwarded proposals under a lossy, duplicating, reordering network and
// a leader crash: every acknowledged command is applied, and no command
// is applied twice (a duplicated MsgPropose must not append twice).
func TestForwardingUnderFaults(t *testing.T) {
	c := newCluster(t, 5, 62, nil)
	net := c.Network()
	require.NoError(t, net.SetDropRate(0.05))
	require.NoError(t, net.SetReorderRate(0.2))
	require.NoError(t, net.SetReorderHold(3*time.Millisecond))
	require.NoError(t, net.SetDuplicateRate(0.05))

	type result struct {
		cmd   string
		index uint64
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
	)
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.err == nil {
				n++
			}
		}
		return n
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Any live server but the leader: one always exists.
				var s *rafttest.Server
				for _, cand := range c.Live() {
					if cand.Raft().State() != raft.Leader {
						s = cand
						break
					}
				}
				cmd := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				f := s.Raft().Apply(ctx, []byte(cmd))
				err := f.Error()
				cancel()
				if errors.Is(err, raft.ErrNotLeader) {
					// No leader known yet: wait, bounded, for this server
					// to apply something new (a new leader's first commit).
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					_ = s.Raft().WaitApplied(ctx, s.Raft().AppliedIndex()+1)
					cancel()
				}
				var idx uint64
				if err == nil {
					idx = f.Index()
				}
				mu.Lock()
				results = append(results, result{cmd, idx, err})
				mu.Unlock()
			}
		}()
	}
	rafttest.WaitFor(t, 10*time.Second, "forwarded commands", func() bool { return acked() >= 30 })
	c.Crash(c.Leader())
	before := acked()
	rafttest.WaitFor(t, 10*time.Second, "forwarded commands after the crash", func() bool { return acked() >= before+30 })
	close(stop)
	wg.Wait()
	require.NoError(t, net.SetDropRate(0))
	require.NoError(t, net.SetDuplicateRate(0))
	require.NoError(t, net.SetReorderRate(0))

	c.apply("end")
	cmds := c.waitConverged()
	at := map[string]int{}
	for i, cmd := range cmds {
		require.Zero(t, at[cmd], "%s applied twice", cmd)
		at[cmd] = i + 1
	}
	ok := 0
	for _, r := range results {
		if r.err != nil {
			if !errors.Is(r.err, raft.ErrLeadershipLost) && !errors.Is(r.err, raft.ErrNotLeader) &&
				!errors.Is(r.err, context.DeadlineExceeded) && !errors.Is(r.err, raft.ErrRaftShutdown) {
				t.Errorf("%s: unexpected error %v", r.cmd, r.err)
			}
			continue
		}
		ok++
		require.NotZero(t, at[r.cmd], "acknowledged %s was lost", r.cmd)
		var e raft.Log
		require.NoError(t, c.Live()[0].LogStore().GetLog(r.index, &e))
		require.Equal(t, r.cmd, string(e.Data), "the index Apply named holds the command")
	}
	require.GreaterOrEqual(t, ok, 60)
}
