package raft

import (
	"fmt"
	"slices"
)

// Leadership transfer (Raft dissertation §3.10): the leader stops taking
// proposals, brings the target's log up to date, and sends it MsgTimeoutNow;
// the target campaigns at once, and its votes carry the Transfer flag so that
// leader stickiness does not refuse them. The transfer succeeds when this
// server learns that the target leads a later term; it fails when another
// server does, and times out after an election timeout, after which a leader
// that is still leading resumes taking proposals.

// leadTransfer is the state of this server's leadership transfer.
type leadTransfer struct {
	active  bool
	target  ServerID
	term    uint64 // the leader's term when it started
	elapsed int    // ticks since it started
	sent    bool   // MsgTimeoutNow was sent
	seq     uint64 // transfers started so far
	doneSeq uint64 // the seq of the last transfer finished
	err     error  // its result
}

// transferLeadership starts a transfer to the voter to, or, when to is
// empty, to the most up-to-date voter. It returns the transfer's sequence
// number, with which transferStatus reports the result, and the target.
func (c *core) transferLeadership(to ServerID) (uint64, ServerID, error) {
	switch {
	case c.role != roleLeader:
		return 0, "", errNotLeader
	case c.transfer.active:
		return 0, "", fmt.Errorf("%w: already transferring to %s", ErrLeadershipTransferInProgress, c.transfer.target)
	}
	if to == "" {
		if to = c.mostUpToDateVoter(); to == "" {
			return 0, "", fmt.Errorf("%w: the configuration has no other voter", ErrNoTransferTarget)
		}
	}
	switch {
	case to == c.id():
		return 0, "", fmt.Errorf("%w: %s is already the leader", ErrNoTransferTarget, to)
	case !slices.Contains(c.incoming, to):
		return 0, "", fmt.Errorf("%w: %s is not a voter of the latest configuration", ErrNoTransferTarget, to)
	}
	t := &c.transfer
	t.seq++
	t.active, t.target, t.term, t.elapsed, t.sent = true, to, c.term, 0, false
	c.fillWindow(to)
	return t.seq, to, nil
}

// transferBlocks returns the error for a proposal while a transfer is under
// way on this leader.
func (c *core) transferBlocks() error {
	if c.transfer.active && c.role == roleLeader {
		return fmt.Errorf("%w: to %s", ErrLeadershipTransferInProgress, c.transfer.target)
	}
	return nil
}

// checkTransfer moves a transfer on after the last inputs: the leader sends
// MsgTimeoutNow once the target has its whole log, and a server that learns
// who leads a later term ends the transfer.
func (c *core) checkTransfer() {
	t := &c.transfer
	if !t.active {
		return
	}
	switch {
	case c.term > t.term && c.lead == t.target:
		c.finishTransfer(nil)
	case c.term > t.term && c.lead != "":
		c.finishTransfer(fmt.Errorf("%w: %s leads term %d, not %s", ErrLeadershipTransferFailed, c.lead, c.term, t.target))
	case c.role == roleLeader && c.term == t.term && !t.sent:
		if pr, ok := c.prs[t.target]; ok && pr.match >= c.log.lastIndex() {
			c.send(Message{Type: MsgTimeoutNow, To: t.target})
			t.sent = true
			c.reads.noLease = true // TimeoutNow bypasses stickiness: no more leases this term
		}
	}
}

// tickTransfer ends a transfer that has not succeeded within an election
// timeout; a server still leading then resumes.
func (c *core) tickTransfer() {
	t := &c.transfer
	if !t.active {
		return
	}
	t.elapsed++
	if t.elapsed >= c.cfg.electionTicks {
		c.finishTransfer(fmt.Errorf("%w: %s did not take over within an election timeout", ErrLeadershipTransferTimeout, t.target))
	}
}

func (c *core) finishTransfer(err error) {
	t := &c.transfer
	t.active = false
	t.doneSeq, t.err = t.seq, err
}

// transferStatus reports whether transfer seq is over and its result.
func (c *core) transferStatus(seq uint64) (done bool, err error) {
	if c.transfer.doneSeq >= seq {
		return true, c.transfer.err
	}
	return false, nil
}
