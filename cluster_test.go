package raft_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/filesnap"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/keelraft/raft/storage/wal"
	transinmem "github.com/keelraft/raft/transport/inmem"
	"github.com/stretchr/testify/require"
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

// cluster is N servers in one process on the in-memory transport, with
// in-memory stores or (durable) the WAL, stable store and file snapshot
// store in a temporary directory.
type cluster struct {
	t       testing.TB
	net     *transinmem.Network
	nodes   []*node
	conf    func(*raft.Config)
	durable bool
}

type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	raft  *raft.Raft // nil while crashed
	fsm   *testFSM
	trans *transinmem.Transport

	logs   raft.LogStore
	stable raft.StableStore
	snaps  raft.SnapshotStore

	mem      *storeinmem.Store // in-memory mode: logs and stable
	memSnaps *storeinmem.SnapshotStore
	dir      string // durable mode
	wal      *wal.Log
	walStab  *wal.Stable
}

// openStores opens the node's stores: fresh or crashed in-memory ones, or
// the durable ones in its directory.
func (c *cluster) openStores(nd *node) {
	if !c.durable {
		if nd.mem == nil {
			nd.mem, nd.memSnaps = storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		}
		nd.logs, nd.stable, nd.snaps = nd.mem, nd.mem, nd.memSnaps
		return
	}
	var err error
	nd.wal, err = wal.Open(filepath.Join(nd.dir, "log"), wal.Options{SegmentSize: 1 << 20})
	require.NoError(c.t, err)
	nd.walStab, err = wal.OpenStable(filepath.Join(nd.dir, "stable"))
	require.NoError(c.t, err)
	snaps, err := filesnap.New(filepath.Join(nd.dir, "snapshots"), filesnap.Options{})
	require.NoError(c.t, err)
	nd.logs, nd.stable, nd.snaps = nd.wal, nd.walStab, snaps
}

func (c *cluster) closeStores(nd *node) {
	if c.durable {
		require.NoError(c.t, nd.wal.Close())
		require.NoError(c.t, nd.walStab.Close())
		return
	}
	nd.mem, nd.memSnaps = nd.mem.Crash(), nd.memSnaps.Crash()
}

// testConfig is fast enough for tests and slow enough for -race on two
// cores.
func testConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatInterval = 10 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	return c
}

// newCluster bootstraps and starts n servers. Shutdown is registered with
// t.Cleanup.
func newCluster(t testing.TB, n int, seed uint64, tweak func(*raft.Config)) *cluster {
	return startCluster(&cluster{t: t, net: transinmem.NewNetwork(seed), conf: tweak}, n)
}

// newDurableCluster is newCluster on the durable stores, in t.TempDir().
func newDurableCluster(t testing.TB, n int, seed uint64, tweak func(*raft.Config)) *cluster {
	return startCluster(&cluster{t: t, net: transinmem.NewNetwork(seed), conf: tweak, durable: true}, n)
}

func startCluster(c *cluster, n int) *cluster {
	var conf raft.Configuration
	for i := 0; i < n; i++ {
		id := raft.ServerID(fmt.Sprintf("s%d", i+1))
		nd := &node{id: id, addr: raft.ServerAddress(id)}
		if c.durable {
			nd.dir = filepath.Join(c.t.TempDir(), string(id))
		}
		c.nodes = append(c.nodes, nd)
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: nd.addr})
	}
	for _, nd := range c.nodes {
		c.openStores(nd)
		require.NoError(c.t, raft.BootstrapCluster(c.config(nd.id), nd.logs, nd.stable, nd.snaps, conf))
		c.startRaft(nd)
	}
	c.t.Cleanup(c.shutdown)
	return c
}

func (c *cluster) config(id raft.ServerID) *raft.Config {
	conf := testConfig(id)
	if c.conf != nil {
		c.conf(conf)
	}
	return conf
}

// startRaft starts a server on its open stores.
func (c *cluster) startRaft(nd *node) {
	var err error
	nd.trans, err = c.net.NewTransport(nd.addr)
	require.NoError(c.t, err)
	nd.fsm = &testFSM{}
	nd.raft, err = raft.NewRaft(c.config(nd.id), nd.fsm, nd.logs, nd.stable, nd.snaps, nd.trans)
	require.NoError(c.t, err)
}

// crash stops a server abruptly, keeping only what its stores made durable.
func (c *cluster) crash(nd *node) {
	require.NoError(c.t, nd.raft.Shutdown())
	nd.trans.Close()
	nd.raft = nil
	c.closeStores(nd)
}

// restart brings a crashed server back on what its stores kept.
func (c *cluster) restart(nd *node) {
	c.openStores(nd)
	c.startRaft(nd)
}

func (c *cluster) shutdown() {
	for _, nd := range c.nodes {
		if nd.raft != nil {
			require.NoError(c.t, nd.raft.Shutdown())
			nd.raft = nil
			if c.durable {
				c.closeStores(nd)
			}
		}
	}
	c.net.Close()
}

func (c *cluster) live() []*node {
	var out []*node
	for _, nd := range c.nodes {
		if nd.raft != nil {
			out = append(out, nd)
		}
	}
	return out
}

func (c *cluster) addrs(nodes ...*node) []raft.ServerAddress {
	out := make([]raft.ServerAddress, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.addr
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-poll.C
	}
}

// leaderAmong waits until exactly one of nodes is leader and the others
// follow it, and returns it.
func (c *cluster) leaderAmong(nodes ...*node) *node {
	c.t.Helper()
	var leader *node
	waitFor(c.t, 10*time.Second, "one leader that everyone follows", func() bool {
		leader = nil
		for _, nd := range nodes {
			if nd.raft.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = nd
			}
		}
		if leader == nil {
			return false
		}
		for _, nd := range nodes {
			if _, id := nd.raft.Leader(); id != leader.id {
				return false
			}
		}
		return true
	})
	return leader
}

func (c *cluster) leader() *node { return c.leaderAmong(c.live()...) }

// apply applies cmd through whichever server leads, retrying on leader
// changes, and returns the server that committed it.
func (c *cluster) apply(cmd string) *node {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l := c.leader()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := l.raft.Apply(ctx, []byte(cmd)).Error()
		cancel()
		if err == nil {
			return l
		}
		if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, context.DeadlineExceeded) {
			c.t.Fatalf("apply %q: %v", cmd, err)
		}
	}
	c.t.Fatalf("apply %q: no leader committed it in time", cmd)
	return nil
}

// waitConverged waits until every live server applied the same commands.
func (c *cluster) waitConverged(nodes ...*node) []string {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.live()
	}
	var want []string
	waitFor(c.t, 10*time.Second, "every server to apply the same commands", func() bool {
		want = nodes[0].fsm.commands()
		for _, nd := range nodes[1:] {
			if strings.Join(nd.fsm.commands(), "\x00") != strings.Join(want, "\x00") {
				return false
			}
		}
		return true
	})
	return want
}

// requirePrefixes checks that every server's applied commands are a prefix
// of one common sequence, and that no command was applied twice.
func requirePrefixes(t testing.TB, nodes []*node) {
	t.Helper()
	var longest []string
	for _, nd := range nodes {
		if cmds := nd.fsm.commands(); len(cmds) > len(longest) {
			longest = cmds
		}
	}
	seen := map[string]bool{}
	for _, cmd := range longest {
		require.False(t, seen[cmd], "command %q applied twice", cmd)
		seen[cmd] = true
	}
	for _, nd := range nodes {
		cmds := nd.fsm.commands()
		require.Equal(t, longest[:len(cmds)], cmds, "%s applied a different sequence", nd.id)
	}
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
