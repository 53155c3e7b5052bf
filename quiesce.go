package raft

// Quiescence: an idle group on a Host stops ticking, so thousands of idle
// groups cost (close to) nothing. A leader whose group has been idle for
// quiesceTicks ticks — every peer holds its whole log, all of it committed,
// nothing else under way — sends MsgQuiesce with its commit index and stops
// ticking; a follower that holds exactly that log stops too (one that does
// not answers with a rejected MsgHeartbeatResp, which wakes the leader).
//
// A quiet group no longer learns of a dead leader or a lost quorum from its
// own heartbeats: the Host watches for it instead (quiet.go), with one
// message per peer host and heartbeat interval listing its quiet groups,
// and wakes a follower whose leader stopped listing it, or a leader whose
// peer's host stopped vouching for its replica. Anything else wakes a group at once: any
// message other than the quiet handshake's, and any work (a proposal, a
// read, a transfer, a membership change), which shows as a message to send
// or a log to write.
//
// Leases: a quiet leader's ticks stop, so its lease ends when it quiesces
// and it answers no lease read until a round confirms it again. A follower
// woken because its leader went silent acts as one that has not heard from
// a leader for an election timeout: it may vote at once. That is safe for
// leases because the leader it last followed held none since it quiesced.

// wakeReason says why a quiet group wakes.
type wakeReason uint8

const (
	wakeActivity   wakeReason = iota + 1 // a message or local work
	wakeLeaderLost                       // follower: the host stopped hearing its leader list it
	wakePeerLost                         // leader: a peer's host stopped vouching for its replica
)

// tickQuiesce counts a leader's idle ticks and, after enough, quiesces;
// it reports whether it did. It waits for a confirmation round under way
// to finish (without counting that against idleness): an answer to it
// arriving after the leader woke must not confirm a round whose
// followers heard from it before it went quiet.
func (c *core) tickQuiesce() bool {
	if c.cfg.quiesceTicks == 0 {
		return false
	}
	if !c.leaderIdle() {
		c.idleTicks = 0
		return false
	}
	if c.idleTicks++; c.idleTicks < c.cfg.quiesceTicks || c.reads.confirmed < c.reads.round {
		return false
	}
	c.idleTicks = 0
	c.quiesced = true
	c.reads.leaseOK = false
	for _, id := range c.peers {
		c.send(Message{Type: MsgQuiesce, To: id, Commit: c.log.committed})
	}
	return true
}

// leaderIdle reports whether nothing is under way in the leader's group:
// every peer holds the whole log, all committed and durable here, heard
// from lately, with no read, transfer, membership change or disk stall.
func (c *core) leaderIdle() bool {
	last := c.log.lastIndex()
	if c.log.committed != last || c.log.stable != last || len(c.outgoing) > 0 || c.member.change != nil ||
		c.transfer.active || len(c.reads.pending) > 0 || c.disk.stalled {
		return false
	}
	for _, pr := range c.prs {
		if pr.match != last || c.leaderTicks-pr.lastHeard > 2*c.cfg.heartbeatTicks {
			return false
		}
	}
	return true
}

// handleFollowerQuiesce is MsgQuiesce on a follower: a heartbeat, after
// which the follower goes quiet if it holds exactly the leader's log.
func (c *core) handleFollowerQuiesce(m *Message) {
	c.heardHeartbeat(m)
	last := c.log.lastIndex()
	if c.cfg.quiesceTicks > 0 && last == m.Commit && c.log.committed == last && c.log.stable == last &&
		len(c.forwards) == 0 && !c.disk.stalled {
		c.quiesced = true
		return
	}
	// Not in step: tell the leader, whose group wakes at this answer.
	c.send(Message{Type: MsgHeartbeatResp, To: m.From, Reject: true})
}

func (c *core) handleCandidateQuiesce(m *Message) {
	c.becomeFollower(m.Term, m.From)
	c.handleFollowerQuiesce(m)
}

// quietMessage reports whether a quiet server may drop m and stay quiet:
// the late answers to a quiet leader's last heartbeats, and a repeated
// MsgQuiesce. Dropped, not handled: an answer that confirmed a read round
// would renew a lease the quiet leader's stopped clock cannot end.
func (c *core) quietMessage(m *Message) bool {
	if m.Term != c.term {
		return false
	}
	switch c.role {
	case roleLeader:
		return m.Type == MsgHeartbeatResp && !m.Reject
	case roleFollower:
		return m.Type == MsgQuiesce && m.From == c.lead
	}
	return false
}

// stayQuiet wakes a quiet server that has work: anything to send (other
// than its MsgQuiesce), to write, or waiting on a tick. ready calls it, so
// any input that made work wakes the server before its outputs leave.
func (c *core) stayQuiet() {
	if !c.quiesced {
		return
	}
	busy := c.hardStateDirty || c.log.unsent <= c.log.lastIndex() || len(c.msgsAfterAppend) > 0 ||
		len(c.forwards) > 0 || len(c.reads.pending) > 0
	for i := range c.msgs {
		busy = busy || c.msgs[i].Type != MsgQuiesce
	}
	if c.role == roleLeader {
		busy = busy || !c.leaderIdle()
	}
	if busy {
		c.wake(wakeActivity)
	}
}

// wake makes a quiet server tick again. A leader heartbeats at once (so
// its followers wake too) and must hear from a quorum anew within the
// lease timeout (CheckQuorum), as after an election.
func (c *core) wake(why wakeReason) {
	if !c.quiesced {
		return
	}
	c.quiesced, c.idleTicks = false, 0
	switch c.role {
	case roleLeader:
		c.electionElapsed, c.heartbeatElapsed = 0, 0
		for _, pr := range c.prs {
			pr.recentActive = false
		}
		c.heartbeat()
	case roleFollower:
		c.electionElapsed = 0
		if why == wakeLeaderLost {
			// The host has not heard the leader for an election timeout.
			c.electionElapsed = c.cfg.electionTicks
		}
	}
}
