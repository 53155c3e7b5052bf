package otel

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/keelraft/raft/metrics"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newMeter returns an SDK Meter and the reader that collects what it
// recorded.
func newMeter(t testing.TB) (metric.Meter, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	return mp.Meter("github.com/keelraft/raft"), reader
}

func collect(t testing.TB, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, "github.com/keelraft/raft", sm.Scope.Name)
		for _, m := range sm.Metrics {
			_, dup := out[m.Name]
			require.False(t, dup, "two instruments named %s", m.Name)
			out[m.Name] = m
		}
	}
	return out
}

func names(ms map[string]metricdata.Metrics) []string {
	var out []string
	for k := range ms {
		out = append(out, k)
	}
	return out
}

// set makes an attribute set of name, value, ...
func set(kv ...string) attribute.Set {
	var kvs []attribute.KeyValue
	for i := 0; i < len(kv); i += 2 {
		kvs = append(kvs, attribute.String(kv[i], kv[i+1]))
	}
	return attribute.NewSet(kvs...)
}

func point[T any](t testing.TB, dps []T, attrs func(T) attribute.Set, want attribute.Set) T {
	t.Helper()
	for _, dp := range dps {
		if got := attrs(dp); got.Equals(&want) {
			return dp
		}
	}
	t.Fatalf("no data point with attributes %v", want.ToSlice())
	var zero T
	return zero
}

func sumPoint(t testing.TB, m metricdata.Metrics, kv ...string) metricdata.DataPoint[int64] {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is a %T", m.Name, m.Data)
	require.True(t, sum.IsMonotonic, m.Name)
	require.Equal(t, metricdata.CumulativeTemporality, sum.Temporality)
	return point(t, sum.DataPoints, func(dp metricdata.DataPoint[int64]) attribute.Set { return dp.Attributes }, set(kv...))
}

func gaugePoint(t testing.TB, m metricdata.Metrics, kv ...string) metricdata.DataPoint[float64] {
	t.Helper()
	g, ok := m.Data.(metricdata.Gauge[float64])
	require.True(t, ok, "%s is a %T", m.Name, m.Data)
	return point(t, g.DataPoints, func(dp metricdata.DataPoint[float64]) attribute.Set { return dp.Attributes }, set(kv...))
}

func histPoint(t testing.TB, m metricdata.Metrics, kv ...string) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a %T", m.Name, m.Data)
	return point(t, h.DataPoints, func(dp metricdata.HistogramDataPoint[float64]) attribute.Set { return dp.Attributes }, set(kv...))
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

func TestNamesUnitsAttributesValues(t *testing.T) {
	meter, reader := newMeter(t)
	s := New(meter, Options{})

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

	ms := collect(t, reader)
	require.ElementsMatch(t, []string{
		"keel.raft.commits",
		"keel.wal.written",
		"keel.tcp.messages_sent",
		"keel.raft.term",
		"keel.raft.match_lag",
		"keel.raft.commit_latency",
		"keel.wal.batch_entries",
	}, names(ms))

	for name, unit := range map[string]string{
		"keel.raft.commits":        "",
		"keel.wal.written":         "By",
		"keel.raft.commit_latency": "s",
		"keel.raft.term":           "",
	} {
		require.Equal(t, unit, ms[name].Unit, name)
	}
	require.Equal(t, "Entries committed.", ms["keel.raft.commits"].Description)

	require.EqualValues(t, 7, sumPoint(t, ms["keel.raft.commits"]).Value)
	require.EqualValues(t, 1<<20, sumPoint(t, ms["keel.wal.written"]).Value)
	require.EqualValues(t, 10, sumPoint(t, ms["keel.tcp.messages_sent"], "type", "MsgAppend").Value)
	require.EqualValues(t, 2, sumPoint(t, ms["keel.tcp.messages_sent"], "type", "MsgVote").Value)
	require.Equal(t, 7.0, gaugePoint(t, ms["keel.raft.term"]).Value)
	require.Equal(t, -1.0, gaugePoint(t, ms["keel.raft.match_lag"], "peer", "n2").Value)

	hp := histPoint(t, ms["keel.raft.commit_latency"])
	require.EqualValues(t, 5, hp.Count)
	require.InDelta(t, 2.0605, hp.Sum, 1e-12)
	require.Equal(t, []float64{0.001, 0.01, 0.1, 1}, hp.Bounds)
	// Not cumulative: one count per bucket, the last above the last bound.
	require.Equal(t, []uint64{1, 2, 1, 0, 1}, hp.BucketCounts)
	mx, _ := hp.Max.Value()
	require.Equal(t, 2.0, mx)

	// No bucket hint: the SDK's default boundaries.
	def := histPoint(t, ms["keel.wal.batch_entries"])
	require.EqualValues(t, 1, def.Count)
	require.Equal(t, []float64{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000}, def.Bounds)
}

func TestNames(t *testing.T) {
	s := New(noop.NewMeterProvider().Meter(""), Options{})
	require.Equal(t, "keel.raft.commit_latency", s.name(latency))
	require.Equal(t, "keel.wal.written", s.name(written))
	require.Equal(t, "keel.up", s.name(metrics.Desc{Name: "up"}))
	require.Equal(t, "myapp.raft.commits", New(noop.NewMeterProvider().Meter(""), Options{Namespace: "myapp"}).name(commits))
	require.Equal(t, "", unit(metrics.Count))
	require.Equal(t, "s", unit(metrics.Seconds))
	require.Equal(t, "By", unit(metrics.Bytes))
	require.Equal(t, "ms", unit(metrics.Unit("ms")))
}

func TestAttributesAndTwoSinksOnOneMeter(t *testing.T) {
	meter, reader := newMeter(t)
	n1 := New(meter, Options{Attributes: []attribute.KeyValue{attribute.String("server", "n1")}})
	n2 := New(meter, Options{Attributes: []attribute.KeyValue{attribute.String("server", "n2")}})

	n1.Counter(commits).Add(5)
	n2.Counter(commits).Add(8)
	n1.Gauge(matchLag).Set(1)
	n2.Gauge(matchLag).Set(2)
	n2.Gauge(matchLag.With()).Set(3)
	n1.Histogram(latency).Observe(0.5)
	ms := collect(t, reader)
	require.Len(t, ms["keel.raft.match_lag"].Data.(metricdata.Gauge[float64]).DataPoints, 2)
	// A peer n2 sees later.
	n2.Gauge(metrics.Desc{Subsystem: "raft", Name: "match_lag", Help: matchLag.Help, Labels: []metrics.Label{{Name: "peer", Value: "n3"}}}).Set(9)
	n2.Histogram(latency).Observe(0.05)
	require.NoError(t, n1.Err())
	require.NoError(t, n2.Err())

	ms = collect(t, reader)
	require.EqualValues(t, 5, sumPoint(t, ms["keel.raft.commits"], "server", "n1").Value)
	require.EqualValues(t, 8, sumPoint(t, ms["keel.raft.commits"], "server", "n2").Value)
	require.Equal(t, 1.0, gaugePoint(t, ms["keel.raft.match_lag"], "server", "n1", "peer", "n2").Value)
	require.Equal(t, 3.0, gaugePoint(t, ms["keel.raft.match_lag"], "server", "n2", "peer", "n2").Value)
	require.Equal(t, 9.0, gaugePoint(t, ms["keel.raft.match_lag"], "server", "n2", "peer", "n3").Value)
	require.EqualValues(t, 1, histPoint(t, ms["keel.raft.commit_latency"], "server", "n1").Count)
	require.Equal(t, 0.05, histPoint(t, ms["keel.raft.commit_latency"], "server", "n2").Sum)

	// New copies Attributes.
	attrs := []attribute.KeyValue{attribute.String("server", "n3")}
	n3 := New(meter, Options{Attributes: attrs})
	attrs[0] = attribute.String("server", "n1")
	n3.Counter(commits).Add(1)
	ms = collect(t, reader)
	require.EqualValues(t, 1, sumPoint(t, ms["keel.raft.commits"], "server", "n3").Value)
}

func TestSharedSinkAddsUp(t *testing.T) {
	meter, reader := newMeter(t)
	s := New(meter, Options{})
	a, b := s.Counter(commits), s.Counter(commits)
	a.Add(1)
	b.Add(2)
	require.EqualValues(t, 3, sumPoint(t, collect(t, reader)["keel.raft.commits"]).Value)
}

func TestHugeCounterDeltaIsClamped(t *testing.T) {
	meter, reader := newMeter(t)
	s := New(meter, Options{})
	s.Counter(commits).Add(math.MaxUint64)
	require.EqualValues(t, math.MaxInt64, sumPoint(t, collect(t, reader)["keel.raft.commits"]).Value)
}

func TestInconsistentRequestsRecordNothingAndReportErr(t *testing.T) {
	meter, reader := newMeter(t)
	s := New(meter, Options{Attributes: []attribute.KeyValue{attribute.String("server", "n1")}})
	s.Gauge(term).Set(3)
	require.NoError(t, s.Err())

	bad := []func(){
		// The same instrument as another kind.
		func() { s.Histogram(term).Observe(1) },
		// The same instrument with other label names.
		func() { s.Gauge(term.With(metrics.Label{Name: "peer", Value: "n2"})).Set(1) },
		// The same instrument with another unit.
		func() {
			s.Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"})).Add(1)
			d := sent.With(metrics.Label{Name: "type", Value: "MsgAppend"})
			d.Unit = metrics.Bytes
			s.Counter(d).Add(1)
		},
		// A label that repeats an attribute.
		func() { s.Counter(commits.With(metrics.Label{Name: "server", Value: "n2"})).Add(1) },
		// A name the SDK refuses.
		func() { s.Counter(metrics.Desc{Subsystem: "raft", Name: "bad name!"}).Add(1) },
		// Buckets out of order, or not finite.
		func() {
			s.Histogram(metrics.Desc{Subsystem: "raft", Name: "h", Buckets: []float64{1, 0.5}}).Observe(1)
		},
		func() {
			s.Histogram(metrics.Desc{Subsystem: "raft", Name: "h2", Buckets: []float64{1, math.Inf(1)}}).Observe(1)
		},
	}
	for i, f := range bad {
		before := fmt.Sprint(s.Err())
		require.NotPanics(t, f, "case %d", i)
		require.Error(t, s.Err(), "case %d", i)
		require.NotEqual(t, before, fmt.Sprint(s.Err()), "case %d adds an error", i)
	}
	// The same mistake again is reported once.
	n := strings.Count(s.Err().Error(), "\n")
	s.Histogram(term).Observe(1)
	require.Equal(t, n, strings.Count(s.Err().Error(), "\n"))
	require.Contains(t, s.Err().Error(), "keel.raft.term asked for as a histogram")
	t.Log(s.Err())

	ms := collect(t, reader)
	require.ElementsMatch(t, []string{"keel.raft.term", "keel.tcp.messages_sent"}, names(ms))
	require.Equal(t, 3.0, gaugePoint(t, ms["keel.raft.term"], "server", "n1").Value)
	require.EqualValues(t, 1, sumPoint(t, ms["keel.tcp.messages_sent"], "server", "n1", "type", "MsgAppend").Value)
}

// panicMeter is a Meter whose instruments cannot be made.
type panicMeter struct{ metric.Meter }

func (panicMeter) Int64Counter(string, ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	panic("no counters here")
}

func TestAMeterThatPanicsDoesNotPanicKeel(t *testing.T) {
	s := New(panicMeter{noop.NewMeterProvider().Meter("")}, Options{})
	require.NotPanics(t, func() { s.Counter(commits).Add(1) })
	require.ErrorContains(t, s.Err(), "no counters here")
	s.Gauge(term).Set(1)
}

func TestConcurrentUse(t *testing.T) {
	meter, reader := newMeter(t)
	s := New(meter, Options{})
	const workers, peers, adds = 8, 16, 200
	var wg, collects sync.WaitGroup
	done := make(chan struct{})
	collects.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			require.NoError(t, reader.Collect(context.Background(), &rm))
		}
	})
	for w := range workers {
		wg.Go(func() {
			for p := range peers {
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
	collects.Wait()
	require.NoError(t, s.Err())

	ms := collect(t, reader)
	for p := range peers {
		peer := fmt.Sprintf("n%d", p)
		require.EqualValues(t, workers*adds, sumPoint(t, ms["keel.tcp.messages_sent"], "peer", peer).Value)
		require.EqualValues(t, workers*adds, histPoint(t, ms["keel.raft.commit_latency"], "peer", peer).Count)
	}
	require.Equal(t, float64(adds-1), gaugePoint(t, ms["keel.raft.match_lag"], "peer", "n2").Value)
}

type meterCase struct {
	name  string
	meter func(testing.TB) metric.Meter
}

var meters = []meterCase{
	{"noop", func(testing.TB) metric.Meter { return noop.NewMeterProvider().Meter("") }},
	{"sdk", func(t testing.TB) metric.Meter { m, _ := newMeter(t); return m }},
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's allocations would be counted")
	}
	for _, mc := range meters {
		t.Run(mc.name, func(t *testing.T) {
			s := New(mc.meter(t), Options{Attributes: []attribute.KeyValue{attribute.String("server", "n1")}})
			c := s.Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"}))
			g := s.Gauge(matchLag)
			h := s.Histogram(latency)
			// The first measurement of a series makes its storage.
			c.Add(1)
			g.Set(1)
			h.Observe(1)
			require.Zero(t, testing.AllocsPerRun(1000, func() { c.Add(1) }), "Counter.Add")
			require.Zero(t, testing.AllocsPerRun(1000, func() { g.Set(1) }), "Gauge.Set")
			require.Zero(t, testing.AllocsPerRun(1000, func() { h.Observe(0.003) }), "Histogram.Observe")
		})
	}
}

func BenchmarkCounterAdd(b *testing.B) {
	for _, mc := range meters {
		b.Run(mc.name, func(b *testing.B) {
			c := New(mc.meter(b), Options{}).Counter(sent.With(metrics.Label{Name: "type", Value: "MsgAppend"}))
			b.ReportAllocs()
			for b.Loop() {
				c.Add(1)
			}
		})
	}
	// The baseline: the SDK's counter called directly, with the same
	// attributes made once, so the adapter's share shows.
	b.Run("sdk-direct", func(b *testing.B) {
		m, _ := newMeter(b)
		c, err := m.Int64Counter("keel.tcp.messages_sent")
		require.NoError(b, err)
		opts := []metric.AddOption{metric.WithAttributeSet(set("type", "MsgAppend"))}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c.Add(ctx, 1, opts...)
		}
	})
}

func BenchmarkGaugeSet(b *testing.B) {
	for _, mc := range meters {
		b.Run(mc.name, func(b *testing.B) {
			g := New(mc.meter(b), Options{}).Gauge(matchLag)
			b.ReportAllocs()
			for b.Loop() {
				g.Set(42)
			}
		})
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	for _, mc := range meters {
		b.Run(mc.name, func(b *testing.B) {
			h := New(mc.meter(b), Options{}).Histogram(metrics.Desc{Subsystem: "raft", Name: "commit_latency", Unit: metrics.Seconds, Buckets: metrics.LatencyBuckets})
			b.ReportAllocs()
			for b.Loop() {
				h.Observe(0.003)
			}
		})
	}
}
