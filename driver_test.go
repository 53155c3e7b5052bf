package raft_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/stretchr/testify/require"
)

func TestObserverAndLeaderCh(t *testing.T) {
	c := newCluster(t, 3, 21, nil)
	obs := make(chan raft.Observation, 64)
	deregister := c.Servers()[0].Raft().RegisterObserver(obs)
	l := c.Leader()
	select {
	case isLeader := <-l.Raft().LeaderCh():
		require.True(t, isLeader)
	case <-time.After(5 * time.Second):
		t.Fatal("LeaderCh did not report leadership")
	}
	var last raft.Observation
	rafttest.WaitFor(t, 5*time.Second, "an observation naming the leader", func() bool {
		select {
		case last = <-obs:
		default:
		}
		return last.LeaderID == l.ID
	})
	require.NotZero(t, last.Term)
	require.Zero(t, deregister(), "nothing dropped from a roomy channel")
}

// blockingFSM blocks Apply until released: a slow state machine.
type blockingFSM struct {
	testFSM
	release chan struct{}
	once    sync.Once
	entered chan struct{}
}

func (f *blockingFSM) Apply(l *raft.Log) any {
	f.once.Do(func() { close(f.entered) })
	<-f.release
	return f.testFSM.Apply(l)
}

// A slow FSM must not delay heartbeats: the applier runs on its own
// goroutine, so the leader keeps leading while its FSM is stuck.
func TestSlowFSMDoesNotDelayHeartbeats(t *testing.T) {
	c := newCluster(t, 3, 22, nil)
	l := c.Leader()
	slow := &blockingFSM{release: make(chan struct{}), entered: make(chan struct{})}
	// Swap the leader's FSM: restart it on the same stores.
	c.Crash(l)
	c.RestartWith(l, slow)
	defer close(slow.release)
	leader := c.Leader()
	term := leader.Raft().Stats()["term"]
	f := leader.Raft().Apply(context.Background(), []byte("x"))
	// Whoever leads, the slow server applies x (as leader or follower) and
	// blocks; meanwhile nobody may time out.
	if leader == l {
		<-slow.entered
	} else {
		select {
		case <-slow.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the slow FSM never got the entry")
		}
	}
	stuckFor := time.NewTimer(5 * 100 * time.Millisecond) // five election timeouts
	<-stuckFor.C
	for _, nd := range c.Live() {
		require.Equal(t, term, nd.Raft().Stats()["term"], "no election while an FSM is stuck")
	}
	if leader != l {
		require.NoError(t, f.Error())
	}
}

// After a failed log write the server stops (fail-stop): it must not go on
// as if the entry were durable, and Shutdown reports why.
func TestStorageFailureStopsTheServer(t *testing.T) {
	c := newCluster(t, 3, 23, nil)
	l := c.Leader()
	boom := errors.New("disk on fire")
	l.LogStore().(*storeinmem.Store).FailWhen(func(op storeinmem.Op, n int) error {
		if op == storeinmem.OpStoreLogs {
			return boom
		}
		return nil
	})
	err := l.Raft().Apply(context.Background(), []byte("x")).Error()
	require.Error(t, err)
	rafttest.WaitFor(t, 5*time.Second, "the server to stop", func() bool { return l.Raft().State() == raft.Shutdown })
	require.ErrorIs(t, l.Raft().Shutdown(), boom)
	c.Crash(l)
	// The others elect a new leader and carry on.
	c.apply("y")
}
