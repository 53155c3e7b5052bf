package peers

import (
	"context"
	"fmt"
	"testing"

	keel "github.com/keelraft/raft"
	"github.com/keelraft/raft/bench/peers/clusters"
	"github.com/keelraft/raft/metrics"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
)

// BenchmarkKeelApply measures keel: DefaultConfig (heartbeat 100ms,
// election timeout 1s), storage/inmem stores, transport/inmem network.
func BenchmarkKeelApply(b *testing.B) { benchApply(b, startKeel) }

type keelCluster struct {
	net    *transinmem.Network
	nodes  []*keel.Raft
	leader *keel.Raft
}

func startKeel(b *testing.B) cluster { return startKeelWith(b, nil) }

// startKeelWith is startKeel with each server reporting to sinkFor(id)
// (nil: no metrics).
func startKeelWith(b *testing.B, sinkFor func(keel.ServerID) metrics.Sink) cluster {
	b.Helper()
	c := &keelCluster{net: transinmem.NewNetwork(1)}
	var configuration keel.Configuration
	for i := 1; i <= 3; i++ {
		id := keel.ServerID(fmt.Sprintf("s%d", i))
		configuration.Servers = append(configuration.Servers, keel.Server{Suffrage: keel.Voter, ID: id, Address: keel.ServerAddress(id)})
	}
	for _, s := range configuration.Servers {
		conf := keel.DefaultConfig()
		conf.LocalID = s.ID
		if sinkFor != nil {
			conf.Metrics = sinkFor(s.ID)
		}
		store, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		if err := keel.BootstrapCluster(conf, store, store, snaps, configuration); err != nil {
			c.Shutdown()
			b.Fatal(err)
		}
		trans, err := c.net.NewTransport(s.Address)
		if err != nil {
			c.Shutdown()
			b.Fatal(err)
		}
		r, err := keel.NewRaft(conf, clusters.KeelFSM{}, store, store, snaps, trans)
		if err != nil {
			c.Shutdown()
			b.Fatal(err)
		}
		c.nodes = append(c.nodes, r)
	}
	waitFor(b, leaderTimeout, "keel leader", func() bool {
		for _, r := range c.nodes {
			if r.State() == keel.Leader {
				c.leader = r
				return true
			}
		}
		return false
	})
	return c
}

func (c *keelCluster) Apply(cmd []byte) error {
	return c.leader.Apply(context.Background(), cmd).Error()
}

func (c *keelCluster) Shutdown() {
	for _, r := range c.nodes {
		r.Shutdown()
	}
	c.net.Close()
}
