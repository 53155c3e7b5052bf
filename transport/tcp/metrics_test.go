package tcp

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
)

// value returns the value of the counter or gauge name with labels in r,
// or -1 if r has no such series.
func value(r *metrics.Recorder, name string, labels ...metrics.Label) float64 {
	if v, ok := r.CounterValue(name, labels...); ok {
		return float64(v)
	}
	if v, ok := r.GaugeValue(name, labels...); ok {
		return v
	}
	return -1
}

// eventually waits until the series has the value want.
func eventually(t *testing.T, r *metrics.Recorder, want float64, name string, labels ...metrics.Label) {
	t.Helper()
	waitFor(t, 5*time.Second, name, func() bool { return value(r, name, labels...) == want })
}

func laneLabels(peer raft.ServerAddress, lane string) []metrics.Label {
	return []metrics.Label{{Name: "peer", Value: string(peer)}, {Name: "lane", Value: lane}}
}

var (
	dirIn  = metrics.Label{Name: "direction", Value: "in"}
	dirOut = metrics.Label{Name: "direction", Value: "out"}
)

// requireStatsMatch checks that Stats and the metrics report the same
// counts, the lanes' summed for the outbound ones, once messages in flight
// have settled: a count reaches Stats an instant before its metric.
func requireStatsMatch(t *testing.T, tr *Transport, r *metrics.Recorder) {
	t.Helper()
	waitFor(t, 5*time.Second, "Stats and the metrics to agree", func() bool {
		return tr.Stats() == metricStats(t, tr, r)
	})
}

// metricStats is Stats as the metrics in r count it.
func metricStats(t *testing.T, tr *Transport, r *metrics.Recorder) Stats {
	t.Helper()
	tr.mu.RLock()
	var lanes [][]metrics.Label
	for addr := range tr.peers {
		lanes = append(lanes, laneLabels(addr, "fast"), laneLabels(addr, "bulk"))
	}
	tr.mu.RUnlock()
	sum := func(name string) uint64 {
		n := uint64(0)
		for _, ls := range lanes {
			v, ok := r.CounterValue(name, ls...)
			require.True(t, ok, "%s %v", name, ls)
			n += v
		}
		return n
	}
	return Stats{
		Sent: sum("tcp_messages_sent"), Dropped: sum("tcp_messages_dropped"), Failed: sum("tcp_messages_failed"),
		Reconnects: sum("tcp_reconnects"),
		Received:   uint64(value(r, "tcp_messages_received")), ReceiveDropped: uint64(value(r, "tcp_messages_receive_dropped")),
		Malformed:      uint64(value(r, "tcp_malformed_frames")),
		VersionRefused: uint64(value(r, "tcp_version_refused")),
		Frames:         sum("tcp_frames_written"),
	}
}

// A message sent moves sent, frames and bytes written on the sender and
// received and bytes read on the receiver; the connection gauges go up,
// and back down when the connections close.
func TestMetricsSendReceive(t *testing.T) {
	ra, rb := metrics.NewRecorder(), metrics.NewRecorder()
	a, b := newTransport(t, Options{Metrics: ra}), newTransport(t, Options{Metrics: rb})
	require.EqualValues(t, 0, value(ra, "tcp_connections", dirOut))
	require.EqualValues(t, 0, value(rb, "tcp_connections", dirIn))

	hb := heartbeat("a", 1)
	frameLen := float64(headerSize + len(mustEncode(t, hb)))
	require.NoError(t, a.Send(b.LocalAddr(), hb))
	recv(t, b, 5*time.Second)
	fast := laneLabels(b.LocalAddr(), "fast")
	eventually(t, ra, 1, "tcp_messages_sent", fast...)
	require.EqualValues(t, 1, value(ra, "tcp_frames_written", fast...))
	require.Equal(t, frameLen, value(ra, "tcp_written", fast...))
	require.EqualValues(t, 1, value(ra, "tcp_dials", fast...))
	require.EqualValues(t, 0, value(ra, "tcp_dial_failures", fast...))
	require.EqualValues(t, 0, value(ra, "tcp_reconnects", fast...))
	require.EqualValues(t, 0, value(ra, "tcp_queued", fast...))
	n, sum, _, ok := ra.HistogramValue("tcp_batch_frames", fast...)
	require.True(t, ok)
	require.EqualValues(t, 1, n)
	require.Equal(t, 1.0, sum)
	require.EqualValues(t, 1, value(ra, "tcp_connections", dirOut))
	require.EqualValues(t, 0, value(ra, "tcp_messages_sent", laneLabels(b.LocalAddr(), "bulk")...), "the bulk lane's series exist, at zero")

	eventually(t, rb, 1, "tcp_messages_received")
	require.Equal(t, frameLen, value(rb, "tcp_read"))
	require.EqualValues(t, 1, value(rb, "tcp_connections", dirIn))
	require.EqualValues(t, 0, value(rb, "tcp_connections", dirOut))

	// An append goes on the bulk lane: its own connection.
	app := appendMsg("a", 1, []byte("entry"))
	require.NoError(t, a.Send(b.LocalAddr(), app))
	recv(t, b, 5*time.Second)
	bulk := laneLabels(b.LocalAddr(), "bulk")
	eventually(t, ra, 1, "tcp_messages_sent", bulk...)
	require.EqualValues(t, 2, value(ra, "tcp_connections", dirOut))
	eventually(t, rb, 2, "tcp_connections", dirIn)
	eventually(t, rb, 2, "tcp_messages_received")
	require.Equal(t, frameLen+float64(headerSize+len(mustEncode(t, app))), value(rb, "tcp_read"))

	requireStatsMatch(t, a, ra)
	requireStatsMatch(t, b, rb)

	// Closing a closes its connections; b notices.
	require.NoError(t, a.Close())
	require.EqualValues(t, 0, value(ra, "tcp_connections", dirOut))
	eventually(t, rb, 0, "tcp_connections", dirIn)
	require.NoError(t, b.Close())
	require.NoError(t, ra.Err())
	require.NoError(t, rb.Err())
}

// A full queue moves dropped, and the queued gauge follows the queue.
func TestMetricsDroppedAndQueued(t *testing.T) {
	caCert, caKey := newCA(t)
	r := metrics.NewRecorder()
	payload := bytes.Repeat([]byte("q"), 1000)
	size := msgSize(appendMsg("a", 1, payload))
	const fit = 4
	a := newTransport(t, Options{TLS: tlsConfig(t, caCert, caKey, true), DialTimeout: time.Minute,
		QueueSize: 2 * fit, QueueBytes: fit * int(size), Metrics: r})
	// A peer that never answers the TLS handshake: the bulk lane's sender
	// takes one message and waits in the dial.
	stuck := raft.ServerAddress(slowListener(t).Addr().String())
	bulk := laneLabels(stuck, "bulk")
	require.NoError(t, a.Send(stuck, appendMsg("a", 0, payload)))
	eventually(t, r, 0, "tcp_queued", bulk...)
	for i := range uint64(fit) {
		require.NoError(t, a.Send(stuck, appendMsg("a", i+1, payload)))
		require.EqualValues(t, (i+1)*uint64(size), value(r, "tcp_queued", bulk...))
	}
	require.EqualValues(t, 0, value(r, "tcp_messages_dropped", bulk...))
	require.NoError(t, a.Send(stuck, appendMsg("a", 99, payload))) // full by bytes
	require.EqualValues(t, 1, value(r, "tcp_messages_dropped", bulk...))
	require.EqualValues(t, fit*size, value(r, "tcp_queued", bulk...))
	requireStatsMatch(t, a, r)

	// Full by count: the fast lane, of small messages.
	fast := laneLabels(stuck, "fast")
	require.NoError(t, a.Send(stuck, heartbeat("a", 0)))
	eventually(t, r, 0, "tcp_queued", fast...) // taken, its sender dialing
	for i := range uint64(3 * fit) {
		require.NoError(t, a.Send(stuck, heartbeat("a", i+1)))
	}
	require.EqualValues(t, fit, value(r, "tcp_messages_dropped", fast...), "QueueSize (2 fit) fit")
	require.EqualValues(t, 2*fit*msgSize(heartbeat("a", 1)), value(r, "tcp_queued", fast...))
	requireStatsMatch(t, a, r)
	require.NoError(t, r.Err())
}

// A malformed frame moves malformed; the connection it came on is closed,
// and the gauge comes back down.
func TestMetricsMalformed(t *testing.T) {
	r := metrics.NewRecorder()
	b := newTransport(t, Options{Metrics: r})
	c := writeRaw(t, b, frame(9, 3, []byte("abc")))
	expectClosedByPeer(t, c)
	eventually(t, r, 1, "tcp_malformed_frames")
	eventually(t, r, 0, "tcp_connections", dirIn)
	require.EqualValues(t, 0, value(r, "tcp_read"), "a rejected frame is not counted as read")
	requireStatsMatch(t, b, r)
	require.NoError(t, r.Err())
}

// Dialing a peer that is down moves dial_failures and failed; once it is
// back, dials; after the peer restarts, reconnects.
func TestMetricsReconnect(t *testing.T) {
	r := metrics.NewRecorder()
	a := newTransport(t, Options{Metrics: r})
	b := newTransport(t, Options{})
	addr := b.LocalAddr()
	fast := laneLabels(addr, "fast")
	require.NoError(t, a.Send(addr, heartbeat("a", 1)))
	recv(t, b, 5*time.Second)
	eventually(t, r, 1, "tcp_dials", fast...)
	require.NoError(t, b.Close())

	// Down: sends fail in the dial.
	waitFor(t, 10*time.Second, "a failed dial", func() bool {
		require.NoError(t, a.Send(addr, heartbeat("a", 2)))
		return value(r, "tcp_dial_failures", fast...) > 0
	})
	require.GreaterOrEqual(t, value(r, "tcp_messages_failed", fast...), value(r, "tcp_dial_failures", fast...))

	b2, err := New(string(addr), Options{})
	require.NoError(t, err)
	defer b2.Close()
	waitFor(t, 10*time.Second, "a reconnect", func() bool {
		require.NoError(t, a.Send(addr, heartbeat("a", 3)))
		select {
		case <-b2.Consumer():
		default:
		}
		return value(r, "tcp_reconnects", fast...) >= 1
	})
	require.Equal(t, value(r, "tcp_dials", fast...)-1, value(r, "tcp_reconnects", fast...))
	require.GreaterOrEqual(t, value(r, "tcp_dials", fast...), 2.0)
	requireStatsMatch(t, a, r)
	require.NoError(t, r.Err())
}

// requireNoInstruments checks that every instrument in v, a struct, is nil.
func requireNoInstruments(t *testing.T, v reflect.Value) {
	t.Helper()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Interface {
			require.True(t, f.IsNil(), "%s", v.Type().Field(i).Name)
		}
	}
}

// Without a Sink no instrument exists; Stats counts as before (the other
// tests check it).
func TestMetricsNil(t *testing.T) {
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 1)))
	recv(t, b, 5*time.Second)
	requireNoInstruments(t, reflect.ValueOf(a.m))
	a.mu.RLock()
	p := a.peers[b.LocalAddr()]
	a.mu.RUnlock()
	requireNoInstruments(t, reflect.ValueOf(&p.fast.m).Elem())
	requireNoInstruments(t, reflect.ValueOf(&p.bulk.m).Elem())
	waitFor(t, 5*time.Second, "sent", func() bool { return a.Stats().Sent == 1 })
}
