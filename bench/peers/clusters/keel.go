package clusters

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	keel "github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/filesnap"
	keelwal "github.com/keelraft/raft/storage/wal"
	"github.com/keelraft/raft/transport/tcp"
)

// KeelFSM is a keel FSM whose Apply does nothing and returns nil; its
// snapshots are empty.
type KeelFSM struct{}

// Apply does nothing and returns nil.
func (KeelFSM) Apply(*keel.Log) any { return nil }

// Snapshot returns an empty snapshot.
func (KeelFSM) Snapshot() (keel.FSMSnapshot, error) { return keelSnapshot{}, nil }

// Restore closes rc.
func (KeelFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type keelSnapshot struct{}

func (keelSnapshot) Persist(sink keel.SnapshotSink) error { return sink.Close() }
func (keelSnapshot) Release()                             {}

type keelTCPNode struct {
	trans  *tcp.Transport
	logs   *keelwal.Log
	stable *keelwal.Stable
	snaps  *filesnap.Store
	raft   *keel.Raft
	sink   metrics.Sink
}

type keelTCPCluster struct {
	nodes  []*keelTCPNode
	leader *keel.Raft
}

// StartKeelTCPDurable starts 3 keel servers, s1 to s3, bootstrapped as
// voters, each with DefaultConfig, a KeelFSM, transport/tcp on
// 127.0.0.1 (tcp.Options{}), a storage/wal Log and Stable and a
// storage/filesnap Store (default options) in dir/s1 to dir/s3, and waits
// (up to LeaderTimeout) for a leader. The returned Cluster is also a
// SyncCounter counting storage/wal's Stats().Syncs. On error everything
// started is shut down again.
func StartKeelTCPDurable(dir string) (Cluster, error) { return StartKeelTCPDurableWith(dir, nil) }

// StartKeelTCPDurableWith is StartKeelTCPDurable with each server's Raft,
// WAL (Log and Stable) and TCP transport reporting to sinkFor(id); a nil
// sinkFor, or a nil sink, means no metrics.
func StartKeelTCPDurableWith(dir string, sinkFor func(id keel.ServerID) metrics.Sink) (Cluster, error) {
	c := &keelTCPCluster{}
	fail := func(err error) (Cluster, error) {
		c.Shutdown()
		return nil, fmt.Errorf("keel TCP durable cluster: %w", err)
	}
	var configuration keel.Configuration
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("s%d", i)
		n := &keelTCPNode{}
		if sinkFor != nil {
			n.sink = sinkFor(keel.ServerID(id))
		}
		c.nodes = append(c.nodes, n)
		var err error
		if n.trans, err = tcp.New("127.0.0.1:0", tcp.Options{Metrics: n.sink}); err != nil {
			return fail(fmt.Errorf("%s: transport: %w", id, err))
		}
		sdir := filepath.Join(dir, id)
		if n.logs, err = keelwal.Open(filepath.Join(sdir, "wal"), keelwal.Options{Metrics: n.sink}); err != nil {
			return fail(fmt.Errorf("%s: log: %w", id, err))
		}
		if n.stable, err = keelwal.OpenStableWith(filepath.Join(sdir, "stable"), keelwal.StableOptions{Metrics: n.sink}); err != nil {
			return fail(fmt.Errorf("%s: stable store: %w", id, err))
		}
		if n.snaps, err = filesnap.New(filepath.Join(sdir, "snaps"), filesnap.Options{}); err != nil {
			return fail(fmt.Errorf("%s: snapshot store: %w", id, err))
		}
		configuration.Servers = append(configuration.Servers, keel.Server{
			Suffrage: keel.Voter, ID: keel.ServerID(id), Address: keel.ServerAddress(n.trans.Addr().String()),
		})
	}
	for i, n := range c.nodes {
		conf := keel.DefaultConfig()
		conf.LocalID = configuration.Servers[i].ID
		conf.Metrics = n.sink
		if err := keel.BootstrapCluster(conf, n.logs, n.stable, n.snaps, configuration); err != nil {
			return fail(fmt.Errorf("%s: bootstrap: %w", conf.LocalID, err))
		}
		r, err := keel.NewRaft(conf, KeelFSM{}, n.logs, n.stable, n.snaps, n.trans)
		if err != nil {
			return fail(fmt.Errorf("%s: NewRaft: %w", conf.LocalID, err))
		}
		n.raft = r
	}
	err := WaitFor(LeaderTimeout, "keel leader", func() bool {
		for _, n := range c.nodes {
			if n.raft.State() == keel.Leader {
				c.leader = n.raft
				return true
			}
		}
		return false
	})
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// Syncs returns the log fsyncs of the three servers so far.
func (c *keelTCPCluster) Syncs() uint64 {
	var n uint64
	for _, s := range c.nodes {
		n += s.logs.Stats().Syncs
	}
	return n
}

// Apply applies cmd on the leader, with a context without a deadline.
func (c *keelTCPCluster) Apply(cmd []byte) error {
	return c.leader.Apply(context.Background(), cmd).Error()
}

// Shutdown stops the servers, then closes their transports and stores.
func (c *keelTCPCluster) Shutdown() {
	for _, n := range c.nodes {
		if n.raft != nil {
			n.raft.Shutdown()
		}
	}
	// A failed close at the end of a measurement changes nothing measured.
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
