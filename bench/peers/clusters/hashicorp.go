package clusters

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	hwal "github.com/hashicorp/raft-wal"
)

// HashicorpFSM is a hashicorp/raft FSM whose Apply does nothing and returns
// nil; its snapshots are empty.
type HashicorpFSM struct{}

// Apply does nothing and returns nil.
func (HashicorpFSM) Apply(*hraft.Log) any { return nil }

// Snapshot returns an empty snapshot.
func (HashicorpFSM) Snapshot() (hraft.FSMSnapshot, error) { return hashicorpSnapshot{}, nil }

// Restore closes rc.
func (HashicorpFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type hashicorpSnapshot struct{}

func (hashicorpSnapshot) Persist(sink hraft.SnapshotSink) error { return sink.Close() }
func (hashicorpSnapshot) Release()                              {}

// SilentLogger is an hclog logger that discards everything.
func SilentLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
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

// StartHashicorpTCPDurable starts 3 hashicorp/raft v1.8.0 servers, s1 to
// s3, bootstrapped as voters, each with DefaultConfig and a silent logger,
// a HashicorpFSM, NewTCPTransport on 127.0.0.1 (maxPool 3, timeout 10s),
// hashicorp/raft-wal v0.4.0 as both LogStore and StableStore in
// dir/s1/wal to dir/s3/wal and a FileSnapshotStore (retain 2) in
// dir/s1/snaps to dir/s3/snaps, and waits (up to LeaderTimeout) for a
// leader. On error everything started is shut down again.
func StartHashicorpTCPDurable(dir string) (Cluster, error) {
	c := &hashicorpTCPCluster{}
	fail := func(err error) (Cluster, error) {
		c.Shutdown()
		return nil, fmt.Errorf("hashicorp TCP durable cluster: %w", err)
	}
	logger := SilentLogger()
	var configuration hraft.Configuration
	snaps := make([]*hraft.FileSnapshotStore, 3)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("s%d", i)
		n := &hashicorpTCPNode{}
		c.nodes = append(c.nodes, n)
		var err error
		if n.trans, err = hraft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard); err != nil {
			return fail(fmt.Errorf("%s: transport: %w", id, err))
		}
		walDir := filepath.Join(dir, id, "wal")
		// raft-wal creates its files in walDir but not walDir itself.
		if err = os.MkdirAll(walDir, 0o755); err != nil {
			return fail(fmt.Errorf("%s: %w", id, err))
		}
		if n.store, err = hwal.Open(walDir, hwal.WithLogger(logger)); err != nil {
			return fail(fmt.Errorf("%s: raft-wal: %w", id, err))
		}
		if snaps[i-1], err = hraft.NewFileSnapshotStore(filepath.Join(dir, id, "snaps"), 2, io.Discard); err != nil {
			return fail(fmt.Errorf("%s: snapshot store: %w", id, err))
		}
		configuration.Servers = append(configuration.Servers, hraft.Server{
			Suffrage: hraft.Voter, ID: hraft.ServerID(id), Address: n.trans.LocalAddr(),
		})
	}
	for i, n := range c.nodes {
		conf := hraft.DefaultConfig()
		conf.LocalID = configuration.Servers[i].ID
		conf.Logger = logger
		if err := hraft.BootstrapCluster(conf, n.store, n.store, snaps[i], n.trans, configuration); err != nil {
			return fail(fmt.Errorf("%s: bootstrap: %w", conf.LocalID, err))
		}
		r, err := hraft.NewRaft(conf, HashicorpFSM{}, n.store, n.store, snaps[i], n.trans)
		if err != nil {
			return fail(fmt.Errorf("%s: NewRaft: %w", conf.LocalID, err))
		}
		n.raft = r
	}
	err := WaitFor(LeaderTimeout, "hashicorp leader", func() bool {
		for _, n := range c.nodes {
			if n.raft.State() == hraft.Leader {
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

// Apply applies cmd on the leader with no timeout (0), as keel's Apply
// gets a context without a deadline: neither library arms a timer per
// command.
func (c *hashicorpTCPCluster) Apply(cmd []byte) error {
	return c.leader.Apply(cmd, 0).Error()
}

// Shutdown stops the servers, then closes their transports and stores.
func (c *hashicorpTCPCluster) Shutdown() {
	for _, n := range c.nodes {
		if n.raft != nil {
			n.raft.Shutdown().Error()
		}
	}
	// A failed close at the end of a measurement changes nothing measured.
	for _, n := range c.nodes {
		if n.trans != nil {
			n.trans.Close()
		}
		if n.store != nil {
			n.store.Close()
		}
	}
}
