package tcp

import (
	"sync"
	"sync/atomic"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
)

// count adds n to total, one of Stats' counters, and to c, the same count
// as a metric (of a lane, or of the transport), if there is one: one add
// feeds both, so Stats and the metrics cannot disagree.
func count(total *atomic.Uint64, c metrics.Counter, n uint64) {
	total.Add(n)
	if c != nil {
		c.Add(n)
	}
}

func add(c metrics.Counter, n uint64) {
	if c != nil {
		c.Add(n)
	}
}

// transportMetrics are the instruments of a Transport that are not a
// lane's. All are nil without a Sink.
type transportMetrics struct {
	sink                           metrics.Sink // for the lanes
	received, recvDropped, malform metrics.Counter
	versionRefused                 metrics.Counter
	read                           metrics.Counter
	connsIn, connsOut              metrics.Gauge
}

func newTransportMetrics(s metrics.Sink) transportMetrics {
	if s == nil {
		return transportMetrics{}
	}
	c := func(name string, unit metrics.Unit, help string) metrics.Counter {
		return s.Counter(metrics.Desc{Subsystem: "tcp", Name: name, Unit: unit, Help: help})
	}
	conns := func(dir string) metrics.Gauge {
		return s.Gauge(metrics.Desc{Subsystem: "tcp", Name: "connections",
			Help:   "Open connections: dialed by this server's lanes (out) or accepted from peers (in).",
			Labels: []metrics.Label{{Name: "direction", Value: dir}}})
	}
	return transportMetrics{
		sink:           s,
		received:       c("messages_received", metrics.Count, "Messages decoded and put on the Consumer channel (Stats.Received)."),
		recvDropped:    c("messages_receive_dropped", metrics.Count, "Messages decoded but dropped because the Consumer channel was full, by count or bytes (Stats.ReceiveDropped)."),
		malform:        c("malformed_frames", metrics.Count, "Inbound frames and hellos rejected (not a hello, a version other than the negotiated one, length above MaxFrameSize, undecodable); each closes its connection (Stats.Malformed)."),
		versionRefused: c("version_refused", metrics.Count, "Connections, dialed or accepted, closed in the hello because this server and the peer speak no protocol version in common (Stats.VersionRefused)."),
		read:           c("read", metrics.Bytes, "Bytes of the frames read from accepted connections, headers included."),
		connsIn:        conns("in"),
		connsOut:       conns("out"),
	}
}

// laneMetrics are a lane's instruments, labelled with its peer's address
// and its name. All are nil without a Sink.
type laneMetrics struct {
	sent, dropped, failed metrics.Counter
	dials, dialFailures   metrics.Counter
	reconnects            metrics.Counter
	frames, written       metrics.Counter
	batch                 metrics.Histogram
	queued                metrics.Gauge
	queuedMu              sync.Mutex // orders queued.Set calls; see lane.queueChanged
}

func (lm *laneMetrics) init(s metrics.Sink, addr raft.ServerAddress, lane string) {
	if s == nil {
		return
	}
	labels := []metrics.Label{{Name: "peer", Value: string(addr)}, {Name: "lane", Value: lane}}
	c := func(name string, unit metrics.Unit, help string) metrics.Counter {
		return s.Counter(metrics.Desc{Subsystem: "tcp", Name: name, Unit: unit, Help: help, Labels: labels})
	}
	lm.sent = c("messages_sent", metrics.Count, "Messages written and flushed to a peer's connection (Stats.Sent).")
	lm.dropped = c("messages_dropped", metrics.Count, "Messages Send dropped because the lane's queue was full, by count (QueueSize) or bytes (QueueBytes) (Stats.Dropped).")
	lm.failed = c("messages_failed", metrics.Count, "Queued messages lost to dial, write or encode errors (Stats.Failed).")
	lm.dials = c("dials", metrics.Count, "Connections dialed to the peer.")
	lm.dialFailures = c("dial_failures", metrics.Count, "Dials to the peer that failed: connecting, the TLS handshake or the hello (each loses the message waiting for it).")
	lm.reconnects = c("reconnects", metrics.Count, "Connections dialed to the peer after the lane's first (Stats.Reconnects).")
	lm.frames = c("frames_written", metrics.Count, "Frames written to the peer's connection, one message each for a Transport, a batch of messages for a HostTransport (Stats.Frames); the messages of a batch whose write or flush failed are also in messages_failed.")
	lm.written = c("written", metrics.Bytes, "Bytes of the frames written to the peer's connection, headers included.")
	lm.batch = s.Histogram(metrics.Desc{Subsystem: "tcp", Name: "batch_frames", Buckets: metrics.EntriesBuckets, Labels: labels,
		Help: "Messages written per flush to the peer's connection (frames, for a Transport): the messages that queued behind each other and shared system calls."})
	lm.queued = s.Gauge(metrics.Desc{Subsystem: "tcp", Name: "queued", Unit: metrics.Bytes, Labels: labels,
		Help: "Bytes of the messages waiting in the lane's queue, as QueueBytes counts them."})
}

// wrote counts frames written to l's connection, of bytes bytes in all.
func (t *Transport) wrote(l *lane, frames, bytes int) {
	count(&t.frames, l.m.frames, uint64(frames))
	add(l.m.written, uint64(bytes))
}

// queueChanged reports the bytes in l's queue after a change. Send and the
// sender change them concurrently; the lock orders the Sets, each of which
// loads the count inside it, so the last Set reports the last change.
func (l *lane) queueChanged() {
	if l.m.queued == nil {
		return
	}
	l.m.queuedMu.Lock()
	l.m.queued.Set(float64(l.bytes.Load()))
	l.m.queuedMu.Unlock()
}
