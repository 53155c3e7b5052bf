package raft

import (
	"encoding/binary"
	"errors"
	"math"
)

// Forwarding: a follower hands requests that need the leader to it over
// the transport — a read index for a follower read (read.go) or proposals
// (Apply and Barrier on a follower) — and answers the request when the
// leader replies. Both carry the request's ID in Context, echoed back.
//
// A forwarded proposal: the follower sends MsgPropose with the entries'
// types and data; the leader appends them as if proposed locally and
// answers MsgProposeResp with the index of the first and its term. The
// follower then waits, like a leader, until it applies that index: the
// entry applied there is the proposal exactly when its term matches (Log
// Matching), and the response is this server's own FSM's. Because the
// answer and the leader's later commit travel separately and may be
// reordered, a follower applies no entry above the commit index it had
// when it sent a proposal until that proposal is answered: the proposal's
// index is above it, so its future is registered before it can apply.
//
// The network may duplicate a MsgPropose; appending it twice would apply
// the command twice. Request IDs from one server only grow (the driver
// starts them at its boot time in nanoseconds, so a restart does not reuse
// them), and a leader appends a follower's proposals only under an ID
// above every one it took from that follower in its term; MsgPropose from
// an earlier term never reaches the handler. A reordered, older request is
// refused, which the follower reports as an unknown outcome.
//
// A request fails when the follower stops following the leader it asked,
// or no answer comes within electionTicks; a failed proposal's outcome is
// unknown (the leader may have appended it).

// forwarded is a request a follower sent its leader and waits on.
type forwarded struct {
	id      uint64
	to      ServerID
	elapsed int
	propose bool
	// commit is the commit index when a proposal was sent; nothing above
	// it is applied until the proposal is answered (see above).
	commit uint64
}

// proposeResult answers a forwarded proposal: the leader's index of its
// first entry and its term, or why it failed — errNotLeader (refused: the
// receiver did not lead), errForwardUnknown (no answer: outcome unknown),
// or the leader's refusal (a transfer or restore in progress).
type proposeResult struct {
	id    uint64
	index uint64
	term  uint64
	err   error
}

// Why a MsgProposeResp refuses, in its RejectHint.
const (
	refusedNotLeader uint64 = iota
	refusedTransfer
	refusedRestore
	refusedDuplicate
	refusedQueueFull
)

// forward sends m to the leader for request f, with f's ID as context.
func (c *core) forward(f forwarded, m Message) {
	c.forwards = append(c.forwards, f)
	m.To = f.to
	m.Context = binary.BigEndian.AppendUint64(nil, f.id)
	c.send(m)
}

// forwardProposals hands ents (types and data only) to the leader; the
// answer comes in ready.proposed under id. It fails with errNotLeader on a
// server that is not a follower of a known leader.
func (c *core) forwardProposals(id uint64, ents []Log) error {
	if c.role != roleFollower || c.lead == "" {
		return errNotLeader
	}
	out := make([]Log, len(ents))
	for i := range ents {
		out[i] = Log{Type: ents[i].Type, Data: ents[i].Data}
	}
	c.forward(forwarded{id: id, to: c.lead, propose: true, commit: c.log.committed}, Message{Type: MsgPropose, Entries: out})
	return nil
}

// takeForwarded removes and returns the request m answers, if this server
// still waits on it.
func (c *core) takeForwarded(m *Message, propose bool) (forwarded, bool) {
	if len(m.Context) != 8 {
		return forwarded{}, false
	}
	id := binary.BigEndian.Uint64(m.Context)
	for i, f := range c.forwards {
		if f.id == id && f.to == m.From && f.propose == propose {
			c.forwards = append(c.forwards[:i], c.forwards[i+1:]...)
			return f, true
		}
	}
	return forwarded{}, false
}

// tickForwarded fails requests that waited electionTicks for an answer.
func (c *core) tickForwarded() {
	n := 0
	for _, f := range c.forwards {
		f.elapsed++
		if f.elapsed >= c.cfg.electionTicks {
			c.failForward(f, errForwardUnknown)
			continue
		}
		c.forwards[n] = f
		n++
	}
	c.forwards = c.forwards[:n]
}

// failForwarded fails every request waiting for an answer: this server
// stopped following the leader it asked.
func (c *core) failForwarded() {
	for _, f := range c.forwards {
		c.failForward(f, errForwardUnknown)
	}
	c.forwards = nil
}

func (c *core) failForward(f forwarded, err error) {
	if f.propose {
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: err})
	} else {
		c.readResults = append(c.readResults, readResult{id: f.id, err: errReadFailed})
	}
}

// applyLimit is the highest index this server may hand to the applier
// while forwarded proposals are unanswered (see above).
func (c *core) applyLimit() uint64 {
	limit := uint64(math.MaxUint64)
	for _, f := range c.forwards {
		if f.propose && !c.cfg.bugs.ApplyBeforeForwardAnswer {
			limit = min(limit, f.commit)
		}
	}
	return limit
}

// handleLeaderPropose appends a follower's proposals and answers with
// where they went.
func (c *core) handleLeaderPropose(m *Message) {
	if _, ok := c.prs[m.From]; !ok || len(m.Entries) == 0 || len(m.Context) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(m.Context)
	if id <= c.proposeSeen[m.From] && !c.cfg.bugs.ForwardDuplicates {
		c.refuseProposal(m, refusedDuplicate)
		return
	}
	c.proposeSeen[m.From] = id
	ents := make([]Log, len(m.Entries))
	for i := range m.Entries {
		if m.Entries[i].Type == LogConfiguration {
			// Membership changes go through changeConfig, never as data.
			c.violation("%s forwarded a configuration entry", m.From)
			return
		}
		ents[i] = Log{Type: m.Entries[i].Type, Data: m.Entries[i].Data}
	}
	resp := Message{Type: MsgProposeResp, To: m.From, Context: m.Context}
	first, err := c.propose(ents)
	switch {
	case errors.Is(err, ErrProposalQueueFull):
		resp.Reject, resp.RejectHint = true, refusedQueueFull
	case err != nil:
		// Otherwise propose fails on a leader only while it transfers
		// leadership.
		resp.Reject, resp.RejectHint = true, refusedTransfer
	default:
		resp.Index, resp.LogTerm = first, c.term
		c.forwardedTo = first + uint64(len(ents)) - 1
		c.counts.forwardedIn += uint64(len(ents))
	}
	c.send(resp)
}

// refuseProposal answers a MsgPropose without appending it: this server
// does not lead (refusedNotLeader), or the driver refuses proposals for
// now (refusedRestore).
func (c *core) refuseProposal(m *Message, why uint64) {
	c.send(Message{Type: MsgProposeResp, To: m.From, Context: m.Context, Reject: true, RejectHint: why})
}

func (c *core) handleProposeRefused(m *Message) { c.refuseProposal(m, refusedNotLeader) }

// handleFollowerProposeResp answers a forwarded proposal.
func (c *core) handleFollowerProposeResp(m *Message) {
	f, ok := c.takeForwarded(m, true)
	switch {
	case !ok:
	case !m.Reject && (m.Index == 0 || m.LogTerm == 0):
		c.violation("%s answered a proposal with index %d term %d", m.From, m.Index, m.LogTerm)
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: errForwardUnknown})
	case !m.Reject:
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, index: m.Index, term: m.LogTerm})
	case m.RejectHint == refusedTransfer:
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: ErrLeadershipTransferInProgress})
	case m.RejectHint == refusedDuplicate:
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: errForwardUnknown})
	case m.RejectHint == refusedRestore:
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: ErrRestoreInProgress})
	case m.RejectHint == refusedQueueFull:
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: ErrProposalQueueFull})
	default:
		c.proposeResults = append(c.proposeResults, proposeResult{id: f.id, err: errNotLeader})
	}
}
