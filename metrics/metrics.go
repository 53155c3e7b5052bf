// Package metrics is the hook through which keel reports what it does:
// counters, gauges and latency histograms for package raft (Config.Metrics),
// storage/wal (Options.Metrics) and transport/tcp (Options.Metrics).
//
// keel depends on no monitoring library. A Sink turns keel's instruments into
// a monitoring system's; ready-made sinks live in modules of their own, so
// that importing keel brings in neither:
//
//	github.com/keelraft/raft/metrics/prometheus  (prometheus/client_golang)
//	github.com/keelraft/raft/metrics/otel        (the OpenTelemetry metric API)
//
// A nil Sink records nothing and costs nothing: no instrument is made and
// no clock is read for a latency nobody records.
//
// keel asks a Sink for each instrument once: when the server, store or
// transport starts, or when a peer or a message type is first seen. The
// measurements then go straight to the instrument, so a Sink's lookups
// stay off the hot path. Instruments are used from several goroutines at
// once and must be safe for that.
package metrics

import (
	"slices"
	"strings"
)

// Sink makes instruments. Asked twice for the same Desc (same subsystem,
// name and label values) it should return the same instrument, or one
// that adds to the same series, since two servers in one process may share
// a Sink.
type Sink interface {
	Counter(Desc) Counter
	Gauge(Desc) Gauge
	Histogram(Desc) Histogram
}

// Counter is a count that only grows.
type Counter interface {
	Add(delta uint64)
}

// Gauge is a value that goes up and down.
type Gauge interface {
	Set(value float64)
}

// Histogram records a distribution of observations, such as latencies in
// seconds or entries per write.
type Histogram interface {
	Observe(value float64)
}

// Unit is the unit of an instrument's values. Adapters put it in the
// metric's name or metadata as their ecosystem does (Prometheus:
// a _seconds or _bytes suffix; OpenTelemetry: "s", "By").
type Unit string

// The units keel uses; a count of things has no unit (its name says what
// it counts).
const (
	Count   Unit = ""
	Seconds Unit = "seconds"
	Bytes   Unit = "bytes"
)

// Label is one constant label of an instrument. A metric asked for with
// several label values (one per peer, one per message type) is one metric
// with several series.
type Label struct {
	Name, Value string
}

// Desc describes an instrument.
type Desc struct {
	// Subsystem is the part of keel that reports it: "raft", "wal" or "tcp".
	Subsystem string
	// Name is the metric's name within its subsystem, in snake case and
	// without unit or suffix: "commits", "commit_latency". Adapters add
	// their namespace ("keel") and unit.
	Name string
	// Help says what it measures.
	Help string
	Unit Unit
	// Labels are the instrument's constant labels, in a fixed order for a
	// given metric.
	Labels []Label
	// Buckets suggests a histogram's bucket upper bounds, in Unit.
	Buckets []float64
}

// FullName is the subsystem and name joined by an underscore: "raft_commits".
func (d Desc) FullName() string { return d.Subsystem + "_" + d.Name }

// LabelNames returns the names of d's labels, in order.
func (d Desc) LabelNames() []string {
	names := make([]string, len(d.Labels))
	for i, l := range d.Labels {
		names[i] = l.Name
	}
	return names
}

// LabelValues returns the values of d's labels, in order.
func (d Desc) LabelValues() []string {
	values := make([]string, len(d.Labels))
	for i, l := range d.Labels {
		values[i] = l.Value
	}
	return values
}

// With returns a copy of d with labels added.
func (d Desc) With(labels ...Label) Desc {
	d.Labels = append(slices.Clip(d.Labels), labels...)
	return d
}

// Bucket presets for the histograms keel reports.
var (
	// LatencyBuckets covers 50 µs (a fast fsync) to 10 s (a stalled disk).
	LatencyBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}
	// DurationBuckets covers 1 ms to 10 minutes, for snapshots.
	DurationBuckets = []float64{1e-3, 10e-3, 100e-3, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// EntriesBuckets covers 1 to 4,096 entries per write or message.
	EntriesBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
	// SizeBuckets covers 1 KiB to 16 GiB by factors of 4.
	SizeBuckets = []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 4 << 30, 16 << 30}
)

// key identifies a series: its full name and labels.
func (d Desc) key() string { return seriesKey(d.FullName(), d.Labels) }

func seriesKey(fullName string, labels []Label) string {
	var b strings.Builder
	b.WriteString(fullName)
	for _, l := range labels {
		b.WriteString("|")
		b.WriteString(l.Name)
		b.WriteString("=")
		b.WriteString(l.Value)
	}
	return b.String()
}
