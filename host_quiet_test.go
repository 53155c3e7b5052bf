package raft_test

import (
	"context"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/require"
)

// waitQuiet waits until every running group is quiet on every host.
func (c *hostCluster) waitQuiet(skip int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for i, h := range c.hosts {
			if st := h.Stats(); i != skip && st.Quiet != st.Groups {
				return false
			}
		}
		return true
	}, 20*time.Second, 5*time.Millisecond, "the groups did not all go quiet")
}

// leaderHost returns the position of the host leading group g.
func (c *hostCluster) leaderHost(g raft.GroupID, except int) int {
	l := c.leader(g, except)
	for i, h := range c.hosts {
		if h.Group(g) == l {
			return i
		}
	}
	c.t.Fatalf("group %d: its leader is on no host", g)
	return -1
}

// Idle groups go quiet on every host; a write wakes its group, reaches
// every replica, and the group goes quiet again. While quiet, followers'
// LastContact stays fresh: the host hears from the leader's host for them.
func TestHostIdleGroupsGoQuiet(t *testing.T) {
	const groups = 20
	c := newHostCluster(t, 3, nil)
	for g := raft.GroupID(1); g <= groups; g++ {
		c.start(g, 0, 1, 2)
	}
	c.waitQuiet(-1)
	for g := raft.GroupID(1); g <= groups; g++ {
		require.NoError(t, c.leader(g, -1).Apply(context.Background(), []byte("woken")).Error())
	}
	for g := raft.GroupID(1); g <= groups; g++ {
		for i := range c.hosts {
			require.Eventually(t, func() bool { return count(c.fsms[i][g].commands(), "woken") == 1 }, 10*time.Second, time.Millisecond, "group %d host %d", g, i)
		}
	}
	c.waitQuiet(-1)
	require.Never(t, func() bool {
		for g := raft.GroupID(1); g <= groups; g++ {
			for _, h := range c.hosts {
				// (nil once the test ends: testify may still run a check then.)
				if r := h.Group(g); r != nil && r.State() == raft.Follower && time.Since(r.LastContact()) > 200*time.Millisecond {
					t.Logf("group %d: last contact %v ago", g, time.Since(r.LastContact()))
					return true
				}
			}
		}
		return false
	}, 500*time.Millisecond, 10*time.Millisecond, "a quiet follower's LastContact went stale")
	require.Equal(t, groups, c.hosts[0].Stats().Quiet, "woke while watched")
}

// A quiet group's followers learn that their leader's host went silent
// from their own host, and elect a new leader among themselves; the
// silent host's quiet leaders find they lost their quorum and step down.
func TestHostQuietGroupsSurviveTheirLeaderHost(t *testing.T) {
	const groups = 12
	c := newHostCluster(t, 3, nil)
	for g := raft.GroupID(1); g <= groups; g++ {
		c.start(g, 0, 1, 2)
	}
	c.waitQuiet(-1)
	// The host that leads the most groups goes silent.
	led := make([]int, 3)
	for g := raft.GroupID(1); g <= groups; g++ {
		led[c.leaderHost(g, -1)]++
	}
	cut := 0
	for i := range led {
		if led[i] > led[cut] {
			cut = i
		}
	}
	require.Positive(t, led[cut])
	c.net.isolate(raft.ServerAddress(c.ids[cut]), true)
	for g := raft.GroupID(1); g <= groups; g++ {
		require.Eventually(t, func() bool {
			return c.leader(g, cut).Apply(context.Background(), []byte("during")).Error() == nil
		}, 10*time.Second, time.Millisecond, "group %d", g)
	}
	for g := raft.GroupID(1); g <= groups; g++ {
		r := c.hosts[cut].Group(g)
		require.Eventually(t, func() bool { return r.State() != raft.Leader }, 10*time.Second, time.Millisecond,
			"group %d: the cut-off host still leads it", g)
	}
	c.net.isolate(raft.ServerAddress(c.ids[cut]), false)
	for g := raft.GroupID(1); g <= groups; g++ {
		require.Eventually(t, func() bool { return count(c.fsms[cut][g].commands(), "during") == 1 }, 10*time.Second, time.Millisecond, "group %d", g)
	}
	c.waitQuiet(-1)
}

// A quiet group stopped on its leader's host is no longer vouched for: its
// other replicas wake and elect a new leader.
func TestHostQuietGroupStoppedOnItsLeaderHost(t *testing.T) {
	c := newHostCluster(t, 3, nil)
	c.start(1, 0, 1, 2)
	c.start(2, 0, 1, 2) // a second group keeps the hosts talking
	c.waitQuiet(-1)
	at := c.leaderHost(1, -1)
	require.NoError(t, c.hosts[at].StopGroup(1))
	require.Eventually(t, func() bool {
		return c.leader(1, at).Apply(context.Background(), []byte("after")).Error() == nil
	}, 10*time.Second, time.Millisecond)
}

// With DisableQuiescence no group goes quiet.
func TestHostDisableQuiescence(t *testing.T) {
	c := newHostCluster(t, 3, func(hc *raft.HostConfig) { hc.DisableQuiescence = true })
	c.start(1, 0, 1, 2)
	l := c.leader(1, -1)
	require.NoError(t, l.Apply(context.Background(), []byte("x")).Error())
	require.Never(t, func() bool {
		for _, h := range c.hosts {
			if h.Stats().Quiet > 0 {
				return true
			}
		}
		return false
	}, time.Second, 10*time.Millisecond, "a group went quiet")
}
