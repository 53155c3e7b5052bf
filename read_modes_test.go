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

// Every mode but Stale returns an index covering every acknowledged write,
// and the FSM has applied it when Read returns: Linearizable on the leader
// and on followers (follower reads), Lease on the leader.
func TestReadModesSeeAcknowledgedWrites(t *testing.T) {
	c := newCluster(t, 3, 41, nil)
	l := c.Leader()
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		cmd := fmt.Sprintf("w%d", i)
		f := l.Raft().Apply(ctx, []byte(cmd))
		require.NoError(t, f.Error())
		for _, s := range c.Servers() {
			idx, err := s.Raft().Read(ctx, raft.Linearizable)
			require.NoError(t, err, "%s: linearizable read", s.ID)
			require.GreaterOrEqual(t, idx, f.Index())
			require.Contains(t, commands(s), cmd, "%s: linearizable read", s.ID)

			idx, err = s.Raft().Read(ctx, raft.Stale)
			require.NoError(t, err)
			require.Equal(t, s.Raft().AppliedIndex() >= idx, true)
		}
		idx, err := l.Raft().Read(ctx, raft.Lease)
		require.NoError(t, err)
		require.GreaterOrEqual(t, idx, f.Index())
		require.Contains(t, commands(l), cmd)
	}
	for _, s := range c.Others(l) {
		_, err := s.Raft().Read(ctx, raft.Lease)
		require.ErrorIs(t, err, raft.ErrNotLeader, "only the leader serves lease reads")
	}
	// Concurrent follower reads share the leader's rounds.
	f := c.Others(l)[0]
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.Raft().Read(ctx, raft.Linearizable)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// Scenario 7 with reads: the old leader, cut off in a minority with
// CheckQuorum on, serves no linearizable read (it cannot confirm) and keeps
// no lease past its end — no read it serves after the majority
// acknowledged a newer write succeeds; it steps down.
func TestPartitionedLeaderLeaseLapses(t *testing.T) {
	c := newCluster(t, 5, 42, nil)
	c.apply("a")
	old := c.Leader()
	_, err := old.Raft().Read(context.Background(), raft.Lease) // a confirmed round starts the lease
	require.NoError(t, err)
	others := c.Others(old)
	c.Partition([]*rafttest.Server{old, others[0]}, others[1:])

	type read struct {
		mode  raft.ReadMode
		start time.Time
		err   error
		idx   uint64
	}
	stop := make(chan struct{})
	done := make(chan []read)
	go func() {
		var reads []read
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- reads
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			mode := []raft.ReadMode{raft.Lease, raft.Linearizable}[i%2]
			start := time.Now()
			idx, err := old.Raft().Read(ctx, mode)
			cancel()
			reads = append(reads, read{mode, start, err, idx})
			if err != nil {
				// Not leader any more, or no confirmation: wait a little.
				select {
				case <-stop:
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}()
	l := c.WaitLeader(others[1:]...)
	b := l.Raft().Apply(context.Background(), []byte("b"))
	require.NoError(t, b.Error())
	acked := time.Now()
	rafttest.WaitFor(t, 5*time.Second, "the old leader to step down", func() bool {
		return old.Raft().State() != raft.Leader
	})
	close(stop)
	reads := <-done
	served := 0
	for _, r := range reads {
		if r.err == nil {
			served++
			require.True(t, r.start.Before(acked), "a %v read started after the write was acknowledged succeeded at index %d (write at %d)", r.mode, r.idx, b.Index())
		}
	}
	t.Logf("%d reads on the old leader, %d served before it lost its lease", len(reads), served)
	_, err = old.Raft().Read(context.Background(), raft.Lease)
	require.ErrorIs(t, err, raft.ErrNotLeader)
	c.Heal()
	idx, err := l.Raft().Read(context.Background(), raft.Lease)
	require.NoError(t, err)
	require.GreaterOrEqual(t, idx, b.Index())
}

// A follower cut off from the leader fails a linearizable read cleanly —
// with ErrFollowerReadFailed, ErrNotLeader or the context's deadline — and
// serves them again once healed.
func TestFollowerReadCutOff(t *testing.T) {
	c := newCluster(t, 3, 43, nil)
	c.apply("a")
	l := c.Leader()
	f := c.Others(l)[0]
	c.Network().Isolate(f.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := f.Raft().Read(ctx, raft.Linearizable)
	require.Error(t, err)
	require.True(t, errors.Is(err, raft.ErrFollowerReadFailed) || errors.Is(err, raft.ErrNotLeader) ||
		errors.Is(err, context.DeadlineExceeded), "unexpected error %v", err)
	c.Network().Rejoin(f.Addr)
	c.apply("b")
	rafttest.WaitFor(t, 10*time.Second, "follower reads to work again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := f.Raft().Read(ctx, raft.Linearizable)
		return err == nil
	})
	require.Contains(t, commands(f), "b")
}
