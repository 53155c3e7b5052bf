package wal

import (
	"sync/atomic"
	"time"

	"github.com/keelraft/raft/metrics"
)

// counter is one of Stats' counters. It also feeds a metrics.Counter when
// the Log has a Sink, from the same add: Stats and the metric cannot
// disagree.
type counter struct {
	v atomic.Uint64
	m metrics.Counter // nil without a Sink
}

func (c *counter) add(n uint64) {
	c.v.Add(n)
	if c.m != nil {
		c.m.Add(n)
	}
}

func (c *counter) load() uint64 { return c.v.Load() }

// logMetrics are a Log's counters and instruments. Every instrument is nil
// when Options.Metrics is nil.
type logMetrics struct {
	batches, syncs, entries counter // Stats

	written     metrics.Counter
	reads       metrics.Counter
	corrupt     metrics.Counter
	deletes     [3]metrics.Counter // indexed by deletePrefix, deleteSuffix, deleteAll
	tornTails   metrics.Counter
	failures    metrics.Counter
	writeTime   metrics.Histogram
	syncTime    metrics.Histogram
	perBatch    metrics.Histogram
	segments    metrics.Gauge
	size        metrics.Gauge
	recoverTime metrics.Gauge
	timed       bool // writeTime or syncTime records
}

// The kinds of DeleteRange, the values of wal_deletes' label "kind".
const (
	deletePrefix = iota
	deleteSuffix
	deleteAll
)

var deleteKinds = [3]string{deletePrefix: "prefix", deleteSuffix: "suffix", deleteAll: "all"}

func newLogMetrics(s metrics.Sink) *logMetrics {
	m := &logMetrics{}
	if s == nil {
		return m
	}
	c := func(name string, unit metrics.Unit, help string) metrics.Counter {
		return s.Counter(metrics.Desc{Subsystem: "wal", Name: name, Unit: unit, Help: help})
	}
	h := func(name string, unit metrics.Unit, buckets []float64, help string) metrics.Histogram {
		return s.Histogram(metrics.Desc{Subsystem: "wal", Name: name, Unit: unit, Buckets: buckets, Help: help})
	}
	g := func(name string, unit metrics.Unit, help string) metrics.Gauge {
		return s.Gauge(metrics.Desc{Subsystem: "wal", Name: name, Unit: unit, Help: help})
	}
	m.batches.m = c("batches", metrics.Count, "Batches written to segment files, each with one write and one fsync: batches of entries, deletion records and segment seals.")
	m.entries.m = c("entries", metrics.Count, "Entries appended and made durable.")
	m.syncs.m = c("syncs", metrics.Count, "Fsyncs of segment files: one per batch and one per segment created.")
	m.written = c("written", metrics.Bytes, "Bytes of batches written to segment files, records, padding and commit records included (not the zeros written ahead of the data).")
	m.reads = c("reads", metrics.Count, "Entries read by GetLog.")
	m.corrupt = c("corrupt_reads", metrics.Count, "GetLog calls that found a record failing its checksum or not the entry expected (ErrCorrupt).")
	for k, kind := range deleteKinds {
		m.deletes[k] = s.Counter(metrics.Desc{Subsystem: "wal", Name: "deletes",
			Help:   "DeleteRange calls that deleted entries, by kind: a prefix, a suffix (a truncation), or all of them.",
			Labels: []metrics.Label{{Name: "kind", Value: kind}}})
	}
	m.tornTails = c("torn_tails", metrics.Count, "Torn final batches, never acknowledged, truncated by Open's recovery.")
	m.failures = c("failures", metrics.Count, "Times the store stopped for good (ErrFailed) after a write, fsync or other file-system error: at most one per Open.")
	m.writeTime = h("write_duration", metrics.Seconds, metrics.LatencyBuckets, "Time to write one batch to its segment file, before its fsync (zeros written ahead of the data included).")
	m.syncTime = h("sync_duration", metrics.Seconds, metrics.LatencyBuckets, "Time of one fsync of a segment file.")
	m.perBatch = h("batch_entries", metrics.Count, metrics.EntriesBuckets, "Entries per batch written: how many appends shared a write and an fsync.")
	m.segments = g("segments", metrics.Count, "Segment files the log holds.")
	m.size = g("size", metrics.Bytes, "Bytes used in the segment files, each up to the end of its last batch; each file is preallocated to Options.SegmentSize, so the disk holds up to segments × SegmentSize.")
	m.recoverTime = g("recovery_duration", metrics.Seconds, "Time the last Open took to recover the log.")
	m.timed = m.writeTime != nil || m.syncTime != nil
	return m
}

// epoch is the base of mono's readings.
var epoch = time.Now()

// mono reads the monotonic clock, and only it (time.Now reads the wall
// clock too).
func mono() time.Duration { return time.Since(epoch) }

// stopwatch times consecutive phases, such as a batch's write and then its
// fsync, with one clock read at the end of each. A stopwatch that is not
// on does nothing, reading no clock.
type stopwatch struct {
	on bool
	t  time.Duration
}

func startStopwatch(on bool) stopwatch {
	if !on {
		return stopwatch{}
	}
	return stopwatch{on: true, t: mono()}
}

// lap ends a phase, observing its duration in h if h is not nil, and
// starts the next.
func (w *stopwatch) lap(h metrics.Histogram) {
	if !w.on {
		return
	}
	now := mono()
	if h != nil {
		h.Observe((now - w.t).Seconds())
	}
	w.t = now
}

func add(c metrics.Counter, n uint64) {
	if c != nil {
		c.Add(n)
	}
}

func set(g metrics.Gauge, v float64) {
	if g != nil {
		g.Set(v)
	}
}
