package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Host-wide limits (HostConfig.MaxPendingBytes, MaxInflightBytes,
// MaxSnapshotSends, SnapshotSendRate). Each group's Config bounds what
// that group holds; these bound the sum over a host's groups, which with
// thousands of groups the per-group bounds do not.
//
// The accounting is the driver's: the deterministic core keeps no shared
// state. After each run of a group's event loop the driver reads from the
// core what the group holds (a leader's unapplied bytes, the bytes its
// followers' windows hold) and moves the host's totals by the difference
// from what it last counted for the group. A group's share is thus always
// what its core says, whatever happened in the run (applies, leadership
// lost, entries truncated), and it goes to zero when the group stops: the
// totals cannot leak. Before a run the driver reserves room in the totals
// (for proposals, as it accepts them; for sends, a share handed to the
// core as an input), so that groups running at once on different step
// workers cannot all take the same room.

// ErrHostLimit is wrapped, beside the condition's own error, by errors
// that a host-wide limit caused: a proposal refused with
// ErrProposalQueueFull because the host's HostConfig.MaxPendingBytes is
// reached, not the group's Config.MaxPendingBytes.
var ErrHostLimit = errors.New("raft: host-wide limit reached")

// defaultMaxSnapshotSends is HostConfig.MaxSnapshotSends's default.
const defaultMaxSnapshotSends = 4

// hostLimits is a Host's shared budgets.
type hostLimits struct {
	maxPending, maxInflight uint64
	// workers is how many groups' loops can run at once (StepWorkers):
	// a run reserves at most 1/workers of the send room left.
	workers uint64
	// pending and inflight are the sums of the groups' shares.
	pending, inflight atomic.Uint64

	// sendSlots holds a token per snapshot transfer running.
	sendSlots                  chan struct{}
	sendsRunning, sendsWaiting atomic.Int64
	rate                       *tokenBucket // nil: unlimited
}

func newHostLimits(conf *HostConfig) *hostLimits {
	l := &hostLimits{
		maxPending: conf.MaxPendingBytes, maxInflight: conf.MaxInflightBytes,
		workers:   uint64(max(1, conf.StepWorkers)),
		sendSlots: make(chan struct{}, conf.MaxSnapshotSends),
	}
	if conf.SnapshotSendRate > 0 {
		l.rate = newTokenBucket(conf.SnapshotSendRate)
	}
	return l
}

// groupLimits is one group's part in its host's budgets. Event loop
// only.
type groupLimits struct {
	h *hostLimits
	// pending and inflight are what the host's totals count for this
	// group: its core's measure after the last run, plus what was
	// reserved since.
	pending, inflight uint64
}

// hostRunOnce is a hosted group's loop task: runOnce between the host's
// accounting.
func (r *Raft) hostRunOnce() bool {
	g := r.limits
	g.beforeRun(r.core)
	if !r.runOnce() {
		g.release()
		return false
	}
	g.settle(r.core)
	return true
}

// beforeRun hands the core its room for new entries in flight.
func (g *groupLimits) beforeRun(c *core) {
	h := g.h
	if h.maxInflight == 0 {
		c.inflightRoom = inflightRoom{}
		return
	}
	var room uint64
	// A candidate may win in this run and must then send its first
	// appends; followers send none.
	if c.role == roleLeader || c.role == roleCandidate {
		for {
			cur := h.inflight.Load()
			if cur >= h.maxInflight {
				break
			}
			share := max(1, (h.maxInflight-cur)/h.workers)
			if h.inflight.CompareAndSwap(cur, cur+share) {
				room = share
				break
			}
		}
	}
	g.inflight += room
	c.inflightRoom = inflightRoom{bounded: true, bytes: room}
}

// settle makes the host's totals count what the core holds now; the room
// reserved and not used goes back.
func (g *groupLimits) settle(c *core) {
	var pending uint64
	if c.role == roleLeader {
		pending = c.log.pendingBytes()
	}
	inflight := c.inflightBytes()
	if pending != g.pending {
		g.h.pending.Add(pending - g.pending) // wraps to a subtraction when smaller
		g.pending = pending
	}
	if inflight != g.inflight {
		g.h.inflight.Add(inflight - g.inflight)
		g.inflight = inflight
	}
	c.inflightRoom.bytes = 0
}

// release takes a stopped group out of the host's totals.
func (g *groupLimits) release() {
	g.h.pending.Add(-g.pending)
	g.h.inflight.Add(-g.inflight)
	g.pending, g.inflight = 0, 0
}

// hostAdmit takes from ents (and their futures, live) the longest prefix
// the host's MaxPendingBytes has room for, reserving it, and fails the
// rest with ErrProposalQueueFull. One entry is always admitted when the
// host holds nothing pending, so that no command is refused for its size
// alone (as the group's own limit admits one batch). Event loop only.
func (r *Raft) hostAdmit(ents []Log, live []*future) ([]Log, []*future) {
	if r.limits == nil || r.limits.h.maxPending == 0 || r.core.role != roleLeader {
		return ents, live // a follower forwards them: the leader's host counts them
	}
	n, err := r.limits.admit(ents)
	if n == len(ents) {
		return ents, live
	}
	r.metrics.proposalRefused(err, len(live)-n)
	for _, f := range live[n:] {
		f.respond(0, nil, err)
	}
	return ents[:n], live[:n]
}

// hostRefusesForwarded applies hostAdmit to a proposal a follower
// forwarded to this leader: all of it or none, as the core's limit does.
// Event loop only.
func (r *Raft) hostRefusesForwarded(m *Message) bool {
	if r.limits == nil || r.limits.h.maxPending == 0 || len(m.Entries) == 0 || len(m.Context) != 8 {
		return false
	}
	if _, ok := r.core.prs[m.From]; !ok || binary.BigEndian.Uint64(m.Context) <= r.core.proposeSeen[m.From] {
		// Not one the core would append. A duplicate above all must get
		// the core's answer (outcome unknown: the first copy may be in
		// the log), never "refused, not appended".
		return false
	}
	if n, _ := r.limits.admit(m.Entries); n < len(m.Entries) {
		r.limits.unreserve(m.Entries[:n])
		r.core.refuseProposal(m, refusedQueueFull)
		return true
	}
	return false
}

// admit reserves room for the longest prefix of ents that fits and
// returns its length, and the error for the rest.
func (g *groupLimits) admit(ents []Log) (int, error) {
	h := g.h
	for {
		cur := h.pending.Load()
		var take uint64
		n := 0
		for n < len(ents) {
			size := entrySize(&ents[n])
			if cur+take+size > h.maxPending && (cur > 0 || n > 0) {
				break
			}
			take += size
			n++
		}
		if n > 0 && !h.pending.CompareAndSwap(cur, cur+take) {
			continue
		}
		g.pending += take
		if n == len(ents) {
			return n, nil
		}
		var refused uint64
		for i := n; i < len(ents); i++ {
			refused += entrySize(&ents[i])
		}
		return n, fmt.Errorf("%w: %w: the host's groups hold %d bytes of proposals not yet applied; %d more would pass HostConfig.MaxPendingBytes %d",
			ErrProposalQueueFull, ErrHostLimit, cur+take, refused, h.maxPending)
	}
}

// unreserve gives back room admit reserved for ents.
func (g *groupLimits) unreserve(ents []Log) {
	var take uint64
	for i := range ents {
		take += entrySize(&ents[i])
	}
	g.pending -= take
	g.h.pending.Add(-take)
}

// acquireSendSlot waits for a turn to send a snapshot (HostConfig.
// MaxSnapshotSends) on the sender's goroutine, so that neither the event
// loop nor a pool worker waits. It returns the function that gives the
// turn back, or false when stop or the server's shutdown came first.
func (r *Raft) acquireSendSlot(stop <-chan struct{}) (func(), bool) {
	if r.limits == nil {
		return func() {}, true
	}
	h := r.limits.h
	h.sendsWaiting.Add(1)
	select {
	case h.sendSlots <- struct{}{}:
	case <-stop:
		h.sendsWaiting.Add(-1)
		return nil, false
	case <-r.shutdownCh:
		h.sendsWaiting.Add(-1)
		return nil, false
	}
	h.sendsWaiting.Add(-1)
	h.sendsRunning.Add(1)
	return func() {
		h.sendsRunning.Add(-1)
		<-h.sendSlots
	}, true
}

// waitSendRate waits until the host's SnapshotSendRate lets n more bytes
// go. It reports whether they may (false: stop or shutdown came first)
// and whether it waited at all.
func (r *Raft) waitSendRate(n int, stop <-chan struct{}) (ok, waited bool) {
	if r.limits == nil || r.limits.h.rate == nil {
		return true, false
	}
	b := r.limits.h.rate
	d := b.take(n)
	if d <= 0 {
		return true, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, true
	case <-stop:
	case <-r.shutdownCh:
	}
	b.refund(n) // not sent: another transfer may use them
	return false, true
}

// tokenBucket is a byte rate shared by a host's snapshot transfers.
// Taking may drive the tokens below zero: the taker waits until they are
// paid back, so a chunk larger than the burst still goes, at the rate.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

// newTokenBucket allows perSecond bytes a second, with a burst of a tenth
// of a second's worth (what an idle bucket lets go at once).
func newTokenBucket(perSecond uint64) *tokenBucket {
	burst := max(1, float64(perSecond)/10)
	return &tokenBucket{rate: float64(perSecond), burst: burst, tokens: burst, last: time.Now()}
}

// take spends n tokens and returns how long to wait before using them.
func (b *tokenBucket) take(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

func (b *tokenBucket) refund(n int) {
	b.mu.Lock()
	b.tokens = min(b.burst, b.tokens+float64(n))
	b.mu.Unlock()
}

// limitStats fills in the host-wide limits' current values.
func (l *hostLimits) limitStats(s *HostStats) {
	s.PendingBytes = l.pending.Load()
	s.InflightBytes = l.inflight.Load()
	s.SnapshotSendsRunning = int(l.sendsRunning.Load())
	s.SnapshotSendsWaiting = int(l.sendsWaiting.Load())
}
