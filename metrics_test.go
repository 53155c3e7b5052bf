package raft_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/rafttest"
	"github.com/keelraft/raft/storage/wal"
	"github.com/keelraft/raft/transport/tcp"
	"github.com/stretchr/testify/require"
)

// recorders gives each server its own metrics.Recorder, kept across
// restarts (counters add up, gauges are set again).
type recorders struct {
	mu   sync.Mutex
	recs map[raft.ServerID]*metrics.Recorder
}

func (r *recorders) of(id raft.ServerID) *metrics.Recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recs == nil {
		r.recs = map[raft.ServerID]*metrics.Recorder{}
	}
	if r.recs[id] == nil {
		r.recs[id] = metrics.NewRecorder()
	}
	return r.recs[id]
}

func (r *recorders) config(c *raft.Config) { c.Metrics = r.of(c.LocalID) }

func counterOf(rec *metrics.Recorder, name string, labels ...metrics.Label) uint64 {
	v, _ := rec.CounterValue(name, labels...)
	return v
}

func gaugeOf(rec *metrics.Recorder, name string, labels ...metrics.Label) float64 {
	v, _ := rec.GaugeValue(name, labels...)
	return v
}

func observations(rec *metrics.Recorder, name string) uint64 {
	n, _, _, _ := rec.HistogramValue(name)
	return n
}

// failingTransport fails every Send while fail is set, as a transport
// whose queue to a peer is full does.
type failingTransport struct {
	raft.Transport
	fail atomic.Bool
}

func (f *failingTransport) Send(to raft.ServerAddress, m *raft.Message) error {
	if f.fail.Load() {
		return errors.New("test: send refused")
	}
	return f.Transport.Send(to, m)
}

func waitMetric(t *testing.T, c *cluster, what string, cond func() bool) {
	t.Helper()
	rafttest.WaitFor(t, c.Timeout(), what, cond)
}

// TestMetricsMoveWithTheirEvents checks that each metric of package raft
// moves when its event happens: an election, proposals and commits, log
// and stable writes, reads of each kind, forwarding, sessions, snapshots
// taken, sent, received and restored, and dropped messages.
func TestMetricsMoveWithTheirEvents(t *testing.T) {
	var recs recorders
	var transMu sync.Mutex
	trans := map[raft.ServerID]*failingTransport{}
	c := &cluster{rafttest.New(t, 3, newTestFSM, rafttest.WithSeed(16),
		rafttest.WithConfig(func(conf *raft.Config) { snapConfig(conf); recs.config(conf) }),
		rafttest.WithTransportWrapper(func(id raft.ServerID, tr raft.Transport) raft.Transport {
			transMu.Lock()
			defer transMu.Unlock()
			trans[id] = &failingTransport{Transport: tr}
			return trans[id]
		})), t}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout())
	defer cancel()

	// An election.
	l := c.Leader()
	lr := recs.of(l.ID)
	require.GreaterOrEqual(t, counterOf(lr, "raft_elections_won"), uint64(1))
	require.GreaterOrEqual(t, counterOf(lr, "raft_elections_started"), uint64(1))
	require.GreaterOrEqual(t, counterOf(lr, "raft_prevotes_started"), uint64(1), "PreVote is on by default")
	require.GreaterOrEqual(t, observations(lr, "raft_stable_write_duration"), uint64(1), "the vote was written")
	for _, s := range c.Servers() {
		require.GreaterOrEqual(t, counterOf(recs.of(s.ID), "raft_leader_changes"), uint64(1), s.ID)
	}
	waitMetric(t, c, "the leader's state and term gauges", func() bool {
		return gaugeOf(lr, "raft_state", metrics.Label{Name: "state", Value: "Leader"}) == 1 &&
			gaugeOf(lr, "raft_state", metrics.Label{Name: "state", Value: "Follower"}) == 0 &&
			gaugeOf(lr, "raft_has_leader") == 1 &&
			gaugeOf(lr, "raft_term") == float64(termOf(l.Raft()))
	})

	// Proposals, commits, applies and their latencies.
	for i := range 20 {
		c.apply(fmt.Sprintf("c%d", i))
	}
	require.GreaterOrEqual(t, counterOf(lr, "raft_proposals"), uint64(20))
	require.GreaterOrEqual(t, observations(lr, "raft_commit_latency"), uint64(20))
	require.GreaterOrEqual(t, observations(lr, "raft_apply_latency"), uint64(1))
	require.GreaterOrEqual(t, observations(lr, "raft_log_write_duration"), uint64(1))
	require.GreaterOrEqual(t, observations(lr, "raft_log_write_entries"), uint64(1))
	require.Positive(t, counterOf(lr, "raft_messages_sent", metrics.Label{Name: "type", Value: "MsgAppend"}))
	last := l.Raft().LastIndex()
	for _, s := range c.Servers() {
		rec := recs.of(s.ID)
		waitMetric(t, c, fmt.Sprintf("%s counts the commits and applies", s.ID), func() bool {
			return counterOf(rec, "raft_commits") >= 20 && counterOf(rec, "raft_applies") >= 20
		})
		waitMetric(t, c, fmt.Sprintf("%s's index gauges", s.ID), func() bool {
			return gaugeOf(rec, "raft_commit_index") >= float64(last) && gaugeOf(rec, "raft_applied_index") >= float64(last) &&
				gaugeOf(rec, "raft_last_log_index") >= float64(last)
		})
		if s != l {
			require.Positive(t, counterOf(rec, "raft_messages_sent", metrics.Label{Name: "type", Value: "MsgAppendResp"}), s.ID)
			peer := metrics.Label{Name: "peer", Value: string(s.ID)}
			waitMetric(t, c, fmt.Sprintf("the leader's gauges for %s", s.ID), func() bool {
				return gaugeOf(lr, "raft_peer_match_index", peer) >= float64(last) && gaugeOf(lr, "raft_peer_lag_entries", peer) == 0
			})
		}
	}
	waitMetric(t, c, "the quorum margin of three voters", func() bool { return gaugeOf(lr, "raft_quorum_margin") == 1 })

	// Reads of each kind.
	_, err := l.Raft().Read(ctx, raft.Linearizable)
	require.NoError(t, err)
	require.GreaterOrEqual(t, counterOf(lr, "raft_read_index_reads"), uint64(1))
	require.GreaterOrEqual(t, counterOf(lr, "raft_read_index_rounds"), uint64(1))
	waitMetric(t, c, "a lease read", func() bool {
		_, err := l.Raft().Read(ctx, raft.Lease)
		return err == nil && counterOf(lr, "raft_lease_reads") >= 1
	})
	_, err = l.Raft().Read(ctx, raft.Stale)
	require.NoError(t, err)
	require.EqualValues(t, 1, counterOf(lr, "raft_stale_reads"))

	// Forwarding.
	f := c.Others(l)[0]
	require.NoError(t, f.Raft().Apply(ctx, []byte("forwarded")).Error())
	require.EqualValues(t, 1, counterOf(recs.of(f.ID), "raft_forwarded_proposals"))
	require.EqualValues(t, 1, counterOf(lr, "raft_forwarded_received"))

	// Sessions.
	sess, err := l.Raft().RegisterSession(ctx, time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Raft().ApplySession(ctx, sess, 1, []byte("s1")).Error())
	require.NoError(t, l.Raft().ApplySession(ctx, sess, 1, []byte("s1")).Error()) // a retry
	result := func(v string) metrics.Label { return metrics.Label{Name: "result", Value: v} }
	require.EqualValues(t, 1, counterOf(lr, "raft_session_entries", result("registered")))
	require.EqualValues(t, 1, counterOf(lr, "raft_session_entries", result("applied")))
	require.EqualValues(t, 1, counterOf(lr, "raft_session_entries", result("duplicate")))
	require.Equal(t, 1.0, gaugeOf(lr, "raft_sessions"))

	// A snapshot taken, then sent to a server that fell behind.
	behind := c.Others(l)[1]
	c.Crash(behind)
	for i := range 200 {
		c.apply(fmt.Sprintf("d%d", i))
	}
	waitMetric(t, c, "the leader takes a snapshot", func() bool {
		return counterOf(lr, "raft_snapshots_taken") >= 1 && observations(lr, "raft_snapshot_take_duration") >= 1 &&
			observations(lr, "raft_snapshot_persist_duration") >= 1 && observations(lr, "raft_snapshot_size") >= 1
	})
	waitMetric(t, c, "the leader compacts its log", func() bool { return firstIndex(t, l) > last+1 })
	c.Restart(behind)
	br := recs.of(behind.ID)
	waitMetric(t, c, "the snapshot is sent, received and restored", func() bool {
		return counterOf(lr, "raft_snapshots_sent") >= 1 && counterOf(lr, "raft_snapshot_sent") > 0 &&
			counterOf(br, "raft_snapshots_received") >= 1 && counterOf(br, "raft_snapshot_received") > 0 &&
			observations(br, "raft_snapshot_receive_duration") >= 1 && observations(br, "raft_snapshot_restore_duration") >= 1 &&
			gaugeOf(br, "raft_snapshot_receive_progress") == 0 && gaugeOf(br, "raft_last_snapshot_index") > 0
	})
	c.waitConverged()

	// Dropped messages: the leader's transport refuses everything.
	transMu.Lock()
	lt := trans[l.ID]
	transMu.Unlock()
	heartbeat := metrics.Label{Name: "type", Value: "MsgHeartbeat"}
	before := counterOf(lr, "raft_messages_dropped", heartbeat)
	lt.fail.Store(true)
	waitMetric(t, c, "heartbeats the transport refused are counted as dropped", func() bool {
		return counterOf(lr, "raft_messages_dropped", heartbeat) > before
	})
	lt.fail.Store(false)

	for _, s := range c.Servers() {
		require.NoError(t, recs.of(s.ID).Err(), s.ID)
	}
}

// TestMetricsCountRefusedProposals: proposals refused without being
// appended are counted by reason.
func TestMetricsCountRefusedProposals(t *testing.T) {
	var recs recorders
	c := newCluster(t, 3, 17, func(conf *raft.Config) { conf.ForwardingDisabled = true; recs.config(conf) })
	l := c.Leader()
	f := c.Others(l)[0]
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout())
	defer cancel()
	var nl *raft.NotLeaderError
	require.ErrorAs(t, f.Raft().Apply(ctx, []byte("x")).Error(), &nl)
	require.EqualValues(t, 1, counterOf(recs.of(f.ID), "raft_proposals_refused", metrics.Label{Name: "reason", Value: "not_leader"}))
	require.Zero(t, counterOf(recs.of(f.ID), "raft_proposals"))

	// A server that stops reports no role and no leader, and its former
	// leadership's peer gauges read 0.
	lr := recs.of(l.ID)
	waitMetric(t, c, "the leader's gauges", func() bool {
		return gaugeOf(lr, "raft_state", metrics.Label{Name: "state", Value: "Leader"}) == 1 &&
			gaugeOf(lr, "raft_peer_last_contact", metrics.Label{Name: "peer", Value: string(f.ID)}) >= 0
	})
	c.Crash(l)
	for _, s := range []string{"Follower", "Candidate", "Leader"} {
		require.Zero(t, gaugeOf(lr, "raft_state", metrics.Label{Name: "state", Value: s}), s)
	}
	require.Zero(t, gaugeOf(lr, "raft_has_leader"))
	require.Zero(t, gaugeOf(lr, "raft_peer_lag_entries", metrics.Label{Name: "peer", Value: string(f.ID)}))
}

func termOf(r *raft.Raft) uint64 {
	t, _ := strconv.ParseUint(r.Stats()["term"], 10, 64)
	return t
}

// prometheusName is the name the Prometheus adapter gives a metric
// (metrics/prometheus): the namespace, the unit, _total for counters.
func prometheusName(d metrics.Desc, kind string) string {
	name := "keel_" + d.FullName()
	if d.Unit != metrics.Count && !strings.HasSuffix(name, "_"+string(d.Unit)) {
		name += "_" + string(d.Unit)
	}
	if kind == "counter" {
		name += "_total"
	}
	return name
}

// TestREADMEListsEveryRaftMetric: the README's metrics table names every
// metric package raft reports, by its Prometheus name.
func TestREADMEListsEveryRaftMetric(t *testing.T) {
	var recs recorders
	c := newCluster(t, 3, 19, recs.config)
	l := c.Leader()
	c.apply("x")
	rec := recs.of(l.ID)
	waitMetric(t, c, "the leader's peer gauges", func() bool { return rec.Kind("raft_peer_lag_entries") != "" })
	requireREADMENames(t, rec)
}

// requireREADMENames checks that README.md names, by its Prometheus name,
// every metric rec was asked for, and returns those names.
func requireREADMENames(t *testing.T, rec *metrics.Recorder) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, d := range rec.Descs() {
		name := prometheusName(d, rec.Kind(d.FullName()))
		if !seen[name] {
			seen[name] = true
			require.Contains(t, string(readme), "`"+name+"`", "README.md's metrics tables lack %s", name)
		}
	}
	return seen
}

// TestREADMEListsEveryStorageAndTransportMetric: the same for storage/wal
// and transport/tcp.
func TestREADMEListsEveryStorageAndTransportMetric(t *testing.T) {
	rec := metrics.NewRecorder()
	dir := t.TempDir()
	logs, err := wal.Open(filepath.Join(dir, "log"), wal.Options{Metrics: rec})
	require.NoError(t, err)
	defer logs.Close()
	stable, err := wal.OpenStableWith(filepath.Join(dir, "stable"), wal.StableOptions{Metrics: rec})
	require.NoError(t, err)
	defer stable.Close()
	a, err := tcp.New("127.0.0.1:0", tcp.Options{Metrics: rec})
	require.NoError(t, err)
	defer a.Close()
	b, err := tcp.New("127.0.0.1:0", tcp.Options{Metrics: rec})
	require.NoError(t, err)
	defer b.Close()
	// A message makes the sender's per-peer series.
	require.NoError(t, a.Send(b.LocalAddr(), &raft.Message{Type: raft.MsgHeartbeat, From: "a", To: "b", Term: 1}))
	select {
	case <-b.Consumer():
	case <-time.After(10 * time.Second):
		t.Fatal("the message did not arrive")
	}
	seen := requireREADMENames(t, rec)
	require.True(t, seen["keel_tcp_messages_sent_total"] && seen["keel_wal_syncs_total"] && seen["keel_wal_stable_writes_total"], "%v", seen)
	require.NoError(t, rec.Err())
}
