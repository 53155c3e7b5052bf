package prometheus

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/keelraft/raft/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape gathers g as a Prometheus server would see it: encoded in the
// text format and parsed back.
func scrape(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		require.NoError(t, enc.Encode(mf))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	out, err := p.TextToMetricFamilies(&buf)
	require.NoError(t, err, "text:\n%s", buf.String())
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// series returns the series of family name whose labels are exactly
// labels (given as name, value, ...).
func series(t testing.TB, mfs map[string]*dto.MetricFamily, name string, typ dto.MetricType, labels ...string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	require.True(t, ok, "no family %s in %v", name, keys(mfs))
	require.Equal(t, typ, mf.GetType(), name)
	want := map[string]string{}
	for i := 0; i < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range mf.GetMetric() {
		if fmt.Sprint(labelsOf(m)) == fmt.Sprint(want) {
			return m
		}
	}
	t.Fatalf("no series %v of %s", want, name)
	return nil
}

func keys(mfs map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range mfs {
		out = append(out, k)
	}
	return out
}

var (
	commits  = metrics.Desc{Subsystem: "raft", Name: "commits", Help: "Entries committed."}
	written  = metrics.Desc{Subsystem: "wal", Name: "written", Help: "Bytes written.", Unit: metrics.Bytes}
	sent     = metrics.Desc{Subsystem: "tcp", Name: "messages_sent", Help: "Messages sent."}
	term     = metrics.Desc{Subsystem: "raft", Name: "term", Help: "Current term."}
	matchLag = metrics.Desc{Subsystem: "raft", Name: "match_lag", Help: "Entries a peer lags.", Labels: []metrics.Label{{Name: "peer", Value: "n2"}}}
	latency  = metrics.Desc{Subsystem: "raft", Name: "commit_latency", Help: "Proposal to commit.", Unit: metrics.Seconds, Buckets: []float64{0.001, 0.01, 0.1, 1}}
	batch    = metrics.Desc{Subsystem: "wal", Name: "batch_entries", Help: "Entries per write."}
)

func TestNamesTypesAndValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{})
	reg.MustRegister(s)

	s.Counter(commits).Add(3)
	s.Counter(commits).Add(4) // the same series, asked for again
	s.Counter(written).Add(1 << 20)
	s.Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"})).Add(10)
	s.Counter(sent.With(metrics.Label{Name: "type", Value: "MsgVote"})).Add(2)
	s.Gauge(term).Set(7)
	g := s.Gauge(matchLag)
	g.Set(100)
	g.Set(42.5)
	s.Gauge(matchLag.With()).Set(-1) // a copy of the Desc: the same series
	h := s.Histogram(latency)
	for _, v := range []float64{0.0005, 0.005, 0.005, 0.05, 2} {
		h.Observe(v)
	}
	s.Histogram(batch).Observe(3)
	require.NoError(t, s.Err())

	mfs := scrape(t, reg)
	require.ElementsMatch(t, []string{
		"keel_raft_commits_total",
		"keel_wal_written_bytes_total",
		"keel_tcp_messages_sent_total",
		"keel_raft_term",
		"keel_raft_match_lag",
		"keel_raft_commit_latency_seconds",
		"keel_wal_batch_entries",
	}, keys(mfs))

	require.Equal(t, "Entries committed.", mfs["keel_raft_commits_total"].GetHelp())
	require.Equal(t, 7.0, series(t, mfs, "keel_raft_commits_total", dto.MetricType_COUNTER).GetCounter().GetValue())
	require.Equal(t, float64(1<<20), series(t, mfs, "keel_wal_written_bytes_total", dto.MetricType_COUNTER).GetCounter().GetValue())
	require.Equal(t, 10.0, series(t, mfs, "keel_tcp_messages_sent_total", dto.MetricType_COUNTER, "type", "MsgAppend").GetCounter().GetValue())
	require.Equal(t, 2.0, series(t, mfs, "keel_tcp_messages_sent_total", dto.MetricType_COUNTER, "type", "MsgVote").GetCounter().GetValue())
	require.Equal(t, 7.0, series(t, mfs, "keel_raft_term", dto.MetricType_GAUGE).GetGauge().GetValue())
	require.Equal(t, -1.0, series(t, mfs, "keel_raft_match_lag", dto.MetricType_GAUGE, "peer", "n2").GetGauge().GetValue())

	hist := series(t, mfs, "keel_raft_commit_latency_seconds", dto.MetricType_HISTOGRAM).GetHistogram()
	require.EqualValues(t, 5, hist.GetSampleCount())
	require.InDelta(t, 2.0605, hist.GetSampleSum(), 1e-12)
	var bounds []float64
	var counts []uint64
	for _, b := range hist.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		counts = append(counts, b.GetCumulativeCount())
	}
	// The text format lists +Inf as a bucket; the parser keeps it.
	require.Equal(t, []float64{0.001, 0.01, 0.1, 1, math.Inf(1)}, bounds)
	require.Equal(t, []uint64{1, 3, 4, 4, 5}, counts)

	// No bucket hint: prometheus.DefBuckets.
	def := series(t, mfs, "keel_wal_batch_entries", dto.MetricType_HISTOGRAM).GetHistogram()
	require.Len(t, def.GetBucket(), len(prometheus.DefBuckets)+1)
	require.Equal(t, prometheus.DefBuckets[0], def.GetBucket()[0].GetUpperBound())
	require.EqualValues(t, 1, def.GetSampleCount())
}

func TestNames(t *testing.T) {
	s := New(Options{})
	for _, c := range []struct {
		d       metrics.Desc
		k       kind
		want    string
		comment string
	}{
		{commits, counterKind, "keel_raft_commits_total", ""},
		{written, counterKind, "keel_wal_written_bytes_total", ""},
		{metrics.Desc{Subsystem: "wal", Name: "written_bytes", Unit: metrics.Bytes}, counterKind, "keel_wal_written_bytes_total", "unit already there"},
		{metrics.Desc{Subsystem: "raft", Name: "errors_total"}, counterKind, "keel_raft_errors_total", "_total already there"},
		{metrics.Desc{Subsystem: "raft", Name: "fsync_seconds_total", Unit: metrics.Seconds}, counterKind, "keel_raft_fsync_seconds_total", "both already there"},
		{latency, histogramKind, "keel_raft_commit_latency_seconds", ""},
		{metrics.Desc{Subsystem: "raft", Name: "commit_latency_seconds", Unit: metrics.Seconds}, histogramKind, "keel_raft_commit_latency_seconds", "unit already there"},
		{metrics.Desc{Subsystem: "wal", Name: "segment_size", Unit: metrics.Bytes}, gaugeKind, "keel_wal_segment_size_bytes", ""},
		{term, gaugeKind, "keel_raft_term", ""},
		{metrics.Desc{Name: "up"}, gaugeKind, "keel_up", "no subsystem"},
	} {
		require.Equal(t, c.want, s.name(c.d, c.k), c.comment)
	}
	require.Equal(t, "myapp_raft_commits_total", New(Options{Namespace: "myapp"}).name(commits, counterKind))
}

func TestConstLabelsAndTwoSinksInOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	n1 := New(Options{ConstLabels: prometheus.Labels{"server": "n1"}})
	n2 := New(Options{ConstLabels: prometheus.Labels{"server": "n2"}})
	reg.MustRegister(n1)
	reg.MustRegister(n2)

	n1.Counter(commits).Add(5)
	n2.Counter(commits).Add(8)
	n1.Gauge(matchLag).Set(1)
	n2.Gauge(matchLag).Set(2)
	n2.Gauge(matchLag.With()).Set(3)
	n1.Histogram(latency).Observe(0.5)
	// n2 sees a peer later: the family shows up in the next gather.
	mfs := scrape(t, reg)
	require.Len(t, mfs["keel_raft_match_lag"].GetMetric(), 2)
	n2.Gauge(metrics.Desc{Subsystem: "raft", Name: "match_lag", Help: matchLag.Help, Labels: []metrics.Label{{Name: "peer", Value: "n3"}}}).Set(9)
	n2.Histogram(latency).Observe(0.05)
	require.NoError(t, n1.Err())
	require.NoError(t, n2.Err())

	mfs = scrape(t, reg)
	require.Equal(t, 5.0, series(t, mfs, "keel_raft_commits_total", dto.MetricType_COUNTER, "server", "n1").GetCounter().GetValue())
	require.Equal(t, 8.0, series(t, mfs, "keel_raft_commits_total", dto.MetricType_COUNTER, "server", "n2").GetCounter().GetValue())
	require.Equal(t, 1.0, series(t, mfs, "keel_raft_match_lag", dto.MetricType_GAUGE, "server", "n1", "peer", "n2").GetGauge().GetValue())
	require.Equal(t, 3.0, series(t, mfs, "keel_raft_match_lag", dto.MetricType_GAUGE, "server", "n2", "peer", "n2").GetGauge().GetValue())
	require.Equal(t, 9.0, series(t, mfs, "keel_raft_match_lag", dto.MetricType_GAUGE, "server", "n2", "peer", "n3").GetGauge().GetValue())
	require.EqualValues(t, 1, series(t, mfs, "keel_raft_commit_latency_seconds", dto.MetricType_HISTOGRAM, "server", "n1").GetHistogram().GetSampleCount())
	require.Equal(t, 0.05, series(t, mfs, "keel_raft_commit_latency_seconds", dto.MetricType_HISTOGRAM, "server", "n2").GetHistogram().GetSampleSum())

	// New copies ConstLabels: changing the map later changes nothing.
	cl := prometheus.Labels{"server": "n3"}
	n3 := New(Options{ConstLabels: cl})
	cl["server"] = "n1"
	reg.MustRegister(n3)
	n3.Counter(commits).Add(1)
	mfs = scrape(t, reg)
	require.Equal(t, 1.0, series(t, mfs, "keel_raft_commits_total", dto.MetricType_COUNTER, "server", "n3").GetCounter().GetValue())
}

func TestSharedSinkAddsUp(t *testing.T) {
	// Two servers (or a server and its store) given one Sink: the same
	// Desc is the same series.
	reg := prometheus.NewRegistry()
	s := New(Options{})
	reg.MustRegister(s)
	a, b := s.Counter(commits), s.Counter(commits)
	a.Add(1)
	b.Add(2)
	mfs := scrape(t, reg)
	require.Equal(t, 3.0, series(t, mfs, "keel_raft_commits_total", dto.MetricType_COUNTER).GetCounter().GetValue())
}

func TestInconsistentRequestsRecordNothingAndReportErr(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{ConstLabels: prometheus.Labels{"server": "n1"}})
	reg.MustRegister(s)
	s.Gauge(term).Set(3)
	require.NoError(t, s.Err())

	bad := []func(){
		// The same family as another kind.
		func() { s.Histogram(term).Observe(1) },
		// The same family with other label names.
		func() {
			s.Gauge(term.With(metrics.Label{Name: "peer", Value: "n2"})).Set(1)
		},
		// A counter whose name clashes with another counter's labels.
		func() {
			s.Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"})).Add(1)
			s.Counter(sent.With(metrics.Label{Name: "peer", Value: "n2"})).Add(1)
		},
		// A label that is also a constant label.
		func() { s.Counter(commits.With(metrics.Label{Name: "server", Value: "n2"})).Add(1) },
		// Label names Prometheus refuses.
		func() { s.Counter(commits.With(metrics.Label{Name: "__reserved", Value: "x"})).Add(1) },
		func() { s.Histogram(latency.With(metrics.Label{Name: "le", Value: "1"})).Observe(1) },
		// A label value that is not UTF-8.
		func() { s.Gauge(matchLag.With(metrics.Label{Name: "x", Value: "\xff"})).Set(1) },
		// Buckets out of order.
		func() {
			s.Histogram(metrics.Desc{Subsystem: "raft", Name: "h", Buckets: []float64{1, 0.5}}).Observe(1)
		},
	}
	for i, f := range bad {
		before := s.Err()
		require.NotPanics(t, f, "case %d", i)
		require.Error(t, s.Err(), "case %d", i)
		require.NotEqual(t, fmt.Sprint(before), fmt.Sprint(s.Err()), "case %d adds an error", i)
	}
	// The same mistake again is reported once.
	n := strings.Count(s.Err().Error(), "\n")
	s.Histogram(term).Observe(1)
	require.Equal(t, n, strings.Count(s.Err().Error(), "\n"))
	require.Contains(t, s.Err().Error(), "keel_raft_term asked for as a histogram")
	t.Log(s.Err())

	// What could be made is still gathered, and gathering does not fail.
	mfs := scrape(t, reg)
	require.Equal(t, 3.0, series(t, mfs, "keel_raft_term", dto.MetricType_GAUGE, "server", "n1").GetGauge().GetValue())
	require.Equal(t, 1.0, series(t, mfs, "keel_tcp_messages_sent_total", dto.MetricType_COUNTER, "server", "n1", "type", "MsgAppend").GetCounter().GetValue())
	require.NotContains(t, mfs, "keel_raft_h")
	require.NotContains(t, mfs, "keel_raft_commits_total")
}

func TestBadConstLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{ConstLabels: prometheus.Labels{"__server": "n1"}})
	reg.MustRegister(s)
	require.NotPanics(t, func() { s.Counter(commits).Add(1) })
	require.Error(t, s.Err())
	require.Empty(t, scrape(t, reg))
}

func TestConcurrentUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{})
	reg.MustRegister(s)
	const workers, peers, adds = 8, 16, 200
	var wg sync.WaitGroup
	done := make(chan struct{})
	var gathers sync.WaitGroup
	gathers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			_, err := reg.Gather()
			require.NoError(t, err)
		}
	})
	for w := range workers {
		wg.Go(func() {
			for p := range peers {
				// Every worker sees every peer appear, in its own order.
				peer := metrics.Label{Name: "peer", Value: fmt.Sprintf("n%d", (p+w)%peers)}
				c := s.Counter(sent.With(peer))
				g := s.Gauge(matchLag.With())
				h := s.Histogram(latency.With(peer))
				for i := range adds {
					c.Add(1)
					g.Set(float64(i))
					h.Observe(0.01)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	gathers.Wait()
	require.NoError(t, s.Err())

	mfs := scrape(t, reg)
	require.Len(t, mfs["keel_tcp_messages_sent_total"].GetMetric(), peers)
	for p := range peers {
		v := series(t, mfs, "keel_tcp_messages_sent_total", dto.MetricType_COUNTER, "peer", fmt.Sprintf("n%d", p)).GetCounter().GetValue()
		require.Equal(t, float64(workers*adds), v)
		n := series(t, mfs, "keel_raft_commit_latency_seconds", dto.MetricType_HISTOGRAM, "peer", fmt.Sprintf("n%d", p)).GetHistogram().GetSampleCount()
		require.EqualValues(t, workers*adds, n)
	}
	require.Equal(t, float64(adds-1), series(t, mfs, "keel_raft_match_lag", dto.MetricType_GAUGE, "peer", "n2").GetGauge().GetValue())
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's allocations would be counted")
	}
	s := New(Options{ConstLabels: prometheus.Labels{"server": "n1"}})
	c := s.Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"}))
	g := s.Gauge(matchLag)
	h := s.Histogram(latency)
	require.Zero(t, testing.AllocsPerRun(1000, func() { c.Add(1) }), "Counter.Add")
	require.Zero(t, testing.AllocsPerRun(1000, func() { g.Set(1) }), "Gauge.Set")
	require.Zero(t, testing.AllocsPerRun(1000, func() { h.Observe(0.003) }), "Histogram.Observe")
}

func BenchmarkCounterAdd(b *testing.B) {
	c := New(Options{}).Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"}))
	b.ReportAllocs()
	for b.Loop() {
		c.Add(1)
	}
}

func BenchmarkGaugeSet(b *testing.B) {
	g := New(Options{}).Gauge(matchLag)
	b.ReportAllocs()
	for b.Loop() {
		g.Set(42)
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := New(Options{}).Histogram(metrics.Desc{Subsystem: "raft", Name: "commit_latency", Unit: metrics.Seconds, Buckets: metrics.LatencyBuckets})
	b.ReportAllocs()
	for b.Loop() {
		h.Observe(0.003)
	}
}

func BenchmarkCounterAddParallel(b *testing.B) {
	c := New(Options{}).Counter(commits)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}
