package raft

import "fmt"

// Snapshots in the deterministic core: the compaction point, the leader's
// per-follower snapshot state and the follower's install. Byte streams
// never pass through the core: taking, storing, sending, receiving and
// restoring snapshots is the driver's work (snapshot_driver.go,
// snapshot_send.go, snapshot_recv.go), reported back through the inputs
// below. A simulator drives the protocol with the same calls.
//
// Inputs (besides step/tick/propose/persisted/appliedTo):
//
//   - snapshotDone(index, term): a snapshot of the FSM as of index (term of
//     entry index) is durable in the SnapshotStore. The core remembers it as
//     the snapshot to send to lagging followers and compacts its log to
//     index-trailingLogs (never past what is applied or committed); ready
//     then carries compactTo for the driver to delete that prefix of the
//     LogStore.
//   - step(MsgSnapshot): a chunk of a snapshot from the leader. The core
//     checks term and role (as for appends); a snapshot the server already
//     covers (index <= commit) is answered at once with a final
//     MsgSnapshotResp, other chunks go out in ready.snapshotChunks for the
//     driver to write to a SnapshotSink.
//   - snapshotReceived(meta, from): the driver holds a complete snapshot
//     from leader from, checksum verified, closed in the SnapshotStore. The
//     core installs it: the log is reset to start after (meta.Index,
//     meta.Term) unless it holds an entry at meta.Index with meta.Term, in
//     which case the suffix after it is kept; the configuration becomes the
//     snapshot's. ready.restore then asks the driver to restore the FSM from
//     it (before ready.apply), ready.compactTo/resetLog to trim the LogStore,
//     and a final MsgSnapshotResp leaves once that trim is durable
//     (msgsAfterAppend).
//   - step(MsgSnapshotResp): on the leader, a final answer (Snapshot.Done)
//     moves that follower from snapshot state to probe at index+1; a
//     rejection moves it back to probe, to retry after the next heartbeat.
//     Chunk acknowledgements (not Done) are for the driver's sender.
//   - snapshotSent(to, index, ok): the driver's transfer to a follower ended
//     without a final answer: ok=false (timeout, read error) is handled like
//     a rejection, ok=true like a final answer (for drivers that do not
//     model chunks).
//
// Outputs (fields of ready):
//
//   - snapshotSends: leader: stream the snapshot (index, term) to a follower
//     whose next entry is compacted away. The follower stays in snapshot
//     state (no appends) until the transfer ends.
//   - snapshotChunks: follower: accepted MsgSnapshot chunks to write.
//   - restore: follower: restore the FSM from this stored snapshot, in
//     order with applies.
//   - compactTo, resetLog: delete the LogStore's entries up to compactTo,
//     or (resetLog) every entry, the next append starting at compactTo+1.

// snapshotSend asks the driver to stream the server's snapshot at (Index,
// Term) to a follower.
type snapshotSend struct {
	To          ServerID
	Index, Term uint64
}

// snapState is the core's snapshot state, embedded in core.
type snapState struct {
	// snapIndex and snapTerm identify the newest snapshot this server
	// holds durably (taken or installed), or (0, 0).
	snapIndex, snapTerm uint64

	snapSends  []snapshotSend
	snapChunks []*Message
	restore    *SnapshotMeta
	compactTo  uint64
	resetLog   bool
}

// snapReady is the snapshot part of ready.
type snapReady struct {
	snapshotSends  []snapshotSend
	snapshotChunks []*Message
	restore        *SnapshotMeta
	compactTo      uint64
	resetLog       bool
}

func (s *snapReady) emptySnap() bool {
	return len(s.snapshotSends) == 0 && len(s.snapshotChunks) == 0 && s.restore == nil && s.compactTo == 0
}

// takeSnapReady moves the collected snapshot outputs into rd.
func (c *core) takeSnapReady(rd *ready) {
	rd.snapReady = snapReady{
		snapshotSends: c.snapSends, snapshotChunks: c.snapChunks,
		restore: c.restore, compactTo: c.compactTo, resetLog: c.resetLog,
	}
	c.snapSends, c.snapChunks, c.restore, c.compactTo, c.resetLog = nil, nil, nil, 0, false
}

// snapshotDone records that a snapshot as of (index, term) is durable and
// compacts the log behind it.
func (c *core) snapshotDone(index, term uint64) {
	if index > c.snapIndex {
		c.snapIndex, c.snapTerm = index, term
	}
	c.maybeCompact()
}

// compactionPoint is the highest index the log may forget: trailingLogs
// entries behind the newest snapshot, and never past what is applied or
// committed.
func (c *core) compactionPoint() uint64 {
	if c.cfg.snapBugs.CompactPastCommit {
		return c.log.lastIndex()
	}
	to := c.snapIndex - min(c.cfg.trailingLogs, c.snapIndex)
	return min(to, c.log.applied, c.log.committed)
}

func (c *core) maybeCompact() {
	to := c.compactionPoint()
	if to <= c.log.snapIndex {
		return
	}
	c.log.compact(to)
	c.compactTo = max(c.compactTo, to)
}

// compact forgets the entries up to index, which must be in the log.
func (l *raftLog) compact(index uint64) {
	term, _ := l.term(index)
	l.forget(index, term)
	// Only the planted bug compacts past these; keep the indexes in the log
	// so that nothing panics (the bug shows as skipped entries).
	l.stable = max(l.stable, index)
	l.unsent = max(l.unsent, index+1)
	l.applying = max(l.applying, index)
	l.applied = max(l.applied, index)
}

// maybeSendSnapshot puts a follower whose next entry is compacted away in
// snapshot state and asks the driver to stream the snapshot.
func (c *core) maybeSendSnapshot(to ServerID) bool {
	pr := c.prs[to]
	if c.snapIndex == 0 || pr.state == stateSnapshot {
		return false
	}
	pr.becomeSnapshot(c.snapIndex)
	c.snapSends = append(c.snapSends, snapshotSend{To: to, Index: c.snapIndex, Term: c.snapTerm})
	return false
}

// handleLeaderSnapshotResp acts on the final answer to a snapshot
// transfer; chunk acknowledgements are the driver's.
func (c *core) handleLeaderSnapshotResp(m *Message) {
	pr, ok := c.prs[m.From]
	if !ok {
		return
	}
	pr.recentActive, pr.lastHeard = true, c.leaderTicks
	if m.Reject {
		c.snapshotSent(m.From, m.Index, false)
		return
	}
	if m.Snapshot != nil && m.Snapshot.Done {
		c.snapshotSent(m.From, m.Index, true)
	}
}

// snapshotSent ends the transfer of snapshot index to a follower: ok means
// the follower holds the log up to index.
func (c *core) snapshotSent(to ServerID, index uint64, ok bool) {
	pr, found := c.prs[to]
	if !found || c.role != roleLeader || pr.state != stateSnapshot || pr.pendingSnapshot != index {
		return
	}
	if !ok {
		pr.becomeProbe()
		// Retry after the next heartbeat answer, not in a tight loop.
		pr.probeSent = true
		return
	}
	pr.match = max(pr.match, index)
	pr.becomeProbe()
	c.maybeCommit()
	c.sendAppend(to)
}

// handleFollowerSnapshot takes a chunk of a snapshot from the leader.
func (c *core) handleFollowerSnapshot(m *Message) {
	c.electionElapsed = 0
	c.lead = m.From
	if m.Index <= c.log.committed && !c.cfg.snapBugs.ApplyOlderSnapshot {
		// Everything the snapshot covers is committed here already.
		c.send(Message{Type: MsgSnapshotResp, To: m.From, Index: m.Index, Commit: c.log.committed,
			Snapshot: &SnapshotChunk{ID: m.Snapshot.ID, Done: true}})
		return
	}
	c.snapChunks = append(c.snapChunks, m)
}

// handleCandidateSnapshot: a candidate hearing from a leader of its term
// follows it.
func (c *core) handleCandidateSnapshot(m *Message) {
	c.becomeFollower(m.Term, m.From)
	c.handleFollowerSnapshot(m)
}

// snapshotReceived installs a complete snapshot from leader from.
func (c *core) snapshotReceived(meta SnapshotMeta, from ServerID) {
	done := Message{Type: MsgSnapshotResp, To: from, Index: meta.Index,
		Snapshot: &SnapshotChunk{ID: meta.ID, Done: true}}
	if meta.Index <= c.log.committed && !c.cfg.snapBugs.ApplyOlderSnapshot {
		done.Commit = c.log.committed
		c.send(done)
		return
	}
	l := c.log
	if l.matchTerm(meta.Index, meta.Term) && meta.Index <= l.lastIndex() {
		// The log holds the snapshot's last entry: keep what follows it.
		c.compactTo = max(c.compactTo, meta.Index)
		l.forget(meta.Index, meta.Term)
	} else {
		l.reset(meta.Index, meta.Term)
		c.resetLog = true
		c.compactTo = meta.Index
	}
	l.committed = meta.Index
	l.stable = max(l.stable, meta.Index)
	l.unsent = max(l.unsent, meta.Index+1)
	if c.resetLog {
		l.stable, l.unsent = meta.Index, meta.Index+1
	}
	l.applying, l.applied = meta.Index, min(l.applied, meta.Index)
	c.snapIndex, c.snapTerm = meta.Index, meta.Term
	m := meta
	m.Configuration = meta.Configuration.Clone()
	c.restore = &m
	kept := newConfigs(confEntry{index: meta.ConfigurationIndex, conf: m.Configuration})
	if !c.resetLog {
		// The configurations of the entries kept after the snapshot (some
		// may be out of memory: evicted at start-up).
		for _, e := range c.confs.entries {
			if e.index > meta.Index {
				kept.add(e)
			}
		}
	}
	c.confs = kept
	c.useConfig()
	done.Commit = meta.Index
	c.sendAfterAppend(done)
}

// checkSnapshotInvariants checks what compaction and install must never
// break; tests and the simulator call it after every step.
func (c *core) checkSnapshotInvariants() error {
	l := c.log
	switch {
	case l.snapIndex > l.committed:
		return fmt.Errorf("%s: log compacted to %d, past the commit index %d", c.id(), l.snapIndex, l.committed)
	case l.snapIndex > c.snapIndex:
		return fmt.Errorf("%s: log compacted to %d, past the newest snapshot %d", c.id(), l.snapIndex, c.snapIndex)
	case l.applied > l.applying || l.applying > l.committed:
		return fmt.Errorf("%s: applied %d, applying %d, committed %d out of order", c.id(), l.applied, l.applying, l.committed)
	case c.snapIndex > l.committed:
		return fmt.Errorf("%s: snapshot %d beyond the commit index %d", c.id(), c.snapIndex, l.committed)
	}
	return nil
}

// installLocal makes an operator's snapshot (Restore) the leader's state:
// the snapshot takes index lastIndex+1 in the leader's term, no entry
// carrying it, and the log restarts after it. Every follower then needs
// the snapshot: each goes back to probing, finds its next entry compacted
// and gets a snapshot transfer.
func (c *core) installLocal(meta SnapshotMeta) error {
	if c.role != roleLeader || meta.Term != c.term || meta.Index != c.log.lastIndex()+1 {
		return fmt.Errorf("%w: restore at (%d, %d) on %v of term %d with last index %d",
			errNotLeader, meta.Index, meta.Term, c.role, c.term, c.log.lastIndex())
	}
	l := c.log
	l.reset(meta.Index, meta.Term)
	l.committed, l.stable, l.unsent, l.applying = meta.Index, meta.Index, meta.Index+1, meta.Index
	c.snapIndex, c.snapTerm = meta.Index, meta.Term
	m := meta
	m.Configuration = meta.Configuration.Clone()
	c.restore = &m
	c.resetLog, c.compactTo = true, meta.Index
	c.confs = newConfigs(confEntry{index: meta.ConfigurationIndex, conf: m.Configuration})
	c.useConfig()
	for _, id := range c.peers {
		c.prs[id].becomeProbe()
	}
	c.bcastAppend()
	return nil
}
