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

// readState is the leader's confirmation rounds and the requests waiting on
// them. Invariant: confirmed <= round; a round is under way when
// confirmed < round.
type readState struct {
	round     uint64
	confirmed uint64
	acks      map[ServerID]bool
	wanted    bool // a request is waiting for a round after the current one

	pending []readRequest
}

// readRequest is a VerifyLeader (read false) or a ReadIndex (read true).
type readRequest struct {
	id    uint64
	read  bool
	index uint64 // the commit index when the request started
	round uint64 // the confirming round; 0 until the request has started
}

// readResult answers a readRequest: the read index, or errNotLeader when
// leadership was lost first.
type readResult struct {
	id    uint64
	index uint64
	err   error
}

// requestRead asks for a leadership confirmation; the answer comes in
// ready.reads under id. A read waits, before it starts, until the leader
// has committed an entry of its own term: until then its commit index may
// lag what an earlier leader committed.
func (c *core) requestRead(id uint64, read bool) error {
	if c.role != roleLeader {
		return errNotLeader
	}
	c.reads.pending = append(c.reads.pending, readRequest{id: id, read: read})
	c.settleReads()
	return nil
}

// settleReads starts requests that may start and answers those whose round
// is confirmed.
func (c *core) settleReads() {
	if c.role != roleLeader {
		return
	}
	n := 0
	for _, rq := range c.reads.pending {
		if rq.round == 0 && (!rq.read || c.committedInTerm() || c.cfg.bugs.ReadBeforeCommitInTerm) {
			rq.index = c.log.committed
			rq.round = c.requestConfirmation()
		}
		if rq.round != 0 && rq.round <= c.reads.confirmed {
			c.readResults = append(c.readResults, readResult{id: rq.id, index: rq.index})
			continue
		}
		c.reads.pending[n] = rq
		n++
	}
	clear(c.reads.pending[n:])
	c.reads.pending = c.reads.pending[:n]
}

// requestConfirmation returns the round whose confirmation proves this
// server led at the time of the call. Only a leader calls it.
func (c *core) requestConfirmation() uint64 {
	if c.reads.confirmed < c.reads.round {
		c.reads.wanted = true
		return c.reads.round + 1
	}
	c.startConfirmation()
	return c.reads.round
}

func (c *core) startConfirmation() {
	c.reads.round++
	c.reads.wanted = false
	c.reads.acks = map[ServerID]bool{c.id(): true}
	if c.maybeConfirm() {
		return
	}
	c.bcastHeartbeat(binary.BigEndian.AppendUint64(nil, c.reads.round))
}

// maybeConfirm confirms the current round once a quorum answered it, and
// starts the next if requests wait for one.
func (c *core) maybeConfirm() bool {
	if jointVoteResult(c.incoming, c.outgoing, c.reads.acks) != voteWon {
		return false
	}
	c.reads.confirmed = c.reads.round
	c.reads.acks = nil
	if c.reads.wanted {
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
// the requests waiting on them.
func (c *core) resetReads() {
	c.reads.confirmed = c.reads.round
	c.reads.acks = nil
	c.reads.wanted = false
	for _, rq := range c.reads.pending {
		c.readResults = append(c.readResults, readResult{id: rq.id, err: errNotLeader})
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
