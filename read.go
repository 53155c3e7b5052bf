package raft

import "encoding/binary"

// Leadership confirmation: a leader proves it still leads by a round of
// heartbeats that a quorum answers (Raft dissertation §6.4). VerifyLeader
// and ReadIndex are read requests that wait for such a round. Requests
// share rounds: one that arrives while a round is under way waits for the
// next, which starts as soon as the current one ends, so any number of
// waiting requests costs one round trip.
//
// The core owns the requests (requestRead in, ready.reads out), so the
// rules — a new leader answers no read before an entry of its own term
// commits, and a request fails when leadership is lost — are deterministic
// and checked by the simulator like every other rule.
//
// Lease reads (dissertation §6.4.1). A confirmed round started at leader
// tick s proves that a quorum heard from this leader after s. Each of those
// voters, with CheckQuorum on, refuses to vote in a newer term (leader
// stickiness) until electionTicks of its own ticks have passed since; a
// restarted voter refuses for electionTicks after it starts (startHold).
// So no other leader can be elected before electionTicks-1 follower ticks
// after s, in real time. The leader serves lease reads while fewer than
// leaseReadTicks of its own ticks have passed since s, which in real time
// is less than (leaseReadTicks+1) leader ticks. With clocks whose rates
// differ by at most a factor (1 - drift), that is safe when
//
//	leaseReadTicks <= (electionTicks-1)*(1-drift) - 1
//
// (leaseReadTicksFor). Assumptions: every voter runs CheckQuorum (stickiness
// is the voters' rule, not the leader's), clock rates drift by less than
// drift, and the leader's ticks do not fall behind real time. The last is
// not enforced: the driver's Ticker drops ticks while its loop is stalled
// (a long GC pause), which stretches the lease in real time. A leader that has sent MsgTimeoutNow
// (leadership transfer, which bypasses stickiness) serves no more lease
// reads in its term, and a membership change ends the lease until a round
// in the new configuration confirms the leader (a quorum of the new
// configuration need not overlap the old one's). Without CheckQuorum a lease read is a ReadIndex read.
//
// Follower reads: a follower asked for a linearizable read (readAny) sends
// MsgReadIndex to its leader, which answers with MsgReadIndexResp once its
// confirmation round ends; the follower then answers the request with the
// leader's read index, and the caller waits until it has applied it. The
// follower fails the request when its leader changes or no answer comes
// within electionTicks.

// readKind says what a read request asks for.
type readKind uint8

const (
	// readVerify confirms leadership only (VerifyLeader).
	readVerify readKind = iota
	// readIndex asks the leader for a read index (ReadIndex); a follower
	// refuses it.
	readIndex
	// readLease is readIndex answered at once while the leader's lease
	// holds (only with CheckQuorum); otherwise it is readIndex.
	readLease
	// readAny is readIndex on the leader and a follower read elsewhere.
	readAny
)

// readState is the leader's confirmation rounds and the requests waiting on
// them. Invariant: confirmed <= round; a round is under way when
// confirmed < round.
type readState struct {
	round      uint64
	confirmed  uint64
	acks       map[ServerID]bool
	wanted     bool // a request is waiting for a round after the current one
	roundStart int  // leaderTicks when the current round started

	// The lease: a quorum heard from this leader after leaderTicks
	// leaseFrom; valid only when leaseOK.
	leaseOK   bool
	leaseFrom int
	// noLease is set once MsgTimeoutNow was sent in this term.
	noLease bool

	pending []readRequest
}

// readRequest is one read request the leader holds: local (from == "") or
// a follower's MsgReadIndex (from, ctx).
type readRequest struct {
	id    uint64
	kind  readKind
	index uint64 // the commit index when the request started
	round uint64 // the confirming round; 0 until the request has started
	from  ServerID
	ctx   []byte
}

// readResult answers a readRequest: the read index, or errNotLeader when
// leadership was lost first (errReadFailed for a follower read that got no
// answer).
type readResult struct {
	id    uint64
	index uint64
	err   error
}

// requestRead asks for a read of the given kind; the answer comes in
// ready.reads under id. A read waits, before it starts, until the leader
// has committed an entry of its own term: until then its commit index may
// lag what an earlier leader committed.
func (c *core) requestRead(id uint64, kind readKind) error {
	if c.role != roleLeader {
		if kind != readAny || c.role != roleFollower || c.lead == "" {
			return errNotLeader
		}
		c.forward(forwarded{id: id, to: c.lead}, Message{Type: MsgReadIndex})
		return nil
	}
	if kind == readAny {
		kind = readIndex
	}
	c.reads.pending = append(c.reads.pending, readRequest{id: id, kind: kind})
	c.settleReads()
	return nil
}

// leaseHolds reports whether the leader may answer a read without a round
// trip (see the lease notes above).
func (c *core) leaseHolds() bool {
	if !c.cfg.checkQuorum && !c.cfg.bugs.LeaseWithoutCheckQuorum {
		return false
	}
	r := &c.reads
	return c.cfg.leaseReadTicks > 0 && r.leaseOK && !r.noLease && c.leaderTicks-r.leaseFrom < c.cfg.leaseReadTicks
}

// settleReads starts requests that may start and answers those whose round
// is confirmed.
func (c *core) settleReads() {
	if c.role != roleLeader {
		return
	}
	n := 0
	for _, rq := range c.reads.pending {
		if rq.round == 0 && (rq.kind == readVerify || c.committedInTerm() || c.cfg.bugs.ReadBeforeCommitInTerm) {
			rq.index = c.log.committed
			if rq.kind == readLease && c.leaseHolds() {
				c.counts.leaseReads++
				c.answerRead(rq, nil)
				continue
			}
			rq.round = c.requestConfirmation()
		}
		if rq.round != 0 && rq.round <= c.reads.confirmed {
			c.counts.readIndexReads++
			c.answerRead(rq, nil)
			continue
		}
		c.reads.pending[n] = rq
		n++
	}
	clear(c.reads.pending[n:])
	c.reads.pending = c.reads.pending[:n]
}

// answerRead answers a request: locally, or to the follower that asked.
func (c *core) answerRead(rq readRequest, err error) {
	if err != nil {
		rq.index = 0
	}
	if rq.from == "" {
		c.readResults = append(c.readResults, readResult{id: rq.id, index: rq.index, err: err})
		return
	}
	// The follower then waits until it has applied the read index; the
	// round's heartbeats, sent after the index was recorded, told it that
	// index is committed.
	c.send(Message{Type: MsgReadIndexResp, To: rq.from, Index: rq.index, Context: rq.ctx, Reject: err != nil})
}

// handleLeaderReadIndex takes a follower's read request.
func (c *core) handleLeaderReadIndex(m *Message) {
	if _, ok := c.prs[m.From]; !ok || len(m.Context) != 8 {
		return
	}
	c.reads.pending = append(c.reads.pending, readRequest{kind: readIndex, from: m.From, ctx: m.Context})
	c.settleReads()
}

// handleReadIndexRefused answers a MsgReadIndex sent to a server that does
// not lead, so the follower fails its read at once.
func (c *core) handleReadIndexRefused(m *Message) {
	c.send(Message{Type: MsgReadIndexResp, To: m.From, Context: m.Context, Reject: true})
}

// handleFollowerReadIndexResp answers a follower read with the leader's
// read index.
func (c *core) handleFollowerReadIndexResp(m *Message) {
	fr, ok := c.takeForwarded(m, false)
	switch {
	case !ok:
	case m.Reject:
		c.readResults = append(c.readResults, readResult{id: fr.id, err: errReadFailed})
	default:
		c.readResults = append(c.readResults, readResult{id: fr.id, index: m.Index})
	}
}

// heartbeat sends the periodic heartbeat. With lease reads on, each one
// is a confirmation round (or repeats the round under way), so the lease
// is renewed while a quorum answers, without read requests.
func (c *core) heartbeat() {
	switch {
	case c.cfg.leaseReadTicks == 0:
		c.bcastHeartbeat(nil)
	case c.reads.confirmed < c.reads.round:
		c.bcastHeartbeat(binary.BigEndian.AppendUint64(nil, c.reads.round))
	case !c.startConfirmation():
		// A quorum of one confirmed at once; the others still need to
		// hear from their leader.
		c.bcastHeartbeat(nil)
	}
}

// requestConfirmation returns the round whose confirmation proves this
// server led at the time of the call. Only a leader calls it.
func (c *core) requestConfirmation() uint64 {
	if c.reads.confirmed < c.reads.round {
		c.reads.wanted = true
		return c.reads.round + 1
	}
	c.counts.readRounds++
	c.startConfirmation()
	return c.reads.round
}

// startConfirmation starts a round and reports whether it sent
// heartbeats for it (not when this server alone is a quorum).
func (c *core) startConfirmation() bool {
	c.reads.round++
	c.reads.wanted = false
	c.reads.roundStart = c.leaderTicks
	c.reads.acks = map[ServerID]bool{c.id(): true}
	if c.maybeConfirm() {
		return false
	}
	c.bcastHeartbeat(binary.BigEndian.AppendUint64(nil, c.reads.round))
	return true
}

// maybeConfirm confirms the current round once a quorum answered it, and
// starts the next if requests wait for one.
func (c *core) maybeConfirm() bool {
	if jointVoteResult(c.incoming, c.outgoing, c.reads.acks) != voteWon {
		return false
	}
	c.reads.confirmed = c.reads.round
	c.reads.acks = nil
	c.reads.leaseOK, c.reads.leaseFrom = true, c.reads.roundStart
	if c.reads.wanted {
		c.counts.readRounds++
		c.startConfirmation()
	}
	return true
}

// confirmationAck records a heartbeat answer carrying a round number.
func (c *core) confirmationAck(from ServerID, ctx []byte) {
	if len(ctx) != 8 || c.reads.acks == nil {
		return
	}
	if binary.BigEndian.Uint64(ctx) != c.reads.round {
		return
	}
	c.reads.acks[from] = true
	c.maybeConfirm()
}

// resetReads abandons rounds under way when leadership changes and fails
// the requests waiting on them; the lease ends.
func (c *core) resetReads() {
	c.reads.confirmed = c.reads.round
	c.reads.acks = nil
	c.reads.wanted = false
	c.reads.leaseOK, c.reads.noLease = false, false
	for _, rq := range c.reads.pending {
		c.answerRead(rq, errNotLeader)
	}
	c.reads.pending = nil
}

// committedInTerm reports whether the leader has committed an entry of its
// own term. Until it has, its commit index may lag what earlier leaders
// committed, so it must not answer reads (Raft dissertation §6.4, step 1).
func (c *core) committedInTerm() bool {
	t, _ := c.log.term(c.log.committed)
	return c.role == roleLeader && t == c.term
}

// leaseReadTicksFor returns the longest safe lease, in ticks, for an
// election timeout of electionTicks and clocks whose rates differ by at
// most drift (0.1 is 10 %): (electionTicks-1)*(1-drift) - 1, rounded down;
// 0 (no lease reads) when that is not positive.
func leaseReadTicksFor(electionTicks int, drift float64) int {
	return max(int(float64(electionTicks-1)*(1-drift))-1, 0)
}
