package raft

// Replication: AppendEntries with the consistency check, conflict-hint
// backoff, pipelining, heartbeats and the commit rule (Raft paper §5.3,
// §5.4.2).

// sendAppend sends a follower the next append it needs, if its flow
// control allows. A follower in replicate state gets no empty appends: the
// commit index reaches it with the next entries or heartbeat, which keeps a
// commit from costing a message and an acknowledgement per follower. It
// reports whether anything was sent.
func (c *core) sendAppend(to ServerID) bool {
	pr := c.prs[to]
	if pr.paused() {
		return false
	}
	prevIndex := pr.next - 1
	prevTerm, ok := c.log.term(prevIndex)
	if !ok {
		// The entry is compacted away; the follower needs a snapshot.
		return c.maybeSendSnapshot(to)
	}
	if pr.next <= c.log.base {
		// Evicted from memory: read from the LogStore first.
		c.requestLoad(to)
		return false
	}
	ents := c.log.slice(pr.next, c.log.lastIndex()+1, c.cfg.maxAppendEntries, c.cfg.maxAppendBytes)
	if len(ents) == 0 && pr.state == stateReplicate {
		return false
	}
	c.sendEntries(to, prevIndex, prevTerm, ents)
	return true
}

// sendEntries sends follower to an append of ents after (prevIndex,
// prevTerm).
func (c *core) sendEntries(to ServerID, prevIndex, prevTerm uint64, ents []Log) {
	pr := c.prs[to]
	var bytes uint64
	for i := range ents {
		bytes += uint64(len(ents[i].Data))
	}
	c.send(Message{
		Type: MsgAppend, To: to,
		Index: prevIndex, LogTerm: prevTerm,
		Entries: ents, Commit: c.log.committed,
	})
	pr.commitSent = max(pr.commitSent, c.log.committed)
	pr.sent(prevIndex+uint64(len(ents)), bytes, len(ents))
}

// fillWindow sends a follower appends until it is caught up or its window
// is full (in probe state, the window is one append).
func (c *core) fillWindow(to ServerID) {
	for c.sendAppend(to) && c.prs[to].state == stateReplicate {
	}
}

// bcastAppend sends every peer what it lacks.
func (c *core) bcastAppend() {
	for _, id := range c.peers {
		c.fillWindow(id)
	}
}

// bcastHeartbeat tells every peer the leader is alive, and its commit index
// as far as that peer is known to hold the log.
func (c *core) bcastHeartbeat(ctx []byte) {
	for _, id := range c.peers {
		c.sendHeartbeat(id, ctx)
	}
}

func (c *core) sendHeartbeat(to ServerID, ctx []byte) {
	pr := c.prs[to]
	commit := min(pr.match, c.log.committed)
	c.send(Message{Type: MsgHeartbeat, To: to, Commit: commit, Context: ctx})
	pr.commitSent = max(pr.commitSent, commit)
}

// announceCommit tells a follower that has every entry, and so gets no
// append soon, that the commit index moved, so that it applies without
// waiting for the next heartbeat: a forwarded proposal waits on the
// follower's apply. Only while a forwarded proposal may be among the
// entries committed (forward.go): a leader's own writes do not pay for it.
// (A follower read needs nothing: the confirmation round's heartbeats
// carry the commit index.)
func (c *core) announceCommit(to ServerID) {
	pr := c.prs[to]
	if pr != nil && pr.state == stateReplicate && pr.next > c.log.lastIndex() && min(pr.match, c.log.committed) > pr.commitSent {
		c.sendHeartbeat(to, nil)
	}
}

// matchOf returns how far server id's log is known to match the leader's.
// The leader counts only what it has made durable itself.
func (c *core) matchOf(id ServerID) uint64 {
	if id == c.id() {
		if c.cfg.bugs.CountUndurable {
			return c.log.lastIndex()
		}
		return c.log.stable
	}
	if pr, ok := c.prs[id]; ok {
		return pr.match
	}
	return 0
}

// maybeCommit advances the commit index to the highest entry stored on a
// quorum, but only if that entry is of the leader's current term: entries
// of earlier terms commit only beneath one of the current term (Raft paper
// §5.4.2, Figure 8).
func (c *core) maybeCommit() bool {
	mci := jointCommitIndex(c.incoming, c.outgoing, c.matchOf)
	if mci <= c.log.committed || mci > c.log.lastIndex() {
		return false
	}
	if t, _ := c.log.term(mci); t != c.term && !c.cfg.bugs.CommitOldTerm {
		return false
	}
	forwarded := c.log.committed < c.forwardedTo // a forwarded proposal may be among the newly committed
	c.log.committed = mci
	c.confs.compact(mci)
	if forwarded {
		for _, id := range c.peers {
			c.announceCommit(id)
		}
	}
	return true
}

func (c *core) handleLeaderAppendResp(m *Message) {
	pr, ok := c.prs[m.From]
	if !ok {
		return
	}
	pr.recentActive, pr.lastHeard = true, c.leaderTicks
	if m.Reject {
		hint := m.RejectHint
		if m.LogTerm > 0 {
			// Skip every leader entry whose term is above the follower's
			// hint term: they cannot match.
			hint, _ = c.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.rejected(m.Index, hint) {
			c.sendAppend(m.From)
		}
		return
	}
	if m.Index > c.log.lastIndex() {
		c.violation("%s acknowledged index %d beyond the leader's last %d", m.From, m.Index, c.log.lastIndex())
		return
	}
	if !pr.acked(m.Index) {
		return
	}
	if pr.state != stateReplicate {
		pr.becomeReplicate()
	}
	c.maybeCommit()
	c.fillWindow(m.From)
	if pr.commitSent < c.forwardedTo {
		// Its acknowledgement may come after the commit it missed.
		c.announceCommit(m.From)
	}
}

func (c *core) handleLeaderHeartbeatResp(m *Message) {
	pr, ok := c.prs[m.From]
	if !ok {
		return
	}
	pr.recentActive, pr.lastHeard = true, c.leaderTicks
	pr.probeSent = false
	c.confirmationAck(m.From, m.Context)
	if pr.match >= c.log.lastIndex() {
		return
	}
	// The follower is alive but behind. If its stream made no progress for
	// two heartbeats, appends were lost: start again from what it holds.
	if pr.state == stateReplicate && pr.stallTicks >= 2*c.cfg.heartbeatTicks {
		pr.becomeProbe()
	}
	c.fillWindow(m.From)
}

// handleFollowerAppend is AppendEntries on the receiver (Raft paper Figure
// 2): check that the log holds (prevLogIndex, prevLogTerm), drop a
// conflicting suffix, append, and learn the commit index. The success
// answer waits until the entries are durable.
func (c *core) handleFollowerAppend(m *Message) {
	c.electionElapsed = 0
	c.lead = m.From
	if m.Index < c.log.committed && !c.cfg.bugs.TruncateCommitted {
		// Everything up to the commit index already matches the leader;
		// entries at or below it are never rewritten.
		c.sendAfterAppend(Message{Type: MsgAppendResp, To: m.From, Index: c.log.committed})
		return
	}
	if !c.log.matchTerm(m.Index, m.LogTerm) {
		hintIndex, hintTerm := c.log.findConflictByTerm(m.Index, m.LogTerm)
		c.send(Message{
			Type: MsgAppendResp, To: m.From, Reject: true,
			Index: m.Index, RejectHint: hintIndex, LogTerm: hintTerm,
		})
		return
	}
	lastNew := m.Index + uint64(len(m.Entries))
	// A conflict lies above m.Index, which is at or above the commit index
	// (checked above): committed entries are never truncated.
	ci := c.log.findConflict(m.Entries)
	if ci > c.log.lastIndex() && c.applyBacklogFull() {
		// Only new entries, and this server's FSM lags: hold them back
		// (acknowledging what it has) until its applies catch up; the
		// leader sends them again.
		lastNew, ci = c.log.lastIndex(), 0
	}
	if ci != 0 {
		c.appendLog(m.Entries[ci-m.Index-1:])
	} else if c.cfg.bugs.TruncateCommitted && len(m.Entries) > 0 {
		c.appendLog(m.Entries) // the naive "replace everything from here on"
	}
	if commit := min(m.Commit, lastNew); commit > c.log.committed {
		c.log.committed = commit
		c.confs.compact(commit)
	}
	c.sendAfterAppend(Message{Type: MsgAppendResp, To: m.From, Index: lastNew})
}

func (c *core) handleFollowerHeartbeat(m *Message) {
	c.heardHeartbeat(m)
	c.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context})
}

// heardHeartbeat takes the leader's word that it leads, and its commit
// index (MsgHeartbeat, MsgQuiesce).
func (c *core) heardHeartbeat(m *Message) {
	c.electionElapsed = 0
	c.lead = m.From
	// The leader caps Commit at what this server is known to hold.
	if commit := min(m.Commit, c.log.lastIndex()); commit > c.log.committed {
		c.log.committed = commit
		c.confs.compact(commit)
	}
}

// A candidate that hears from a leader of its own term steps down and
// follows it.
func (c *core) handleCandidateAppend(m *Message) {
	c.becomeFollower(m.Term, m.From)
	c.handleFollowerAppend(m)
}

func (c *core) handleCandidateHeartbeat(m *Message) {
	c.becomeFollower(m.Term, m.From)
	c.handleFollowerHeartbeat(m)
}
