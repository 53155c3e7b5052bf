// Package otel reports keel's metrics through the OpenTelemetry metric API
// (go.opentelemetry.io/otel/metric). It depends on the API only: the
// application picks the SDK and exporter behind the Meter.
//
//	meter := provider.Meter("github.com/keelraft/raft")
//	sink := keelotel.New(meter, keelotel.Options{})
//	cfg.Metrics = sink // raft.Config; also wal.Options.Metrics, tcp.Options.Metrics
//
// # Instruments and names
//
// A keel Counter is an Int64Counter, a Gauge a Float64Gauge and a Histogram
// a Float64Histogram, with the Desc's bucket bounds as its explicit bucket
// boundaries when it suggests some (else the SDK's default aggregation
// applies). An instrument is named <namespace>.<subsystem>.<name>, with
// the unit in its metadata, not its name, and no _total:
//
//	keel.raft.commits          Int64Counter
//	keel.wal.written           Int64Counter, unit "By"
//	keel.raft.term             Float64Gauge
//	keel.raft.commit_latency   Float64Histogram, unit "s"
//
// Units are UCUM: metrics.Seconds is "s", metrics.Bytes is "By" and
// metrics.Count (a count of things) has none; another Unit is passed on as
// it is. A Desc's labels become attributes, after Options.Attributes. The
// attribute set of each series is made once, when keel asks for the
// instrument, so that recording a measurement allocates nothing here.
// (The OpenTelemetry Prometheus exporter, with its default translation,
// turns these names into keel_raft_commits_total,
// keel_raft_commit_latency_seconds and so on: the names package
// github.com/keelraft/raft/metrics/prometheus gives.)
//
// # Errors
//
// An instrument that cannot be made — the Meter returns an error (an
// invalid name, say), or keel asks for a metric as two kinds, with two
// units or with two sets of label names (a keel bug), or a label repeats an
// attribute of Options.Attributes, or the bucket bounds are not increasing
// — records nothing: the Sink returns a no-op instrument and keeps the
// error for Err. It never panics.
package otel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/keelraft/raft/metrics"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// DefaultNamespace is the first part of the instruments' names when
// Options.Namespace is empty.
const DefaultNamespace = "keel"

// Options configures a Sink.
type Options struct {
	// Namespace is the first part of every instrument's name. Empty means
	// DefaultNamespace, "keel".
	Namespace string
	// Attributes are added to every measurement, for instance
	// attribute.String("server", "n1") to tell apart two servers in one
	// process that report through one Meter.
	Attributes []attribute.KeyValue
}

// Sink is a metrics.Sink that makes OpenTelemetry instruments from a Meter.
// Its methods are safe for concurrent use, and so are the instruments it
// returns.
type Sink struct {
	meter     metric.Meter
	namespace string
	attrs     []attribute.KeyValue

	mu    sync.Mutex
	insts map[string]*instrument // by name
	errs  []error
	seen  map[string]bool // the errors' messages, to keep each once
}

// New returns a Sink that makes its instruments with meter, which must not
// be nil.
func New(meter metric.Meter, o Options) *Sink {
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return &Sink{
		meter:     meter,
		namespace: ns,
		attrs:     slices.Clone(o.Attributes),
		insts:     map[string]*instrument{},
		seen:      map[string]bool{},
	}
}

type kind uint8

const (
	counterKind kind = iota + 1
	gaugeKind
	histogramKind
)

func (k kind) String() string {
	switch k {
	case counterKind:
		return "counter"
	case gaugeKind:
		return "gauge"
	case histogramKind:
		return "histogram"
	}
	return "unknown"
}

// instrument is one OpenTelemetry instrument, made once per name.
type instrument struct {
	kind       kind
	unit       string
	labelNames []string
	counter    metric.Int64Counter
	gauge      metric.Float64Gauge
	histogram  metric.Float64Histogram
}

// Counter implements metrics.Sink.
func (s *Sink) Counter(d metrics.Desc) metrics.Counter {
	i, set, ok := s.instrument(d, counterKind)
	if !ok {
		return discard{}
	}
	return &counter{c: i.counter, opts: []metric.AddOption{metric.WithAttributeSet(set)}}
}

// Gauge implements metrics.Sink.
func (s *Sink) Gauge(d metrics.Desc) metrics.Gauge {
	i, set, ok := s.instrument(d, gaugeKind)
	if !ok {
		return discard{}
	}
	return &gauge{g: i.gauge, opts: []metric.RecordOption{metric.WithAttributeSet(set)}}
}

// Histogram implements metrics.Sink.
func (s *Sink) Histogram(d metrics.Desc) metrics.Histogram {
	i, set, ok := s.instrument(d, histogramKind)
	if !ok {
		return discard{}
	}
	return &histogram{h: i.histogram, opts: []metric.RecordOption{metric.WithAttributeSet(set)}}
}

// counter, gauge and histogram are one series of an instrument: the
// instrument and its attribute set, made once.
type counter struct {
	c    metric.Int64Counter
	opts []metric.AddOption
}

func (c *counter) Add(delta uint64) {
	c.c.Add(context.Background(), int64(min(delta, math.MaxInt64)), c.opts...)
}

type gauge struct {
	g    metric.Float64Gauge
	opts []metric.RecordOption
}

func (g *gauge) Set(v float64) { g.g.Record(context.Background(), v, g.opts...) }

type histogram struct {
	h    metric.Float64Histogram
	opts []metric.RecordOption
}

func (h *histogram) Observe(v float64) { h.h.Record(context.Background(), v, h.opts...) }

// discard is the instrument of a metric that could not be made.
type discard struct{}

func (discard) Add(uint64)      {}
func (discard) Set(float64)     {}
func (discard) Observe(float64) {}

// name is the instrument name of the metric d describes.
func (s *Sink) name(d metrics.Desc) string {
	parts := make([]string, 0, 3)
	for _, p := range []string{s.namespace, d.Subsystem, d.Name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}

// unit is the UCUM unit of u.
func unit(u metrics.Unit) string {
	switch u {
	case metrics.Seconds:
		return "s"
	case metrics.Bytes:
		return "By"
	}
	return string(u) // metrics.Count: ""
}

// instrument returns the instrument d describes, as k, and the attributes
// of d's series, making the instrument if it is the first of it. It
// returns false, and keeps the error, if it cannot.
func (s *Sink) instrument(d metrics.Desc, k kind) (*instrument, attribute.Set, bool) {
	name, u, labelNames := s.name(d), unit(d.Unit), d.LabelNames()
	set, err := s.attributes(d)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.fail(fmt.Errorf("metrics/otel: %s: %w", name, err))
		return nil, set, false
	}
	i, ok := s.insts[name]
	if ok {
		if i.kind != k || i.unit != u || !slices.Equal(i.labelNames, labelNames) {
			s.fail(fmt.Errorf("metrics/otel: %s asked for as a %s with unit %q and labels %q, earlier as a %s with unit %q and labels %q",
				name, k, u, labelNames, i.kind, i.unit, i.labelNames))
			return nil, set, false
		}
		return i, set, true
	}
	if i, err = s.newInstrument(name, u, d, k, labelNames); err != nil {
		s.fail(fmt.Errorf("metrics/otel: %s: %w", name, err))
		return nil, set, false
	}
	s.insts[name] = i
	return i, set, true
}

func (s *Sink) newInstrument(name, u string, d metrics.Desc, k kind, labelNames []string) (i *instrument, err error) {
	defer func() {
		// A metric is not worth a server, whatever the Meter does.
		if r := recover(); r != nil {
			i, err = nil, fmt.Errorf("%v", r)
		}
	}()
	i = &instrument{kind: k, unit: u, labelNames: labelNames}
	switch k {
	case counterKind:
		i.counter, err = s.meter.Int64Counter(name, metric.WithDescription(d.Help), metric.WithUnit(u))
	case gaugeKind:
		i.gauge, err = s.meter.Float64Gauge(name, metric.WithDescription(d.Help), metric.WithUnit(u))
	case histogramKind:
		opts := []metric.Float64HistogramOption{metric.WithDescription(d.Help), metric.WithUnit(u)}
		if len(d.Buckets) > 0 {
			if err := checkBuckets(d.Buckets); err != nil {
				return nil, err
			}
			opts = append(opts, metric.WithExplicitBucketBoundaries(slices.Clone(d.Buckets)...))
		}
		i.histogram, err = s.meter.Float64Histogram(name, opts...)
	}
	if err != nil {
		return nil, err
	}
	return i, nil
}

// checkBuckets reports bucket bounds that are not finite and increasing.
func checkBuckets(b []float64) error {
	for j, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || (j > 0 && v <= b[j-1]) {
			return fmt.Errorf("histogram buckets %v are not finite and increasing", b)
		}
	}
	return nil
}

// attributes returns the attribute set of d's series: Options.Attributes,
// then d's labels.
func (s *Sink) attributes(d metrics.Desc) (attribute.Set, error) {
	kvs := make([]attribute.KeyValue, 0, len(s.attrs)+len(d.Labels))
	kvs = append(kvs, s.attrs...)
	for _, l := range d.Labels {
		k := attribute.Key(l.Name)
		if slices.ContainsFunc(kvs, func(kv attribute.KeyValue) bool { return kv.Key == k }) {
			return *attribute.EmptySet(), fmt.Errorf("label %q given twice (Options.Attributes or the Desc)", l.Name)
		}
		kvs = append(kvs, k.String(l.Value))
	}
	return attribute.NewSet(kvs...), nil
}

func (s *Sink) fail(err error) {
	if msg := err.Error(); !s.seen[msg] {
		s.seen[msg] = true
		s.errs = append(s.errs, err)
	}
}

// Err returns the errors of the instruments the Sink could not make,
// joined, or nil if it made them all. Those instruments record nothing;
// the others are unaffected.
func (s *Sink) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

var _ metrics.Sink = (*Sink)(nil)
