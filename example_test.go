package raft_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
)

// counter is a tiny FSM: every command adds its length to a total.
type counter struct {
	mu    sync.Mutex
	total int
}

func (c *counter) Apply(l *raft.Log) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += len(l.Data)
	return c.total
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not needed here") }
func (c *counter) Restore(rc io.ReadCloser) error      { return rc.Close() }

// A 3-server cluster in one process, on in-memory stores and transport.
func Example() {
	network := transinmem.NewNetwork(1)
	defer network.Close()
	ids := []raft.ServerID{"a", "b", "c"}
	var conf raft.Configuration
	for _, id := range ids {
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	var servers []*raft.Raft
	for _, id := range ids {
		cfg := raft.DefaultConfig()
		cfg.LocalID = id
		store, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		trans, _ := network.NewTransport(raft.ServerAddress(id))
		if err := raft.BootstrapCluster(cfg, store, store, snaps, conf); err != nil {
			panic(err)
		}
		r, err := raft.NewRaft(cfg, &counter{}, store, store, snaps, trans)
		if err != nil {
			panic(err)
		}
		defer r.Shutdown()
		servers = append(servers, r)
	}

	// Wait for a leader, then apply a command on it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		for _, r := range servers {
			if r.State() == raft.Leader {
				f := r.Apply(ctx, []byte("hello"))
				if err := f.Error(); err != nil {
					panic(err)
				}
				fmt.Println("total:", f.Response())
				return
			}
		}
		select {
		case <-ctx.Done():
			panic("no leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Output: total: 5
}

// Metrics: a server reports to the sink in Config.Metrics. Here a
// metrics.Recorder keeps the figures in memory; in production, a sink of
// github.com/keelraft/raft/metrics/prometheus or .../metrics/otel.
func ExampleConfig_metrics() {
	network := transinmem.NewNetwork(1)
	defer network.Close()
	rec := metrics.NewRecorder()
	cfg := raft.DefaultConfig()
	cfg.LocalID = "a"
	cfg.Metrics = rec
	store, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
	trans, _ := network.NewTransport("a")
	conf := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}
	if err := raft.BootstrapCluster(cfg, store, store, snaps, conf); err != nil {
		panic(err)
	}
	r, err := raft.NewRaft(cfg, &counter{}, store, store, snaps, trans)
	if err != nil {
		panic(err)
	}
	defer r.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for r.State() != raft.Leader {
		select {
		case <-ctx.Done():
			panic("no leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := r.Apply(ctx, []byte("hello")).Error(); err != nil {
		panic(err)
	}
	won, _ := rec.CounterValue("raft_elections_won")
	proposals, _ := rec.CounterValue("raft_proposals")
	latencies, _, _, _ := rec.HistogramValue("raft_commit_latency")
	fmt.Println("elections won:", won, "proposals:", proposals, "commit latencies:", latencies)
	// Output: elections won: 1 proposals: 1 commit latencies: 1
}
