package raft_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// Every read through ReadIndex + WaitApplied sees every write acknowledged
// before it, on the leader, and concurrent reads all succeed.
func TestReadIndexSeesAcknowledgedWrites(t *testing.T) {
	c := newCluster(t, 3, 31, nil)
	l := c.Leader()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		cmd := fmt.Sprintf("w%d", i)
		f := l.Raft().Apply(ctx, []byte(cmd))
		require.NoError(t, f.Error())
		idx, err := l.Raft().ReadIndex(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, idx, f.Index())
		require.NoError(t, l.Raft().WaitApplied(ctx, idx))
		require.Contains(t, commands(l), cmd)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Raft().ReadIndex(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, s := range c.Others(l) {
		_, err := s.Raft().ReadIndex(ctx)
		require.ErrorIs(t, err, raft.ErrNotLeader)
	}
}

// Scenario 7 with reads: a leader cut off in a minority never answers a
// linearizable read, so it can never serve one that misses a write the
// majority commits meanwhile. CheckQuorum is off so that the old leader keeps
// believing it leads: the read must fail on confirmation alone.
func TestPartitionedLeaderServesNoRead(t *testing.T) {
	c := newCluster(t, 5, 32, func(conf *raft.Config) { conf.CheckQuorumDisabled = true })
	c.apply("a")
	old := c.Leader()
	others := c.Others(old)
	minority := []*rafttest.Server{old, others[0]}
	c.Partition(minority, others[1:])
	readErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := old.Raft().ReadIndex(ctx)
		readErr <- err
	}()
	l := c.WaitLeader(others[1:]...)
	require.NoError(t, l.Raft().Apply(context.Background(), []byte("b")).Error())
	require.Error(t, <-readErr, "the old leader must not confirm a read")
	require.Equal(t, raft.Leader, old.Raft().State(), "without CheckQuorum it still believes it leads")

	idx, err := l.Raft().ReadIndex(context.Background())
	require.NoError(t, err)
	require.NoError(t, l.Raft().WaitApplied(context.Background(), idx))
	require.Contains(t, commands(l), "b")
	c.Heal()
}

func TestWaitAppliedHonoursContext(t *testing.T) {
	c := newCluster(t, 3, 33, nil)
	l := c.Leader()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, l.Raft().WaitApplied(ctx, 1<<40), context.DeadlineExceeded)
}

// Stale reads: a follower reports when it last heard from the leader, so a
// caller can bound staleness; a cut-off follower's contact ages.
func TestLastContact(t *testing.T) {
	c := newCluster(t, 3, 34, nil)
	l := c.Leader()
	f := c.Others(l)[0]
	rafttest.WaitFor(t, 5*time.Second, "the follower to hear from the leader", func() bool {
		return time.Since(f.Raft().LastContact()) < 50*time.Millisecond
	})
	require.WithinDuration(t, time.Now(), l.Raft().LastContact(), time.Second, "a leader is always current")
	c.Network().Isolate(f.Addr)
	rafttest.WaitFor(t, 5*time.Second, "the cut-off follower's contact to age", func() bool {
		return time.Since(f.Raft().LastContact()) > 300*time.Millisecond
	})
	require.NotEqual(t, "never", f.Raft().Stats()["last_contact"])
}
