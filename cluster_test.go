package raft_test

import (
	"bytes"
	"encoding/gob"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
)

// testFSM records every command it applies, in order.
type testFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *testFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{append([]string(nil), f.applied...)}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var applied []string
	if err := gob.NewDecoder(rc).Decode(&applied); err != nil {
		return err
	}
	f.mu.Lock()
	f.applied = applied
	f.mu.Unlock()
	return nil
}

func (f *testFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

type testSnapshot struct{ applied []string }

func (s *testSnapshot) Persist(sink raft.SnapshotSink) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s.applied); err != nil {
		sink.Cancel()
		return err
	}
	if _, err := sink.Write(b.Bytes()); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}

// cluster is a rafttest.Cluster of testFSMs, with the few helpers keel's
// scenario tests add on top of the kit.
type cluster struct {
	*rafttest.Cluster
	t testing.TB
}

func newTestFSM() raft.FSM { return &testFSM{} }

// newCluster bootstraps and starts n servers with rafttest, in-memory stores
// and transport, the network seeded with seed. Shutdown is registered with
// t.Cleanup.
func newCluster(t testing.TB, n int, seed uint64, tweak func(*raft.Config)) *cluster {
	t.Helper()
	return &cluster{rafttest.New(t, n, newTestFSM, rafttest.WithSeed(seed), rafttest.WithConfig(tweak)), t}
}

// newDurableCluster is newCluster on the durable stores, in t.TempDir().
func newDurableCluster(t testing.TB, n int, seed uint64, tweak func(*raft.Config)) *cluster {
	t.Helper()
	return &cluster{rafttest.New(t, n, newTestFSM, rafttest.WithSeed(seed), rafttest.WithConfig(tweak), rafttest.WithDurableStores()), t}
}

// apply applies cmd through whichever server leads, retrying on leader
// changes.
func (c *cluster) apply(cmd string) {
	c.t.Helper()
	c.Apply([]byte(cmd))
}

// commands returns what s's FSM applied, in order.
func commands(s *rafttest.Server) []string { return s.FSM().(*testFSM).commands() }

// waitConverged waits until every live server applied the same commands,
// and returns them.
func (c *cluster) waitConverged() []string {
	c.t.Helper()
	c.RequireFSMsAgree(func(a, b raft.FSM) bool {
		return slices.Equal(a.(*testFSM).commands(), b.(*testFSM).commands())
	})
	return commands(c.Live()[0])
}

func count(cmds []string, cmd string) int {
	n := 0
	for _, c := range cmds {
		if c == cmd {
			n++
		}
	}
	return n
}
