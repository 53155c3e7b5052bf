package metrics

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRecorderKeepsSeriesApart(t *testing.T) {
	r := NewRecorder()
	sent := Desc{Subsystem: "raft", Name: "messages_sent"}
	r.Counter(sent.With(Label{"type", "append"})).Add(2)
	r.Counter(sent.With(Label{"type", "append"})).Add(1) // the same series
	r.Counter(sent.With(Label{"type", "vote"})).Add(5)
	v, ok := r.CounterValue("raft_messages_sent", Label{"type", "append"})
	require.True(t, ok)
	require.EqualValues(t, 3, v)
	v, _ = r.CounterValue("raft_messages_sent", Label{"type", "vote"})
	require.EqualValues(t, 5, v)
	_, ok = r.CounterValue("raft_messages_sent")
	require.False(t, ok, "no series without labels was asked for")

	r.Gauge(Desc{Subsystem: "raft", Name: "term"}).Set(7)
	g, ok := r.GaugeValue("raft_term")
	require.True(t, ok)
	require.Equal(t, 7.0, g)

	h := r.Histogram(Desc{Subsystem: "wal", Name: "sync", Unit: Seconds})
	h.Observe(0.5)
	h.Observe(1.5)
	n, sum, largest, ok := r.HistogramValue("wal_sync")
	require.True(t, ok)
	require.EqualValues(t, 2, n)
	require.Equal(t, 2.0, sum)
	require.Equal(t, 1.5, largest)

	require.NoError(t, r.Err())
	require.Len(t, r.Descs(), 4)
	require.Equal(t, "counter", r.Kind("raft_messages_sent"))
	require.Equal(t, "gauge", r.Kind("raft_term"))
	require.Equal(t, "histogram", r.Kind("wal_sync"))
	require.Empty(t, r.Kind("raft_nothing"))
}

func TestRecorderReportsInconsistentMetrics(t *testing.T) {
	r := NewRecorder()
	r.Counter(Desc{Subsystem: "raft", Name: "x"})
	r.Gauge(Desc{Subsystem: "raft", Name: "x"})
	require.Error(t, r.Err())

	r = NewRecorder()
	r.Counter(Desc{Subsystem: "raft", Name: "x", Labels: []Label{{"peer", "a"}}})
	r.Counter(Desc{Subsystem: "raft", Name: "x", Labels: []Label{{"type", "a"}}})
	require.Error(t, r.Err())
}

func TestWithDoesNotShareLabels(t *testing.T) {
	base := Desc{Subsystem: "raft", Name: "x", Labels: make([]Label, 1, 4)}
	a := base.With(Label{"peer", "a"})
	b := base.With(Label{"peer", "b"})
	require.Equal(t, "a", a.Labels[1].Value)
	require.Equal(t, "b", b.Labels[1].Value)
}
