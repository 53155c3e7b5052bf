package sim

import "container/heap"

// Time is virtual time in microseconds since the start of a run.
type Time int64

// Common durations in virtual time.
const (
	Microsecond Time = 1
	Millisecond      = 1000 * Microsecond
	Second           = 1000 * Millisecond
)

// Scheduler runs events in virtual time order; events at the same time run
// in the order they were scheduled, so a run is a function of its seed.
type Scheduler struct {
	now    Time
	seq    uint64
	events eventHeap
}

type event struct {
	at  Time
	seq uint64
	fn  func()
}

// Now returns the current virtual time.
func (s *Scheduler) Now() Time { return s.now }

// At schedules fn at time t (at once if t is in the past).
func (s *Scheduler) At(t Time, fn func()) {
	s.seq++
	heap.Push(&s.events, event{at: max(t, s.now), seq: s.seq, fn: fn})
}

// After schedules fn d after now.
func (s *Scheduler) After(d Time, fn func()) { s.At(s.now+d, fn) }

// Pending returns how many events are scheduled.
func (s *Scheduler) Pending() int { return len(s.events) }

// Step runs the next event and reports whether there was one.
func (s *Scheduler) Step() bool {
	if len(s.events) == 0 {
		return false
	}
	e := heap.Pop(&s.events).(event)
	s.now = e.at
	e.fn()
	return true
}

// RunUntil runs events up to time t, or until stop reports true after an
// event; it returns false if stop ended it.
func (s *Scheduler) RunUntil(t Time, stop func() bool) bool {
	for len(s.events) > 0 && s.events[0].at <= t {
		s.Step()
		if stop != nil && stop() {
			return false
		}
	}
	s.now = max(s.now, t)
	return true
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return e
}
