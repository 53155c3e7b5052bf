package raft

import "encoding/binary"

// Leadership confirmation: a leader proves it still leads by a round of
// heartbeats that a quorum answers (Raft dissertation §6.4). VerifyLeader
// uses it, and linearizable reads will. Requests share rounds: one that
// arrives while a round is under way waits for the next, which starts as
// soon as the current one ends, so any number of waiting requests costs one
// round trip.

// readState is the leader's confirmation rounds. Invariant: confirmed <=
// round; a round is under way when confirmed < round.
type readState struct {
	round     uint64
	confirmed uint64
	acks      map[ServerID]bool
	wanted    bool // a request is waiting for a round after the current one
}

// requestConfirmation returns the round whose confirmation proves this
// server led at the time of the call.
func (c *core) requestConfirmation() (uint64, error) {
	if c.role != roleLeader {
		return 0, errNotLeader
	}
	if c.reads.confirmed < c.reads.round {
		c.reads.wanted = true
		return c.reads.round + 1, nil
	}
	c.startConfirmation()
	return c.reads.round, nil
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

// resetReads abandons rounds under way when leadership changes; their
// requests fail in the driver.
func (c *core) resetReads() {
	c.reads.confirmed = c.reads.round
	c.reads.acks = nil
	c.reads.wanted = false
}

// committedInTerm reports whether the leader has committed an entry of its
// own term. Until it has, its commit index may lag what earlier leaders
// committed, so it must not answer reads (Raft dissertation §6.4, step 1).
func (c *core) committedInTerm() bool {
	t, _ := c.log.term(c.log.committed)
	return c.role == roleLeader && t == c.term
}
