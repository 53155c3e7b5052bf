package raft_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Scenario 1: three servers, no leader: exactly one emerges, and everyone
// follows it.
func TestScenario1OneLeaderEmerges(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	l := c.Leader()
	var terms []uint64
	for _, nd := range c.Servers() {
		st := nd.Raft().Stats()
		terms = append(terms, parseUint(t, st["term"]))
		if nd != l {
			require.Equal(t, raft.Follower, nd.Raft().State())
		}
	}
	require.Equal(t, terms[0], terms[1])
	require.Equal(t, terms[0], terms[2])
}

func TestApplyReplicatesInOrder(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	l := c.Leader()
	futures := make([]raft.ApplyFuture, 50)
	for i := range futures {
		futures[i] = l.Raft().Apply(context.Background(), []byte(fmt.Sprintf("cmd-%d", i)))
	}
	for i, f := range futures {
		require.NoError(t, f.Error())
		require.Equal(t, i+1, f.Response(), "the FSM's response reaches the caller")
		require.NotZero(t, f.Index())
	}
	cmds := c.waitConverged()
	require.Len(t, cmds, 50)
	require.Equal(t, "cmd-0", cmds[0])
	require.Equal(t, "cmd-49", cmds[49])
}

// Scenario 2: the leader is cut off after a write reached only it: the
// write does not commit, a new leader is elected, the client's retry
// succeeds, and after healing the command is applied exactly once.
func TestScenario2WriteReachedOnlyTheLeader(t *testing.T) {
	c := newCluster(t, 3, 4, nil)
	c.apply("before")
	old := c.Leader()
	c.Network().Isolate(old.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := old.Raft().Apply(ctx, []byte("x")).Error()
	cancel()
	require.Error(t, err, "a write that reached only the leader must not commit")

	var rest []*rafttest.Server
	for _, nd := range c.Servers() {
		if nd != old {
			rest = append(rest, nd)
		}
	}
	newLeader := c.WaitLeader(rest...)
	require.NotEqual(t, old.ID, newLeader.ID)
	require.NoError(t, newLeader.Raft().Apply(context.Background(), []byte("x")).Error(), "the client's retry")

	c.Network().Rejoin(old.Addr)
	cmds := c.waitConverged()
	require.Equal(t, []string{"before", "x"}, cmds, "the old leader's copy was discarded")
}

// Scenario 3: the leader replicates to a minority and dies. The entry may
// be finished by a leader that has it, or discarded; either way nothing
// committed is lost and it is applied at most once.
func TestScenario3ReplicatedToMinority(t *testing.T) {
	t.Run("inmem", func(t *testing.T) { testScenario3(t, newCluster(t, 5, 5, nil)) })
	t.Run("durable", func(t *testing.T) { testScenario3(t, newDurableCluster(t, 5, 5, nil)) })
}

func testScenario3(t *testing.T, c *cluster) {
	c.apply("committed")
	old := c.Leader()
	var others []*rafttest.Server
	for _, nd := range c.Servers() {
		if nd != old {
			others = append(others, nd)
		}
	}
	// Only others[0] hears from the leader.
	for _, nd := range others[1:] {
		c.Cut(old, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	require.Error(t, old.Raft().Apply(ctx, []byte("x")).Error())
	cancel()
	c.Crash(old)
	c.Heal()
	c.apply("after")
	cmds := c.waitConverged()
	require.Equal(t, "committed", cmds[0])
	require.LessOrEqual(t, count(cmds, "x"), 1)
	require.Equal(t, 1, count(cmds, "after"))
	c.Restart(old)
	requireSame(t, cmds, c.waitConverged())
}

func requireSame(t *testing.T, want, got []string) {
	t.Helper()
	require.Equal(t, want, got)
}

// Scenario 7: a 5-server cluster split 3|2, with the leader on the minority
// side and on the majority side.
func TestScenario7Partition(t *testing.T) {
	for _, leaderInMinority := range []bool{true, false} {
		t.Run(fmt.Sprintf("leader in minority %v", leaderInMinority), func(t *testing.T) {
			c := newCluster(t, 5, 7, nil)
			c.apply("a")
			old := c.Leader()
			var minority, majority []*rafttest.Server
			if leaderInMinority {
				minority = append(minority, old)
			}
			for _, nd := range c.Servers() {
				switch {
				case nd == old && leaderInMinority:
				case nd != old && len(minority) < 2:
					minority = append(minority, nd)
				default:
					majority = append(majority, nd)
				}
			}
			require.Len(t, minority, 2)
			c.Partition(minority, majority)

			if leaderInMinority {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				require.Error(t, old.Raft().Apply(ctx, []byte("lost")).Error(), "the minority cannot commit")
				cancel()
				rafttest.WaitFor(t, 5*time.Second, "the old leader to step down (CheckQuorum)", func() bool {
					return old.Raft().State() != raft.Leader
				})
			}
			l := c.WaitLeader(majority...)
			require.NoError(t, l.Raft().Apply(context.Background(), []byte("b")).Error())
			for _, nd := range minority {
				require.NotEqual(t, raft.Leader, nd.Raft().State())
			}
			c.Heal()
			cmds := c.waitConverged()
			require.Equal(t, []string{"a", "b"}, cmds)
		})
	}
}

// A 5-server cluster commits with 2 servers down; with 3 down it stops, and
// callers get their context's error; nothing is applied twice.
func TestFiveServersToleratesTwoFailures(t *testing.T) {
	t.Run("inmem", func(t *testing.T) { testFiveServers(t, newCluster(t, 5, 8, nil)) })
	t.Run("durable", func(t *testing.T) { testFiveServers(t, newDurableCluster(t, 5, 8, nil)) })
}

func testFiveServers(t *testing.T, c *cluster) {
	c.apply("a")
	c.Crash(c.Servers()[0])
	c.Crash(c.Servers()[1])
	c.apply("b")
	c.Crash(c.Servers()[2])
	l := c.Live()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var errs []error
	for _, nd := range l {
		errs = append(errs, nd.Raft().Apply(ctx, []byte("c")).Error())
	}
	for _, err := range errs {
		require.Error(t, err)
		require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, raft.ErrNotLeader) ||
			errors.Is(err, raft.ErrLeadershipLost), "unexpected error %v", err)
	}
	for _, nd := range c.Servers()[:3] {
		c.Restart(nd)
	}
	c.apply("d")
	cmds := c.waitConverged()
	require.Equal(t, 1, count(cmds, "a"))
	require.Equal(t, 1, count(cmds, "b"))
	require.LessOrEqual(t, count(cmds, "c"), 1)
	require.Equal(t, 1, count(cmds, "d"))
}

// A full-cluster restart keeps every committed entry, on the in-memory
// stores and on the durable ones.
func TestFullClusterRestart(t *testing.T) {
	t.Run("inmem", func(t *testing.T) { testFullClusterRestart(t, newCluster(t, 3, 9, nil)) })
	t.Run("durable", func(t *testing.T) { testFullClusterRestart(t, newDurableCluster(t, 3, 9, nil)) })
}

func testFullClusterRestart(t *testing.T, c *cluster) {
	for i := 0; i < 20; i++ {
		c.apply(fmt.Sprintf("v%d", i))
	}
	before := c.waitConverged()
	for _, nd := range c.Servers() {
		c.Crash(nd)
	}
	for _, nd := range c.Servers() {
		c.Restart(nd)
	}
	c.apply("after-restart")
	after := c.waitConverged()
	require.Equal(t, append(before, "after-restart"), after)
}

func TestVerifyLeaderAndBarrier(t *testing.T) {
	c := newCluster(t, 3, 10, nil)
	l := c.Leader()
	require.NoError(t, l.Raft().VerifyLeader(context.Background()).Error())
	f := l.Raft().Apply(context.Background(), []byte("a"))
	require.NoError(t, l.Raft().Barrier(context.Background()).Error())
	require.NoError(t, f.Error())
	require.GreaterOrEqual(t, l.Raft().AppliedIndex(), f.Index())
	for _, nd := range c.Servers() {
		if nd != l {
			require.ErrorIs(t, nd.Raft().VerifyLeader(context.Background()).Error(), raft.ErrNotLeader)
		}
	}
	// A leader cut off from everyone cannot confirm itself.
	c.Network().Isolate(l.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.Error(t, l.Raft().VerifyLeader(ctx).Error())
}

func TestShutdownFailsPendingWork(t *testing.T) {
	c := newCluster(t, 3, 11, nil)
	l := c.Leader()
	c.Network().Isolate(l.Addr)
	f := l.Raft().Apply(context.Background(), []byte("never"))
	require.NoError(t, l.Raft().Shutdown())
	require.ErrorIs(t, f.Error(), raft.ErrRaftShutdown)
	require.Equal(t, raft.Shutdown, l.Raft().State())
	require.ErrorIs(t, l.Raft().Apply(context.Background(), []byte("late")).Error(), raft.ErrRaftShutdown)
	require.NoError(t, l.Raft().Shutdown(), "a second Shutdown is harmless")
}

func parseUint(t *testing.T, s string) uint64 {
	var v uint64
	_, err := fmt.Sscan(s, &v)
	require.NoError(t, err)
	return v
}
