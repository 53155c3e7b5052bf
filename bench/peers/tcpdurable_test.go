package peers

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	hwal "github.com/hashicorp/raft-wal"
	keel "github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/filesnap"
	keelwal "github.com/keelraft/raft/storage/wal"
	"github.com/keelraft/raft/transport/tcp"
)

// BenchmarkKeelTCPDurable measures keel with DefaultConfig over
// transport/tcp on 127.0.0.1, storage/wal Log and Stable and
// storage/filesnap snapshots, all with default options, in b.TempDir().
func BenchmarkKeelTCPDurable(b *testing.B) { benchApply(b, startKeelTCPDurable) }

// BenchmarkHashicorpTCPDurable measures hashicorp/raft v1.8.0 with its
// DefaultConfig and a silent logger over NewTCPTransport on 127.0.0.1
// (maxPool 3, timeout 10s), hashicorp/raft-wal v0.4.0 as LogStore and
// StableStore and a FileSnapshotStore (retain 2), in b.TempDir().
func BenchmarkHashicorpTCPDurable(b *testing.B) { benchApply(b, startHashicorpTCPDurable) }

// BenchmarkTCPDurableLimits measures the machine's limits for the two
// benchmarks above, in the same run: see tcpDurableLimits.
func BenchmarkTCPDurableLimits(b *testing.B) { tcpDurableLimits(b) }

type keelTCPNode struct {
	trans  *tcp.Transport
	logs   *keelwal.Log
	stable *keelwal.Stable
	snaps  *filesnap.Store
	raft   *keel.Raft
}

type keelTCPCluster struct {
	nodes  []*keelTCPNode
	leader *keel.Raft
}

func startKeelTCPDurable(b *testing.B) cluster {
	b.Helper()
	c := &keelTCPCluster{}
	fail := func(err error) {
		c.shutdown()
		b.Fatal(err)
	}
	var configuration keel.Configuration
	for i := 1; i <= 3; i++ {
		n := &keelTCPNode{}
		c.nodes = append(c.nodes, n)
		var err error
		if n.trans, err = tcp.New("127.0.0.1:0", tcp.Options{}); err != nil {
			fail(err)
		}
		dir := b.TempDir()
		if n.logs, err = keelwal.Open(filepath.Join(dir, "wal"), keelwal.Options{}); err != nil {
			fail(err)
		}
		if n.stable, err = keelwal.OpenStable(filepath.Join(dir, "stable")); err != nil {
			fail(err)
		}
		if n.snaps, err = filesnap.New(filepath.Join(dir, "snaps"), filesnap.Options{}); err != nil {
			fail(err)
		}
		configuration.Servers = append(configuration.Servers, keel.Server{
			Suffrage: keel.Voter, ID: keel.ServerID(fmt.Sprintf("s%d", i)), Address: keel.ServerAddress(n.trans.Addr().String()),
		})
	}
	for i, n := range c.nodes {
		conf := keel.DefaultConfig()
		conf.LocalID = configuration.Servers[i].ID
		if err := keel.BootstrapCluster(conf, n.logs, n.stable, n.snaps, configuration); err != nil {
			fail(err)
		}
		r, err := keel.NewRaft(conf, keelFSM{}, n.logs, n.stable, n.snaps, n.trans)
		if err != nil {
			fail(err)
		}
		n.raft = r
	}
	waitFor(b, leaderTimeout, "keel leader", func() bool {
		for _, n := range c.nodes {
			if n.raft.State() == keel.Leader {
				c.leader = n.raft
				return true
			}
		}
		return false
	})
	return c
}

func (c *keelTCPCluster) syncs() uint64 {
	var n uint64
	for _, s := range c.nodes {
		n += s.logs.Stats().Syncs
	}
	return n
}

func (c *keelTCPCluster) apply(cmd []byte) error {
	return c.leader.Apply(context.Background(), cmd).Error()
}

func (c *keelTCPCluster) shutdown() {
	for _, n := range c.nodes {
		if n.raft != nil {
			n.raft.Shutdown()
		}
	}
	for _, n := range c.nodes {
		if n.trans != nil {
			n.trans.Close()
		}
		if n.logs != nil {
			n.logs.Close()
		}
		if n.stable != nil {
			n.stable.Close()
		}
	}
}

type hashicorpTCPNode struct {
	trans *hraft.NetworkTransport
	store *hwal.WAL
	raft  *hraft.Raft
}

type hashicorpTCPCluster struct {
	nodes  []*hashicorpTCPNode
	leader *hraft.Raft
}

func startHashicorpTCPDurable(b *testing.B) cluster {
	b.Helper()
	c := &hashicorpTCPCluster{}
	fail := func(err error) {
		c.shutdown()
		b.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	var configuration hraft.Configuration
	snaps := make([]*hraft.FileSnapshotStore, 3)
	for i := 1; i <= 3; i++ {
		n := &hashicorpTCPNode{}
		c.nodes = append(c.nodes, n)
		var err error
		if n.trans, err = hraft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard); err != nil {
			fail(err)
		}
		dir := b.TempDir()
		if n.store, err = hwal.Open(dir, hwal.WithLogger(logger)); err != nil {
			fail(err)
		}
		if snaps[i-1], err = hraft.NewFileSnapshotStore(b.TempDir(), 2, io.Discard); err != nil {
			fail(err)
		}
		configuration.Servers = append(configuration.Servers, hraft.Server{
			Suffrage: hraft.Voter, ID: hraft.ServerID(fmt.Sprintf("s%d", i)), Address: n.trans.LocalAddr(),
		})
	}
	for i, n := range c.nodes {
		conf := hraft.DefaultConfig()
		conf.LocalID = configuration.Servers[i].ID
		conf.Logger = logger
		if err := hraft.BootstrapCluster(conf, n.store, n.store, snaps[i], n.trans, configuration); err != nil {
			fail(err)
		}
		r, err := hraft.NewRaft(conf, hashicorpFSM{}, n.store, n.store, snaps[i], n.trans)
		if err != nil {
			fail(err)
		}
		n.raft = r
	}
	waitFor(b, leaderTimeout, "hashicorp leader", func() bool {
		for _, n := range c.nodes {
			if n.raft.State() == hraft.Leader {
				c.leader = n.raft
				return true
			}
		}
		return false
	})
	return c
}

// apply passes no timeout (0), as in BenchmarkHashicorpApply.
func (c *hashicorpTCPCluster) apply(cmd []byte) error {
	return c.leader.Apply(cmd, 0).Error()
}

func (c *hashicorpTCPCluster) shutdown() {
	for _, n := range c.nodes {
		if n.raft != nil {
			n.raft.Shutdown().Error()
		}
	}
	for _, n := range c.nodes {
		if n.trans != nil {
			n.trans.Close()
		}
		if n.store != nil {
			n.store.Close()
		}
	}
}
