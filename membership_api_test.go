package raft_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// writeLoad writes unique commands through whichever server leads, and
// records which were acknowledged and which had an unknown outcome. It never
// retries a command whose outcome is unknown, so a command applied twice is
// a bug, not the load's doing.
type writeLoad struct {
	c        *cluster
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu         sync.Mutex
	acked      map[string]bool
	maybe      map[string]bool
	unexpected []error
}

func startLoad(t *testing.T, c *cluster, writers int) *writeLoad {
	l := &writeLoad{c: c, stop: make(chan struct{}), acked: map[string]bool{}, maybe: map[string]bool{}}
	t.Cleanup(l.halt) // before the cluster's shutdown and leak check
	for w := range writers {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.run(w) }()
	}
	return l
}

func (l *writeLoad) run(w int) {
	backoff := func() bool {
		select {
		case <-l.stop:
			return false
		case <-time.After(2 * time.Millisecond):
			return true
		}
	}
	for i := 0; ; i++ {
		cmd := fmt.Sprintf("w%d-%d", w, i)
	retry:
		select {
		case <-l.stop:
			return
		default:
		}
		r := l.c.CurrentLeader()
		if r == nil {
			if !backoff() {
				return
			}
			goto retry
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := r.Apply(ctx, []byte(cmd)).Error()
		cancel()
		l.mu.Lock()
		switch {
		case err == nil:
			l.acked[cmd] = true
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Refused before it entered the log: safe to retry.
			l.mu.Unlock()
			if !backoff() {
				return
			}
			goto retry
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, context.DeadlineExceeded), errors.Is(err, raft.ErrRaftShutdown):
			l.maybe[cmd] = true
		default:
			l.unexpected = append(l.unexpected, fmt.Errorf("%s: %w", cmd, err))
		}
		l.mu.Unlock()
	}
}

func (l *writeLoad) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *writeLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until n more writes have been acknowledged.
func (l *writeLoad) waitMore(t *testing.T, n int) {
	t.Helper()
	want := l.ackedCount() + n
	rafttest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d acknowledged writes", want), func() bool { return l.ackedCount() >= want })
}

// stopAndCheck stops the load and checks every live server applied every
// acknowledged write exactly once, nothing twice, and nothing never written.
func (l *writeLoad) stopAndCheck(t *testing.T) {
	t.Helper()
	l.halt()
	require.Empty(t, l.unexpected)
	l.c.apply("final") // commits everything before it on the final cluster
	cmds := l.c.waitConverged()
	seen := map[string]int{}
	for _, cmd := range cmds {
		seen[cmd]++
	}
	for cmd, n := range seen {
		require.Equal(t, 1, n, "%s applied %d times", cmd, n)
		require.True(t, cmd == "final" || l.acked[cmd] || l.maybe[cmd], "%s applied but never written", cmd)
	}
	for cmd := range l.acked {
		require.Equal(t, 1, seen[cmd], "acknowledged write %s lost", cmd)
	}
	t.Logf("%d writes acknowledged, %d with unknown outcome, %d applied", len(l.acked), len(l.maybe), len(cmds))
}

func voters(ids ...raft.ServerID) raft.Configuration {
	var c raft.Configuration
	for _, id := range ids {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	return c
}

func requireCommittedVoters(t *testing.T, c *cluster, ids ...raft.ServerID) {
	t.Helper()
	cs := c.Configurations()
	require.False(t, cs.Committed.Joint())
	require.ElementsMatch(t, voters(ids...).Servers, cs.Committed.Servers)
	require.Equal(t, cs.LatestIndex, cs.CommittedIndex)
}

// Replace every server of a 3-server cluster, one at a time (add a voter,
// remove an old server), while writes keep coming: no acknowledged write is
// lost and none is applied twice.
func TestReplaceServersOneAtATime(t *testing.T) {
	c := newCluster(t, 3, 71, nil)
	c.Leader()
	load := startLoad(t, c, 2)
	load.waitMore(t, 20)
	for i, old := range c.Servers() {
		s := c.AddServer(raft.ServerID(fmt.Sprintf("s%d", i+4)))
		c.AddVoter(s)
		load.waitMore(t, 10)
		c.RemoveServer(old)
		c.Crash(old)
		load.waitMore(t, 10)
	}
	load.stopAndCheck(t)
	requireCommittedVoters(t, c, "s4", "s5", "s6")
}

// Replace all three servers with one joint change, under load, and watch
// an observer report the joint configuration.
func TestReplaceAllServersAtOnce(t *testing.T) {
	c := newCluster(t, 3, 72, nil)
	l := c.Leader()
	obs := make(chan raft.Observation, 1024)
	defer l.Raft().RegisterObserver(obs)()
	load := startLoad(t, c, 2)
	load.waitMore(t, 20)
	olds := c.Servers()
	for i := range 3 {
		c.AddServer(raft.ServerID(fmt.Sprintf("s%d", i+4)))
	}
	target := voters("s4", "s5", "s6")
	c.ChangeMembership("replace all",
		func(ctx context.Context, r *raft.Raft) raft.IndexFuture { return r.ChangeConfiguration(ctx, target) },
		func(conf raft.Configuration) bool {
			return !conf.Joint() && len(conf.Servers) == 3 && conf.Servers[0].ID == "s4"
		})
	for _, s := range olds {
		c.Crash(s)
	}
	load.waitMore(t, 20)
	load.stopAndCheck(t)
	requireCommittedVoters(t, c, "s4", "s5", "s6")

	var joint, committedNew bool
	for len(obs) > 0 {
		o := <-obs
		if o.Configurations == nil {
			continue
		}
		joint = joint || o.Configurations.Latest.Joint()
		committedNew = committedNew || (o.Configurations.Committed.Servers[0].ID == "s4" && !o.Configurations.Committed.Joint())
	}
	require.True(t, joint, "the observer saw C_old,new")
	require.True(t, committedNew, "the observer saw C_new committed")
}

// A server removed while cut off keeps running and campaigning (it never
// learned it was removed), but the remaining cluster's term does not move.
func TestRemovedServerDoesNotDisrupt(t *testing.T) {
	c := newCluster(t, 3, 73, nil)
	l := c.Leader()
	victim := c.Others(l)[0]
	rest := c.Others(victim)
	c.Partition(rest, []*rafttest.Server{victim})
	c.ChangeMembership("remove "+string(victim.ID),
		func(ctx context.Context, r *raft.Raft) raft.IndexFuture { return r.RemoveServer(ctx, victim.ID) },
		func(conf raft.Configuration) bool { return len(conf.Servers) == 2 })
	cs, err := victim.Raft().GetConfigurations(context.Background())
	require.NoError(t, err)
	require.Len(t, cs.Latest.Servers, 3, "the victim did not learn it was removed")

	obs := make(chan raft.Observation, 1024)
	defer victim.Raft().RegisterObserver(obs)()
	term := l.Raft().Stats()["term"]
	c.Heal()
	rafttest.WaitFor(t, 10*time.Second, "the removed server to campaign", func() bool {
		for len(obs) > 0 {
			if o := <-obs; o.State == raft.Candidate {
				return true
			}
		}
		return false
	})
	// The members, whose configuration without it is committed, ignore
	// its vote requests: over five more election timeouts (several more
	// campaigns) nothing moves.
	const et = 100 * time.Millisecond // rafttest's ElectionTimeout
	quietUntil := time.Now().Add(5 * et)
	rafttest.WaitFor(t, 10*time.Second+5*et, "five election timeouts to pass", func() bool {
		return time.Now().After(quietUntil)
	})
	require.Equal(t, raft.Leader, l.Raft().State())
	for _, s := range rest {
		require.Equal(t, term, s.Raft().Stats()["term"], "%s's term moved", s.ID)
	}
	c.Apply([]byte("still fine"))
}

func TestLeadershipTransferToServer(t *testing.T) {
	c := newCluster(t, 3, 74, nil)
	l := c.Leader()
	c.apply("a")
	target := c.Others(l)[1]
	require.NoError(t, l.Raft().LeadershipTransferToServer(context.Background(), target.ID, target.Addr).Error())
	require.Equal(t, target, c.Leader())
	c.apply("b")
	require.Equal(t, []string{"a", "b"}, c.waitConverged())

	err := target.Raft().LeadershipTransferToServer(context.Background(), "nobody", "").Error()
	require.ErrorIs(t, err, raft.ErrNoTransferTarget)
	err = l.Raft().LeadershipTransfer(context.Background()).Error()
	require.ErrorIs(t, err, raft.ErrNotLeader)
}

// Without a target the most up-to-date voter takes over, not one that lags.
func TestLeadershipTransferMostUpToDate(t *testing.T) {
	c := newCluster(t, 3, 75, nil)
	l := c.Leader()
	lagging := c.Others(l)[0]
	c.Cut(l, lagging)
	for i := range 5 {
		c.apply(fmt.Sprint("x", i))
	}
	require.NoError(t, l.Raft().LeadershipTransfer(context.Background()).Error())
	c.Heal()
	nl := c.Leader()
	require.NotEqual(t, l, nl)
	require.NotEqual(t, lagging, nl)
}

// A transfer to an unreachable server times out after an election timeout;
// proposals meanwhile fail with ErrLeadershipTransferInProgress, and the old
// leader takes them again afterwards.
func TestLeadershipTransferTimeout(t *testing.T) {
	c := newCluster(t, 3, 76, func(conf *raft.Config) { conf.ElectionTimeout = 500 * time.Millisecond })
	l := c.Leader()
	target := c.Others(l)[0]
	c.Partition(c.Others(target), []*rafttest.Server{target})
	f := l.Raft().LeadershipTransferToServer(context.Background(), target.ID, target.Addr)
	err := l.Raft().Apply(context.Background(), []byte("during")).Error()
	require.ErrorIs(t, err, raft.ErrLeadershipTransferInProgress)
	require.ErrorIs(t, f.Error(), raft.ErrLeadershipTransferTimeout)
	require.Equal(t, raft.Leader, l.Raft().State())
	require.NoError(t, l.Raft().Apply(context.Background(), []byte("after")).Error())
	c.Heal()
	require.Equal(t, []string{"after"}, c.waitConverged())
}

// GetConfigurations and the conveniences: a nonvoter is added, promoted by
// AddVoter, demoted, removed; bad requests get clear errors.
func TestMembershipConveniences(t *testing.T) {
	c := newCluster(t, 3, 77, nil)
	l := c.Leader().Raft()
	ctx := context.Background()
	s4 := c.AddServer("s4")
	f := l.AddNonvoter(ctx, s4.ID, s4.Addr)
	require.NoError(t, f.Error())
	cs, err := l.GetConfigurations(ctx)
	require.NoError(t, err)
	require.Equal(t, f.Index(), cs.CommittedIndex)
	require.Contains(t, cs.Committed.Servers, raft.Server{Suffrage: raft.Nonvoter, ID: "s4", Address: "s4"})
	latest, err := l.GetConfiguration(ctx)
	require.NoError(t, err)
	require.Equal(t, cs.Latest, latest)

	require.NoError(t, l.AddVoter(ctx, s4.ID, s4.Addr).Error())
	cs, _ = l.GetConfigurations(ctx)
	require.Contains(t, cs.Committed.Servers, raft.Server{Suffrage: raft.Voter, ID: "s4", Address: "s4"})
	require.NoError(t, l.DemoteVoter(ctx, s4.ID).Error())
	cs, _ = l.GetConfigurations(ctx)
	require.Contains(t, cs.Committed.Servers, raft.Server{Suffrage: raft.Nonvoter, ID: "s4", Address: "s4"})
	require.NoError(t, l.RemoveServer(ctx, s4.ID).Error())
	cs, _ = l.GetConfigurations(ctx)
	require.Len(t, cs.Committed.Servers, 3)
	c.Crash(s4)

	require.ErrorIs(t, l.RemoveServer(ctx, "s9").Error(), raft.ErrUnknownServer)
	require.ErrorIs(t, l.DemoteVoter(ctx, "s9").Error(), raft.ErrUnknownServer)
	require.ErrorIs(t, l.ChangeConfiguration(ctx, raft.Configuration{}).Error(), raft.ErrInvalidConfiguration)
	for _, s := range c.Live() {
		if s.Raft() != l {
			require.ErrorIs(t, s.Raft().AddVoter(ctx, "s9", "s9").Error(), raft.ErrNotLeader)
		}
	}
	// An unreachable new voter is never promoted; giving up abandons the
	// change, and the next one may start.
	ctx2, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, l.AddVoter(ctx2, "s9", "s9").Error(), context.DeadlineExceeded)
	rafttest.WaitFor(t, 5*time.Second, "the abandoned change to clear", func() bool {
		err := l.AddNonvoter(ctx, "s9", "s9").Error()
		return err == nil
	})
	cs, _ = l.GetConfigurations(ctx)
	require.True(t, slices.Contains(cs.Committed.Servers, raft.Server{Suffrage: raft.Nonvoter, ID: "s9", Address: "s9"}))
}
