package sim

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"strings"
)

// Trace keeps the last events of a run for a failure report, and a hash of
// every event so that two runs of a seed can be compared byte for byte.
// Events are recorded as values and formatted only when printed, which
// keeps recording cheap.
type Trace struct {
	ring []Record
	next int
	n    int
	h    hash.Hash64
	buf  []byte
}

// Record is one traced event: what happened at which node, with a few
// numbers (term, index, …) whose meaning depends on the kind.
type Record struct {
	At     Time
	Node   string
	Kind   string
	Detail string
	Nums   [4]uint64
}

// NewTrace keeps the last size records.
func NewTrace(size int) *Trace {
	return &Trace{ring: make([]Record, size), h: fnv.New64a()}
}

// Add records an event.
func (t *Trace) Add(r Record) {
	t.ring[t.next] = r
	t.next = (t.next + 1) % len(t.ring)
	t.n++
	b := t.buf[:0]
	b = binary.LittleEndian.AppendUint64(b, uint64(r.At))
	b = append(b, r.Node...)
	b = append(b, 0)
	b = append(b, r.Kind...)
	b = append(b, 0)
	b = append(b, r.Detail...)
	for _, x := range r.Nums {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	t.buf = b
	t.h.Write(b)
}

// Hash returns the hash of every event recorded.
func (t *Trace) Hash() uint64 { return t.h.Sum64() }

// Len returns how many events were recorded.
func (t *Trace) Len() int { return t.n }

// Tail formats the last events, oldest first.
func (t *Trace) Tail() string {
	var sb strings.Builder
	size := min(t.n, len(t.ring))
	for i := 0; i < size; i++ {
		r := t.ring[(t.next-size+i+len(t.ring))%len(t.ring)]
		fmt.Fprintf(&sb, "%12v %-4s %-14s %v %s\n", r.At, r.Node, r.Kind, r.Nums, r.Detail)
	}
	return sb.String()
}
