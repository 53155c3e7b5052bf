package prometheus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// memFSM is the smallest FSM that can be snapshotted.
type memFSM struct{ n atomic.Int64 }

func (f *memFSM) Apply(*raft.Log) any                 { f.n.Add(1); return nil }
func (f *memFSM) Snapshot() (raft.FSMSnapshot, error) { return memSnapshot{}, nil }
func (f *memFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type memSnapshot struct{}

func (memSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write([]byte("state")); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (memSnapshot) Release() {}

// refusingTransport fails every Send while refuse is set.
type refusingTransport struct {
	raft.Transport
	refuse atomic.Bool
}

func (r *refusingTransport) Send(to raft.ServerAddress, m *raft.Message) error {
	if r.refuse.Load() {
		return errors.New("test: send refused")
	}
	return r.Transport.Send(to, m)
}

// TestRaftMetricsMoveInTheScrape runs three keel servers, each with its
// own Sink (told apart by a "server" label) in one registry, and checks
// in the parsed text scrape that each metric moves when its event
// happens: an election, commits, a snapshot, a dropped message.
func TestRaftMetricsMoveInTheScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	sinks := map[raft.ServerID]*Sink{}
	trans := map[raft.ServerID]*refusingTransport{}
	c := rafttest.New(t, 3, func() raft.FSM { return &memFSM{} }, rafttest.WithSeed(1),
		rafttest.WithConfig(func(conf *raft.Config) {
			mu.Lock()
			defer mu.Unlock()
			if sinks[conf.LocalID] == nil {
				sinks[conf.LocalID] = New(Options{ConstLabels: prometheus.Labels{"server": string(conf.LocalID)}})
				reg.MustRegister(sinks[conf.LocalID])
			}
			conf.Metrics = sinks[conf.LocalID]
		}),
		rafttest.WithTransportWrapper(func(id raft.ServerID, tr raft.Transport) raft.Transport {
			mu.Lock()
			defer mu.Unlock()
			trans[id] = &refusingTransport{Transport: tr}
			return trans[id]
		}))
	counter := func(name string, labels ...string) float64 {
		mfs := scrape(t, reg)
		if _, ok := mfs[name]; !ok {
			return 0
		}
		return series(t, mfs, name, dto.MetricType_COUNTER, labels...).GetCounter().GetValue()
	}
	gauge := func(name string, labels ...string) float64 {
		return series(t, scrape(t, reg), name, dto.MetricType_GAUGE, labels...).GetGauge().GetValue()
	}
	histogramCount := func(name string, labels ...string) uint64 {
		return series(t, scrape(t, reg), name, dto.MetricType_HISTOGRAM, labels...).GetHistogram().GetSampleCount()
	}
	wait := func(what string, cond func() bool) { rafttest.WaitFor(t, c.Timeout(), what, cond) }

	// An election.
	l := c.Leader()
	lid := string(l.ID)
	require.GreaterOrEqual(t, counter("keel_raft_elections_won_total", "server", lid), 1.0)
	wait("the leader's state gauge", func() bool {
		return gauge("keel_raft_state", "server", lid, "state", "Leader") == 1
	})

	// Commits, and their latency.
	commitsBefore := counter("keel_raft_commits_total", "server", lid)
	latencyBefore := histogramCount("keel_raft_commit_latency_seconds", "server", lid)
	for i := range 10 {
		c.Apply([]byte(fmt.Sprint(i)))
	}
	require.GreaterOrEqual(t, counter("keel_raft_commits_total", "server", lid), commitsBefore+10)
	require.GreaterOrEqual(t, histogramCount("keel_raft_commit_latency_seconds", "server", lid), latencyBefore+10)
	for _, f := range c.Others(l) {
		wait(fmt.Sprintf("the leader's lag gauge for %s", f.ID), func() bool {
			return gauge("keel_raft_peer_lag_entries", "server", lid, "peer", string(f.ID)) == 0 &&
				gauge("keel_raft_peer_match_index", "server", lid, "peer", string(f.ID)) >= float64(l.Raft().LastIndex())
		})
	}

	// A snapshot.
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout())
	defer cancel()
	takenBefore := counter("keel_raft_snapshots_taken_total", "server", lid)
	require.NoError(t, l.Raft().Snapshot(ctx).Error())
	wait("the snapshot is counted", func() bool {
		return counter("keel_raft_snapshots_taken_total", "server", lid) == takenBefore+1 &&
			histogramCount("keel_raft_snapshot_persist_duration_seconds", "server", lid) >= 1
	})

	// A dropped message.
	mu.Lock()
	lt := trans[l.ID]
	mu.Unlock()
	droppedBefore := counter("keel_raft_messages_dropped_total", "server", lid, "type", "MsgHeartbeat")
	lt.refuse.Store(true)
	wait("a refused heartbeat is counted as dropped", func() bool {
		return counter("keel_raft_messages_dropped_total", "server", lid, "type", "MsgHeartbeat") > droppedBefore
	})
	lt.refuse.Store(false)

	mu.Lock()
	defer mu.Unlock()
	for id, s := range sinks {
		require.NoError(t, s.Err(), id)
	}
}
