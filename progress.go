package raft

// progressState is how the leader replicates to one follower.
type progressState uint8

const (
	// stateProbe: the leader does not know where the follower's log matches
	// its own; it sends one append at a time and waits for the answer.
	stateProbe progressState = iota
	// stateReplicate: the logs match up to match; the leader streams
	// appends, up to the in-flight window.
	stateReplicate
	// stateSnapshot: the entries the follower needs are compacted away; a
	// snapshot transfer is under way and no appends are sent.
	stateSnapshot
)

// progress is the leader's view of one follower (Raft paper Figure 2:
// nextIndex and matchIndex, plus flow control).
//
// Invariant: match < next.
type progress struct {
	match, next uint64
	state       progressState
	// probeSent: in stateProbe, an append is in flight; wait for its answer
	// or the next heartbeat response before sending another.
	probeSent bool
	// recentActive: the follower answered since the last CheckQuorum round.
	recentActive bool
	// lastHeard is the leader's leaderTicks when the follower last
	// answered (or when this leader took over): for quorumMargin.
	lastHeard int
	// stallTicks counts ticks since match last advanced while entries were
	// outstanding; a stalled stream (lost appends) falls back to probing.
	stallTicks int
	inflight   inflights
	// pendingSnapshot is the index of the snapshot being sent, in
	// stateSnapshot.
	pendingSnapshot uint64
	// commitSent is the highest commit index sent to the follower.
	commitSent uint64
	// loading is the first index of a read of evicted entries under way
	// for this follower (logcache.go), or 0.
	loading uint64
	// room is the leader's share of its Host's MaxInflightBytes, shared by
	// all its progresses; nil when no host bounds them.
	room *inflightRoom
}

func newProgress(next uint64, maxMsgs int, maxBytes uint64) *progress {
	return &progress{next: next, inflight: inflights{maxMsgs: maxMsgs, maxBytes: maxBytes}}
}

func (p *progress) becomeProbe() {
	p.state = stateProbe
	p.next = p.match + 1
	p.probeSent = false
	p.stallTicks = 0
	p.inflight.reset()
}

// becomeSnapshot starts sending the snapshot at index.
func (p *progress) becomeSnapshot(index uint64) {
	p.state = stateSnapshot
	p.pendingSnapshot = index
	p.probeSent = false
	p.stallTicks = 0
	p.inflight.reset()
}

func (p *progress) becomeReplicate() {
	p.state = stateReplicate
	p.next = p.match + 1
	p.stallTicks = 0
	p.inflight.reset()
}

// paused reports whether the leader must not send this follower another
// append now.
func (p *progress) paused() bool {
	if p.loading != 0 {
		return true
	}
	switch p.state {
	case stateProbe:
		return p.probeSent || p.room.exhausted()
	case stateSnapshot:
		return true
	}
	return p.inflight.full() || p.room.exhausted()
}

// sent records an append of entries up to last, of the given size.
func (p *progress) sent(last uint64, bytes uint64, entries int) {
	if p.state == stateProbe {
		p.probeSent = true
		p.room.spend(bytes)
		return
	}
	if entries > 0 {
		p.inflight.add(last, bytes)
		p.room.spend(bytes)
		p.next = last + 1
	}
}

// inflightRoom is how many more bytes of entries a leader on a Host may
// send before the driver looks at the host's total again: an input the
// driver sets before each run of the event loop (host_limits.go), so that
// the decision to pause stays the core's and deterministic given its
// inputs. Probes spend it too, though the window does not count them
// afterwards: a follower that falls back to probing while the host is at
// its bound must not stream entries around it. Heartbeats, votes and
// snapshots do not spend it. It never deadlocks: the bytes that hold the
// host at its bound are in followers' windows, which acknowledgements,
// a fallback to probing or a lost leadership empty.
type inflightRoom struct {
	bounded bool   // false: no host-wide bound
	bytes   uint64 // what may still be sent
}

func (r *inflightRoom) exhausted() bool { return r != nil && r.bounded && r.bytes == 0 }

// spend takes bytes from the room; an append larger than what is left is
// sent whole (entries are never split) and empties it.
func (r *inflightRoom) spend(bytes uint64) {
	if r != nil {
		r.bytes -= min(r.bytes, bytes)
	}
}

// inflightBytes is the entry bytes this leader has in flight to all its
// followers, as their windows count them; 0 on any other role.
func (c *core) inflightBytes() uint64 {
	if c.role != roleLeader {
		return 0
	}
	var n uint64
	for _, id := range c.peers {
		if pr := c.prs[id]; pr != nil {
			n += pr.inflight.bytes
		}
	}
	return n
}

// acked records that the follower holds the leader's log up to index. It
// reports whether match advanced.
func (p *progress) acked(index uint64) bool {
	if index <= p.match {
		return false
	}
	p.match = index
	p.next = max(p.next, index+1)
	p.stallTicks = 0
	p.probeSent = false
	p.inflight.freeTo(index)
	return true
}

// rejected handles a rejected append of prevLogIndex rejectedIndex, moving
// next back to hint+1 (the last index at which the follower may match, as
// refined by the leader). It reports false for a stale rejection, which must
// be ignored: an answer to an append sent before next last moved.
func (p *progress) rejected(rejectedIndex, hint uint64) bool {
	if p.state == stateReplicate {
		if rejectedIndex <= p.match {
			return false
		}
		next := max(p.match+1, min(rejectedIndex, hint+1))
		p.becomeProbe()
		p.next = next
		return true
	}
	if p.state == stateSnapshot || p.next-1 != rejectedIndex {
		return false
	}
	p.next = max(p.match+1, min(rejectedIndex, hint+1))
	p.probeSent = false
	return true
}

// inflights is the pipelining window: appends sent and not yet acknowledged,
// bounded in count and bytes. It is a FIFO of (last index, size).
type inflights struct {
	maxMsgs  int
	maxBytes uint64
	buf      []inflight
	start    int // ring buffer head
	count    int
	bytes    uint64
}

type inflight struct {
	index uint64
	bytes uint64
}

func (in *inflights) full() bool {
	return in.count >= in.maxMsgs || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) add(index, bytes uint64) {
	if in.buf == nil {
		in.buf = make([]inflight, in.maxMsgs)
	}
	in.buf[(in.start+in.count)%len(in.buf)] = inflight{index, bytes}
	in.count++
	in.bytes += bytes
}

// freeTo drops every in-flight append whose entries are all at or below index.
func (in *inflights) freeTo(index uint64) {
	for in.count > 0 {
		f := in.buf[in.start]
		if f.index > index {
			return
		}
		in.start = (in.start + 1) % len(in.buf)
		in.count--
		in.bytes -= f.bytes
	}
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}
