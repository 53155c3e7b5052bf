// Package prometheus reports keel's metrics to Prometheus through
// github.com/prometheus/client_golang.
//
// A *Sink is both a metrics.Sink, for keel, and a prometheus.Collector, for
// a registry:
//
//	sink := keelprom.New(keelprom.Options{})
//	reg.MustRegister(sink)
//	cfg.Metrics = sink // raft.Config; also wal.Options.Metrics, tcp.Options.Metrics
//
// # Names
//
// A metric is named <namespace>_<subsystem>_<name>, then the unit
// (_seconds, _bytes) unless the name already ends with it, then _total for
// a counter unless the name already ends with it:
//
//	keel_raft_commits_total            counter
//	keel_wal_written_bytes_total       counter, Unit Bytes
//	keel_raft_term                     gauge
//	keel_raft_commit_latency_seconds   histogram, Unit Seconds
//
// A Desc's labels become the metric's labels; Options.ConstLabels are added
// to every series. A histogram's buckets are the Desc's, or
// prometheus.DefBuckets if it suggests none.
//
// # Registration
//
// keel asks for its metrics when a server, store or transport starts and
// when a peer or message type is first seen, so the families are not known
// when the Sink is registered: a Sink is an unchecked Collector (its
// Describe sends nothing). The registry therefore checks nothing at
// Register; conflicts show up at Gather. Two Sinks may be registered in one
// registry — two servers in one process — if their ConstLabels tell their
// series apart (say {"server": "n1"} and {"server": "n2"}); two Sinks with
// the same ConstLabels, or one Sink registered twice, make Gather fail with
// duplicate series. One Sink may also be shared by several servers, stores
// and transports: asked twice for the same Desc, it returns the same series,
// so their counts add up (and a gauge holds whichever was set last).
//
// # Errors
//
// A metric that cannot be made — asked for as two kinds or with two sets of
// label names (a keel bug), or with a label Prometheus refuses — is not
// reported: the Sink returns an instrument that records nothing and keeps
// the error for Err. It never panics, and the metrics it could make are
// still gathered.
package prometheus

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/keelraft/raft/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultNamespace is the namespace of the metrics' names when
// Options.Namespace is empty.
const DefaultNamespace = "keel"

// Options configures a Sink.
type Options struct {
	// Namespace is the first part of every metric's name. Empty means
	// DefaultNamespace, "keel".
	Namespace string
	// ConstLabels are added to every series the Sink makes, for instance
	// {"server": "n1"} to tell apart two servers in one process.
	ConstLabels prometheus.Labels
}

// Sink is a metrics.Sink that makes Prometheus metrics, and the
// prometheus.Collector that reports them. Its methods are safe for
// concurrent use, and so are the instruments it returns.
type Sink struct {
	namespace   string
	constLabels prometheus.Labels

	mu       sync.Mutex
	families map[string]*family // by full Prometheus name
	// vecs lists the families' collectors in the order they were made.
	// It is only appended to, under mu; Collect reads a prefix of it.
	vecs []prometheus.Collector
	errs []error
	seen map[string]bool // the errors' messages, to keep each once
}

// New returns a Sink with no metrics yet; register it with a
// prometheus.Registerer and pass it to keel.
func New(o Options) *Sink {
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	var cl prometheus.Labels
	if len(o.ConstLabels) > 0 {
		cl = make(prometheus.Labels, len(o.ConstLabels))
		for k, v := range o.ConstLabels {
			cl[k] = v
		}
	}
	return &Sink{namespace: ns, constLabels: cl, families: map[string]*family{}, seen: map[string]bool{}}
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

// family is one Prometheus metric: a vector of series that differ by the
// values of labelNames.
type family struct {
	kind       kind
	labelNames []string
	counters   *prometheus.CounterVec
	gauges     *prometheus.GaugeVec
	histograms *prometheus.HistogramVec
}

// Counter implements metrics.Sink.
func (s *Sink) Counter(d metrics.Desc) metrics.Counter {
	m, ok := s.series(d, counterKind)
	if !ok {
		return noop{}
	}
	return counter{m.(prometheus.Counter)}
}

// Gauge implements metrics.Sink.
func (s *Sink) Gauge(d metrics.Desc) metrics.Gauge {
	m, ok := s.series(d, gaugeKind)
	if !ok {
		return noop{}
	}
	return m.(prometheus.Gauge)
}

// Histogram implements metrics.Sink.
func (s *Sink) Histogram(d metrics.Desc) metrics.Histogram {
	m, ok := s.series(d, histogramKind)
	if !ok {
		return noop{}
	}
	return m.(prometheus.Observer)
}

// counter adapts a prometheus.Counter to keel's integer counts.
type counter struct{ c prometheus.Counter }

func (c counter) Add(delta uint64) { c.c.Add(float64(delta)) }

// noop is the instrument of a metric that could not be made.
type noop struct{}

func (noop) Add(uint64)      {}
func (noop) Set(float64)     {}
func (noop) Observe(float64) {}

// name is the Prometheus name of the metric d describes, asked for as k.
func (s *Sink) name(d metrics.Desc, k kind) string {
	name := d.Name
	if k == counterKind {
		name = strings.TrimSuffix(name, "_total")
	}
	if u := string(d.Unit); u != "" && name != u && !strings.HasSuffix(name, "_"+u) {
		name += "_" + u
	}
	if k == counterKind {
		name += "_total"
	}
	return prometheus.BuildFQName(s.namespace, d.Subsystem, name)
}

// series returns the series d describes, a prometheus.Counter, Gauge or
// Observer as k says, making its family if it is the first of it. It
// returns false, and keeps the error, if it cannot.
func (s *Sink) series(d metrics.Desc, k kind) (m any, ok bool) {
	name := s.name(d, k)
	labelNames := d.LabelNames()

	s.mu.Lock()
	defer s.mu.Unlock()
	f, exists := s.families[name]
	if exists {
		if f.kind != k || !slices.Equal(f.labelNames, labelNames) {
			s.fail(fmt.Errorf("metrics/prometheus: %s asked for as a %s with labels %q, earlier as a %s with labels %q",
				name, k, labelNames, f.kind, f.labelNames))
			return nil, false
		}
	} else {
		var err error
		if f, err = s.newFamily(name, d, k, labelNames); err != nil {
			s.fail(fmt.Errorf("metrics/prometheus: %s: %w", name, err))
			return nil, false
		}
		s.families[name] = f
		s.vecs = append(s.vecs, f.collector())
	}
	m, err := f.with(d.LabelValues())
	if err != nil {
		s.fail(fmt.Errorf("metrics/prometheus: %s: %w", name, err))
		return nil, false
	}
	return m, true
}

func (s *Sink) newFamily(name string, d metrics.Desc, k kind, labelNames []string) (*family, error) {
	f := &family{kind: k, labelNames: labelNames}
	switch k {
	case counterKind:
		f.counters = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name, Help: d.Help, ConstLabels: s.constLabels, Unit: string(d.Unit),
		}, labelNames)
	case gaugeKind:
		f.gauges = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name, Help: d.Help, ConstLabels: s.constLabels, Unit: string(d.Unit),
		}, labelNames)
	case histogramKind:
		// client_golang panics when it makes a series of a histogram
		// with these wrong; check them first.
		if slices.Contains(labelNames, "le") {
			return nil, errors.New(`"le" is not allowed as a histogram's label name`)
		}
		if _, ok := s.constLabels["le"]; ok {
			return nil, errors.New(`"le" is not allowed as a histogram's label name`)
		}
		buckets := prometheus.DefBuckets
		if len(d.Buckets) > 0 {
			if err := checkBuckets(d.Buckets); err != nil {
				return nil, err
			}
			buckets = slices.Clone(d.Buckets)
		}
		f.histograms = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: name, Help: d.Help, ConstLabels: s.constLabels, Unit: string(d.Unit), Buckets: buckets,
		}, labelNames)
	}
	// A vector's Desc keeps the errors of its name and labels (invalid,
	// or a label both constant and variable); an unchecked collector's
	// bad Desc would fail every Gather.
	ch := make(chan *prometheus.Desc, 1)
	f.collector().Describe(ch)
	if err := (<-ch).Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkBuckets reports bucket bounds client_golang would refuse.
func checkBuckets(b []float64) error {
	for i, v := range b {
		if math.IsNaN(v) || (i > 0 && v <= b[i-1]) {
			return fmt.Errorf("histogram buckets %v are not in increasing order", b)
		}
	}
	return nil
}

func (f *family) collector() prometheus.Collector {
	switch f.kind {
	case counterKind:
		return f.counters
	case gaugeKind:
		return f.gauges
	}
	return f.histograms
}

// with returns the family's series with the label values given.
func (f *family) with(values []string) (m any, err error) {
	defer func() {
		// Belt and braces: client_golang panics on a few inputs
		// (checked above); a metric is not worth a server.
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%v", r)
		}
	}()
	switch f.kind {
	case counterKind:
		return f.counters.GetMetricWithLabelValues(values...)
	case gaugeKind:
		return f.gauges.GetMetricWithLabelValues(values...)
	}
	return f.histograms.GetMetricWithLabelValues(values...)
}

func (s *Sink) fail(err error) {
	if msg := err.Error(); !s.seen[msg] {
		s.seen[msg] = true
		s.errs = append(s.errs, err)
	}
}

// Err returns the errors of the metrics the Sink could not make, joined,
// or nil if it made them all. Those metrics record nothing; the others are
// unaffected. An error here is a bug in keel (a metric asked for as two
// kinds, or with two sets of label names) or in Options (a constant label
// Prometheus refuses, or one that is also one of keel's labels: peer,
// type).
func (s *Sink) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Describe implements prometheus.Collector. It sends nothing: the Sink's
// metrics appear as keel asks for them, so it is an unchecked collector.
func (s *Sink) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *Sink) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	vecs := s.vecs[:len(s.vecs):len(s.vecs)]
	s.mu.Unlock()
	for _, v := range vecs {
		v.Collect(ch)
	}
}

var (
	_ metrics.Sink         = (*Sink)(nil)
	_ prometheus.Collector = (*Sink)(nil)
)
