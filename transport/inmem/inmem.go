// Package inmem is an in-memory raft.Transport for tests, with seeded fault
// injection: partitions, one-way cuts, random drops, duplicates, delays and
// reordering.
//
// A Network connects Transports by address. Every message goes through
// raft.EncodeMessage on Send and raft.DecodeMessage on delivery, so the
// receiver gets a fresh Message and codec bugs show up in tests.
//
// All random fault decisions are drawn from one PCG source seeded by
// NewNetwork, under the Network's mutex, in the order Sends reach it: the
// same seed, configuration and sequence of Sends give the same decisions.
// (Concurrent Sends reach the mutex in a scheduling-dependent order.) Per
// message the draws are, each only when its setting is non-zero: drop; if
// not dropped, duplicate, a delay per copy, and reorder (unless the message
// follows a held one). Timers never change later decisions.
//
// With no delay and no reordering configured, a message is delivered inside
// Send, on the caller's goroutine: messages sent one after another on a link
// arrive in order, and the hot path is one encode, one decode and one
// non-blocking channel send. Delayed messages are delivered by one goroutine
// per receiving Transport from a queue ordered by due time.
package inmem

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelraft/raft"
)

// DefaultBufferSize is the default capacity of a Transport's Consumer channel.
const DefaultBufferSize = 4096

// DefaultReorderHold is how long a reordered message waits for the next
// message on its link before it is delivered anyway.
const DefaultReorderHold = 20 * time.Millisecond

var (
	// ErrClosed is returned (wrapped) by Send on a closed Transport and by
	// NewTransport on a closed Network.
	ErrClosed = errors.New("inmem: transport closed")
	// ErrAddrInUse is returned by NewTransport when an open Transport already
	// has the address.
	ErrAddrInUse = errors.New("inmem: address in use")
)

// DropStats counts dropped messages by reason.
type DropStats struct {
	Unreachable uint64 // no open Transport at the target, at send or at delivery time
	Partitioned uint64 // sender and receiver separated by Partition or Isolate
	Cut         uint64 // link cut with Cut
	Random      uint64 // SetDropRate
	Full        uint64 // receiver's Consumer channel was full
	Malformed   uint64 // raft.DecodeMessage rejected the encoded message
}

// Total returns the number of dropped messages.
func (d DropStats) Total() uint64 {
	return d.Unreachable + d.Partitioned + d.Cut + d.Random + d.Full + d.Malformed
}

// NetStats counts what a Network did. Dropped duplicates count as drops too,
// so Sent + Duplicated = Delivered + Dropped.Total() once nothing is in flight.
type NetStats struct {
	Sent       uint64 // messages accepted by Send
	Delivered  uint64 // messages put on a Consumer channel, duplicates included
	Duplicated uint64 // extra copies made by SetDuplicateRate
	Reordered  uint64 // messages held back by SetReorderRate
	Dropped    DropStats
}

type dropReason int

const (
	dropNone dropReason = iota
	dropUnreachable
	dropPartitioned
	dropCut
	dropRandom
	dropFull
	dropMalformed
	numDropReasons
)

type linkKey struct{ from, to raft.ServerAddress }

// link holds the per-direction state needed for reordering. armed is
// decision state and changes only in route, so decisions do not depend on
// timing; held is the message itself, which a timer may deliver first.
type link struct {
	armed bool     // a message was held; the next one releases it and is not held
	held  *pending // the held message, until released or its hold expires
}

// pending is one copy of a message on its way to a receiver.
type pending struct {
	to   *Transport
	data []byte
	due  time.Time // zero: deliver now
}

// delivery is what route asks Send to do once the Network lock is released:
// deliver or queue the pending message, or, if link is not nil, queue a
// check at due that delivers *held if it is still held on link.
type delivery struct {
	pending
	held *pending
	link *link
}

// decision records route's choices for one message (for tests).
type decision struct {
	From, To  raft.ServerAddress
	Drop      dropReason
	Dup       bool
	Delays    []time.Duration
	Reordered bool
}

// Network connects Transports and injects faults. Its methods are safe for
// concurrent use; fault settings apply to messages sent afterwards.
type Network struct {
	mu          sync.Mutex
	rng         *rand.Rand
	closed      bool
	peers       map[raft.ServerAddress]*Transport
	partitioned bool
	groups      map[raft.ServerAddress]int
	isolated    map[raft.ServerAddress]bool
	cuts        map[linkKey]bool
	links       map[linkKey]*link
	narmed      int // armed links
	dropRate    float64
	dupRate     float64
	reorderRate float64
	minDelay    time.Duration
	maxDelay    time.Duration
	hold        time.Duration
	trace       func(decision) // called under mu; tests only

	sent, delivered, duplicated, reordered atomic.Uint64
	drops                                  [numDropReasons]atomic.Uint64
}

// NewNetwork returns an empty, fault-free Network whose random decisions
// come from a PCG source seeded with seed.
func NewNetwork(seed uint64) *Network {
	return &Network{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		peers:    make(map[raft.ServerAddress]*Transport),
		groups:   make(map[raft.ServerAddress]int),
		isolated: make(map[raft.ServerAddress]bool),
		cuts:     make(map[linkKey]bool),
		links:    make(map[linkKey]*link),
		hold:     DefaultReorderHold,
	}
}

// Option configures a Transport.
type Option func(*options)

type options struct{ bufferSize int }

// WithBufferSize sets the capacity of the Consumer channel (default
// DefaultBufferSize). Messages arriving when it is full are dropped.
func WithBufferSize(n int) Option { return func(o *options) { o.bufferSize = n } }

// NewTransport creates the endpoint at addr. It fails with ErrAddrInUse if
// an open Transport has addr (a closed one's address may be reused, which
// simulates a restart: messages in flight to the old one are lost), and
// with ErrClosed if the Network is closed.
func (n *Network) NewTransport(addr raft.ServerAddress, opts ...Option) (*Transport, error) {
	o := options{bufferSize: DefaultBufferSize}
	for _, opt := range opts {
		opt(&o)
	}
	if addr == "" {
		return nil, errors.New("inmem: empty address")
	}
	if o.bufferSize < 0 {
		return nil, fmt.Errorf("inmem: negative buffer size %d", o.bufferSize)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("inmem: new transport %s: %w", addr, ErrClosed)
	}
	if _, ok := n.peers[addr]; ok {
		return nil, fmt.Errorf("inmem: new transport %s: %w", addr, ErrAddrInUse)
	}
	t := &Transport{
		net:    n,
		addr:   addr,
		ch:     make(chan *raft.Message, o.bufferSize),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	n.peers[addr] = t
	go t.run()
	return t, nil
}

// Close closes every Transport and makes NewTransport fail. Goroutines have
// exited when it returns.
func (n *Network) Close() error {
	n.mu.Lock()
	n.closed = true
	ts := make([]*Transport, 0, len(n.peers))
	for _, t := range n.peers {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	for _, t := range ts {
		t.Close()
	}
	return nil
}

// Partition splits the network: afterwards only addresses in the same group
// can talk, and an address in no group (including ones created later) is
// isolated. Partition() with no groups isolates everyone. It replaces any
// earlier partition and panics if an address is in two groups.
func (n *Network) Partition(groups ...[]raft.ServerAddress) {
	g := make(map[raft.ServerAddress]int)
	for i, group := range groups {
		for _, a := range group {
			if j, ok := g[a]; ok && j != i {
				panic(fmt.Sprintf("inmem: address %s in two partition groups", a))
			}
			g[a] = i
		}
	}
	n.locked(func() { n.partitioned, n.groups = true, g })
}

// Heal removes partitions, isolation and cuts, and sets the drop, duplicate
// and reorder rates to zero. It leaves the delay (see SetDelay) as it is.
// Messages already delayed or held back are still delivered.
func (n *Network) Heal() {
	n.locked(func() {
		n.partitioned = false
		clear(n.groups)
		clear(n.isolated)
		clear(n.cuts)
		n.dropRate, n.dupRate, n.reorderRate = 0, 0, 0
	})
}

// locked runs f under the Network's mutex.
func (n *Network) locked(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f()
}

// Cut drops messages from one address to another (one direction only).
func (n *Network) Cut(from, to raft.ServerAddress) {
	n.locked(func() { n.cuts[linkKey{from, to}] = true })
}

// Restore undoes Cut(from, to).
func (n *Network) Restore(from, to raft.ServerAddress) {
	n.locked(func() { delete(n.cuts, linkKey{from, to}) })
}

// Isolate drops every message to or from addr (other than to itself), on top
// of any partition.
func (n *Network) Isolate(addr raft.ServerAddress) { n.locked(func() { n.isolated[addr] = true }) }

// Rejoin undoes Isolate(addr). It does not undo Partition or Cut.
func (n *Network) Rejoin(addr raft.ServerAddress) { n.locked(func() { delete(n.isolated, addr) }) }

func (n *Network) setRate(name string, rate *float64, p float64) error {
	if !(p >= 0 && p <= 1) { // also rejects NaN
		return fmt.Errorf("inmem: %s rate %v not in [0, 1]", name, p)
	}
	n.locked(func() { *rate = p })
	return nil
}

// SetDropRate makes each message be dropped with probability p.
func (n *Network) SetDropRate(p float64) error { return n.setRate("drop", &n.dropRate, p) }

// SetDuplicateRate makes each message that is not dropped be delivered twice
// with probability p. The copies are delayed independently.
func (n *Network) SetDuplicateRate(p float64) error { return n.setRate("duplicate", &n.dupRate, p) }

// SetReorderRate makes each message be held back with probability p and
// delivered after the next message delivered on the same link (from, to),
// or after the reorder hold (see SetReorderHold) if none comes first. The
// message after a held one is never held itself (whether or not the hold
// has expired, so that decisions do not depend on timing).
func (n *Network) SetReorderRate(p float64) error { return n.setRate("reorder", &n.reorderRate, p) }

// SetReorderHold sets how long a reordered message waits for the next one
// on its link (default DefaultReorderHold). d must be positive.
func (n *Network) SetReorderHold(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("inmem: reorder hold %v not positive", d)
	}
	n.locked(func() { n.hold = d })
	return nil
}

// SetDelay delays each message by a duration drawn uniformly from
// [min, max]. SetDelay(0, 0) turns delays off.
func (n *Network) SetDelay(min, max time.Duration) error {
	if min < 0 || min > max {
		return fmt.Errorf("inmem: bad delay range [%v, %v]", min, max)
	}
	n.locked(func() { n.minDelay, n.maxDelay = min, max })
	return nil
}

// Stats returns counts of what the Network has done so far.
func (n *Network) Stats() NetStats {
	d := func(r dropReason) uint64 { return n.drops[r].Load() }
	return NetStats{
		Sent:       n.sent.Load(),
		Delivered:  n.delivered.Load(),
		Duplicated: n.duplicated.Load(),
		Reordered:  n.reordered.Load(),
		Dropped: DropStats{
			Unreachable: d(dropUnreachable), Partitioned: d(dropPartitioned),
			Cut: d(dropCut), Random: d(dropRandom), Full: d(dropFull), Malformed: d(dropMalformed),
		},
	}
}

// reachable reports why from cannot reach to, or dropNone. Caller holds mu.
func (n *Network) reachable(from, to raft.ServerAddress) dropReason {
	if from == to {
		return dropNone
	}
	if len(n.isolated) > 0 && (n.isolated[from] || n.isolated[to]) {
		return dropPartitioned
	}
	if n.partitioned {
		gf, okf := n.groups[from]
		gt, okt := n.groups[to]
		if !okf || !okt || gf != gt {
			return dropPartitioned
		}
	}
	if len(n.cuts) > 0 && n.cuts[linkKey{from, to}] {
		return dropCut
	}
	return dropNone
}

// route makes the fault decisions for one message and appends what to do
// with it to out.
func (n *Network) route(from, to raft.ServerAddress, data []byte, out []delivery) []delivery {
	n.sent.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	dec := decision{From: from, To: to}
	out = n.decide(&dec, data, out)
	if n.trace != nil {
		n.trace(dec)
	}
	return out
}

// decide does route's work, recording its choices in dec. Caller holds mu.
func (n *Network) decide(dec *decision, data []byte, out []delivery) []delivery {
	from, to := dec.From, dec.To
	rt := n.peers[to]
	dec.Drop = dropUnreachable
	if rt != nil && !n.closed {
		dec.Drop = n.reachable(from, to)
	}
	if dec.Drop == dropNone && n.dropRate > 0 && n.rng.Float64() < n.dropRate {
		dec.Drop = dropRandom
	}
	if dec.Drop != dropNone {
		n.drops[dec.Drop].Add(1)
		return out
	}
	copies := 1
	if n.dupRate > 0 && n.rng.Float64() < n.dupRate {
		copies, dec.Dup = 2, true
		n.duplicated.Add(1)
	}
	var now time.Time
	first := len(out)
	for range copies {
		p := pending{to: rt, data: data}
		if n.maxDelay > 0 {
			d := n.minDelay
			if n.maxDelay > n.minDelay {
				d += time.Duration(n.rng.Int64N(int64(n.maxDelay-n.minDelay) + 1))
			}
			if n.trace != nil {
				dec.Delays = append(dec.Delays, d)
			}
			if d > 0 {
				if now.IsZero() {
					now = time.Now()
				}
				p.due = now.Add(d)
			}
		}
		out = append(out, delivery{pending: p})
	}
	if n.reorderRate == 0 && n.narmed == 0 {
		return out
	}
	key := linkKey{from, to}
	lk := n.links[key]
	if lk != nil && lk.armed {
		lk.armed = false
		n.narmed--
		if lk.held == nil {
			return out // its hold expired
		}
		// Release the held message, after this one.
		h := *lk.held
		lk.held = nil
		for _, d := range out[first:] {
			if d.due.After(h.due) {
				h.due = d.due
			}
		}
		return append(out, delivery{pending: h})
	}
	if n.reorderRate > 0 && n.rng.Float64() < n.reorderRate {
		dec.Reordered = true
		n.reordered.Add(1)
		if lk == nil {
			lk = &link{}
			n.links[key] = lk
		}
		h := out[first].pending
		lk.held, lk.armed = &h, true
		n.narmed++
		if now.IsZero() {
			now = time.Now()
		}
		at := now
		if h.due.After(now) {
			at = h.due
		}
		// In place of the held message, queue a check that delivers it if
		// nothing has released it by then.
		out[first] = delivery{pending: pending{to: rt, due: at.Add(n.hold)}, held: lk.held, link: lk}
	}
	return out
}

// checkHold delivers *h if it is still held on lk.
func (n *Network) checkHold(lk *link, h *pending) {
	n.mu.Lock()
	still := lk.held == h
	if still {
		lk.held = nil
	}
	n.mu.Unlock()
	if still {
		h.to.deliver(h.data)
	}
}

// Transport is one endpoint of a Network. It implements raft.Transport.
//
// The Consumer channel is never closed, not even by Close: a delivery racing
// with Close may still push to it (or be dropped). Stop reading it when done.
type Transport struct {
	net    *Network
	addr   raft.ServerAddress
	ch     chan *raft.Message
	closed atomic.Bool

	mu     sync.Mutex
	queue  queue // delayed messages and hold checks, by due time
	seq    uint64
	wake   chan struct{}
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when run returns
	once   sync.Once
}

var _ raft.Transport = (*Transport)(nil)

// Send encodes m and queues it for target; it never blocks. Faults are
// decided now. A message to an unknown or closed address is dropped and
// Send returns nil, as with a real network. Send returns an error wrapping
// ErrClosed if t is closed, and an encoding error if m cannot be encoded.
func (t *Transport) Send(target raft.ServerAddress, m *raft.Message) error {
	if t.closed.Load() {
		return fmt.Errorf("inmem: send from %s: %w", t.addr, ErrClosed)
	}
	if m == nil {
		return errors.New("inmem: send nil message")
	}
	data, err := raft.EncodeMessage(m)
	if err != nil {
		return err
	}
	var buf [3]delivery // original, duplicate, released held message
	for _, d := range t.net.route(t.addr, target, data, buf[:0]) {
		if d.link == nil && d.due.IsZero() {
			d.to.deliver(d.data)
		} else {
			d.to.enqueue(d)
		}
	}
	return nil
}

// Consumer returns the channel on which messages for t arrive. It is never
// closed.
func (t *Transport) Consumer() <-chan *raft.Message { return t.ch }

// LocalAddr returns t's address.
func (t *Transport) LocalAddr() raft.ServerAddress { return t.addr }

// Close stops t: later Sends fail, messages still on their way to t are
// dropped, and t's address becomes free. Its goroutine has exited when
// Close returns. Close is idempotent and always returns nil.
func (t *Transport) Close() error {
	t.once.Do(func() {
		n := t.net
		n.mu.Lock()
		t.closed.Store(true)
		if n.peers[t.addr] == t {
			delete(n.peers, t.addr)
		}
		for _, lk := range n.links {
			if lk.held != nil && lk.held.to == t {
				lk.held = nil
				n.drops[dropUnreachable].Add(1)
			}
		}
		n.mu.Unlock()

		t.mu.Lock()
		for _, d := range t.queue {
			if d.link == nil {
				n.drops[dropUnreachable].Add(1)
			}
		}
		t.queue = nil
		t.mu.Unlock()
		close(t.done)
		<-t.exited
	})
	return nil
}

// deliver decodes data and offers it to t's Consumer without blocking.
func (t *Transport) deliver(data []byte) {
	n := t.net
	if t.closed.Load() {
		n.drops[dropUnreachable].Add(1)
		return
	}
	m, err := raft.DecodeMessage(data)
	if err != nil {
		n.drops[dropMalformed].Add(1)
		return
	}
	select {
	case t.ch <- m:
		n.delivered.Add(1)
	default:
		n.drops[dropFull].Add(1)
	}
}

// enqueue queues d for t's goroutine.
func (t *Transport) enqueue(d delivery) {
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		if d.link == nil {
			t.net.drops[dropUnreachable].Add(1)
		}
		return
	}
	t.seq++
	it := item{delivery: d, seq: t.seq}
	heap.Push(&t.queue, it)
	first := t.queue[0].seq == it.seq
	t.mu.Unlock()
	if first {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// run delivers queued messages when they are due, until Close.
func (t *Transport) run() {
	defer close(t.exited)
	timer := time.NewTimer(time.Duration(math.MaxInt64))
	defer timer.Stop()
	var ready []item
	for {
		t.mu.Lock()
		now := time.Now()
		ready = ready[:0]
		for len(t.queue) > 0 && !t.queue[0].due.After(now) {
			ready = append(ready, heap.Pop(&t.queue).(item))
		}
		wait := time.Duration(-1)
		if len(t.queue) > 0 {
			wait = t.queue[0].due.Sub(now)
		}
		t.mu.Unlock()
		if len(ready) > 0 {
			for i, it := range ready {
				if it.link != nil {
					t.net.checkHold(it.link, it.held)
				} else {
					t.deliver(it.data)
				}
				ready[i] = item{}
			}
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-t.done:
			return
		case <-t.wake:
		case <-timer.C:
		}
	}
}

// item is a queued delivery; seq keeps equal due times in FIFO order.
type item struct {
	delivery
	seq uint64
}

// queue is a min-heap of items by (due, seq).
type queue []item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = item{}
	*q = old[:len(old)-1]
	return it
}
