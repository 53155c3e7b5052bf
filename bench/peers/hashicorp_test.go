package peers

import (
	"fmt"
	"testing"

	hraft "github.com/hashicorp/raft"
	"github.com/keelraft/raft/bench/peers/clusters"
)

// BenchmarkHashicorpApply measures hashicorp/raft: its DefaultConfig
// (heartbeat and election timeouts 1s, leader lease 500ms, commit timeout
// 50ms, MaxAppendEntries 64) with a silent logger, InmemStore,
// InmemSnapshotStore and InmemTransports connected pairwise.
func BenchmarkHashicorpApply(b *testing.B) { benchApply(b, startHashicorp) }

type hashicorpCluster struct {
	trans  []*hraft.InmemTransport
	nodes  []*hraft.Raft
	leader *hraft.Raft
}

func startHashicorp(b *testing.B) cluster {
	b.Helper()
	c := &hashicorpCluster{}
	var configuration hraft.Configuration
	for i := 1; i <= 3; i++ {
		addr, trans := hraft.NewInmemTransport("")
		c.trans = append(c.trans, trans)
		configuration.Servers = append(configuration.Servers, hraft.Server{
			Suffrage: hraft.Voter, ID: hraft.ServerID(fmt.Sprintf("s%d", i)), Address: addr,
		})
	}
	for _, t1 := range c.trans {
		for _, t2 := range c.trans {
			if t1 != t2 {
				t1.Connect(t2.LocalAddr(), t2)
			}
		}
	}
	logger := clusters.SilentLogger()
	for i, s := range configuration.Servers {
		conf := hraft.DefaultConfig()
		conf.LocalID = s.ID
		conf.Logger = logger
		store, snaps := hraft.NewInmemStore(), hraft.NewInmemSnapshotStore()
		if err := hraft.BootstrapCluster(conf, store, store, snaps, c.trans[i], configuration); err != nil {
			c.Shutdown()
			b.Fatal(err)
		}
		r, err := hraft.NewRaft(conf, clusters.HashicorpFSM{}, store, store, snaps, c.trans[i])
		if err != nil {
			c.Shutdown()
			b.Fatal(err)
		}
		c.nodes = append(c.nodes, r)
	}
	waitFor(b, leaderTimeout, "hashicorp leader", func() bool {
		for _, r := range c.nodes {
			if r.State() == hraft.Leader {
				c.leader = r
				return true
			}
		}
		return false
	})
	return c
}

// apply passes no timeout (0), as keel's benchmark passes a context without
// a deadline: neither library arms a timer per command.
func (c *hashicorpCluster) Apply(cmd []byte) error {
	return c.leader.Apply(cmd, 0).Error()
}

func (c *hashicorpCluster) Shutdown() {
	for _, r := range c.nodes {
		r.Shutdown().Error()
	}
	for _, t := range c.trans {
		t.Close()
	}
}
