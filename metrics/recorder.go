package metrics

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Recorder is a Sink that keeps every instrument in memory, for tests and
// for looking at a server's figures without a monitoring system. Its
// lookups take a lock; its instruments do not.
type Recorder struct {
	mu     sync.Mutex
	series map[string]any // key → *recCounter, *recGauge or *recHistogram
	descs  map[string]Desc
	// sigs remembers each metric's kind and label names, so that a
	// metric asked for as two kinds, or with two sets of label names, is
	// reported by Err (a real monitoring system would refuse it).
	sigs map[string]string
	kind map[string]string // full name → "counter", "gauge" or "histogram"
	errs []error
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{series: map[string]any{}, descs: map[string]Desc{}, sigs: map[string]string{}, kind: map[string]string{}}
}

type recCounter struct{ v atomic.Uint64 }

func (c *recCounter) Add(d uint64) { c.v.Add(d) }

type recGauge struct{ bits atomic.Uint64 }

func (g *recGauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

type recHistogram struct {
	mu    sync.Mutex
	count uint64
	sum   float64
	max   float64
}

func (h *recHistogram) Observe(v float64) {
	h.mu.Lock()
	h.count++
	h.sum += v
	h.max = max(h.max, v)
	h.mu.Unlock()
}

// Counter implements Sink.
func (r *Recorder) Counter(d Desc) Counter {
	return get(r, d, "counter", func() *recCounter { return &recCounter{} })
}

// Gauge implements Sink.
func (r *Recorder) Gauge(d Desc) Gauge {
	return get(r, d, "gauge", func() *recGauge { return &recGauge{} })
}

// Histogram implements Sink.
func (r *Recorder) Histogram(d Desc) Histogram {
	return get(r, d, "histogram", func() *recHistogram { return &recHistogram{} })
}

func get[T any](r *Recorder, d Desc, kind string, make func() *T) *T {
	r.mu.Lock()
	defer r.mu.Unlock()
	sig := fmt.Sprint(kind, d.Unit, d.LabelNames())
	if old, ok := r.sigs[d.FullName()]; ok && old != sig {
		r.errs = append(r.errs, fmt.Errorf("metrics: %s asked for as %s, earlier as %s", d.FullName(), sig, old))
	}
	r.sigs[d.FullName()] = sig
	r.kind[d.FullName()] = kind
	k := d.key()
	if s, ok := r.series[k].(*T); ok {
		return s
	}
	s := make()
	r.series[k] = s
	r.descs[k] = d
	return s
}

func (r *Recorder) find(name string, labels []Label) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.series[seriesKey(name, labels)]
}

// CounterValue returns the value of the counter with the full name
// ("raft_commits") and labels given, and whether it exists.
func (r *Recorder) CounterValue(name string, labels ...Label) (uint64, bool) {
	c, ok := r.find(name, labels).(*recCounter)
	if !ok {
		return 0, false
	}
	return c.v.Load(), true
}

// GaugeValue returns the value of a gauge, and whether it exists.
func (r *Recorder) GaugeValue(name string, labels ...Label) (float64, bool) {
	g, ok := r.find(name, labels).(*recGauge)
	if !ok {
		return 0, false
	}
	return math.Float64frombits(g.bits.Load()), true
}

// HistogramValue returns how many observations a histogram has, their sum
// and the largest, and whether it exists.
func (r *Recorder) HistogramValue(name string, labels ...Label) (count uint64, sum, largest float64, ok bool) {
	h, ok := r.find(name, labels).(*recHistogram)
	if !ok {
		return 0, 0, 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count, h.sum, h.max, true
}

// Descs returns the Desc of every series asked for, sorted by full name
// and labels.
func (r *Recorder) Descs() []Desc {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.descs))
	for k := range r.descs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Desc, len(keys))
	for i, k := range keys {
		out[i] = r.descs[k]
	}
	return out
}

// Kind returns "counter", "gauge" or "histogram" for a metric asked for
// under its full name, or "" for one never asked for.
func (r *Recorder) Kind(fullName string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kind[fullName]
}

// Err reports the metrics that were asked for inconsistently: as two
// kinds, with two units or two sets of label names.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%v", r.errs)
}
