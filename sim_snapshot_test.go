package raft

import (
	"fmt"
	"maps"
	"slices"

	"github.com/keelraft/raft/internal/sim"
)

// Snapshots in the simulator: each server snapshots its FSM every few
// applied entries (persisted after a disk delay, like any write), its log
// is compacted behind it, and a leader streams its snapshot to followers
// whose next entry is gone. The FSM state travels beside the messages (the
// simulator keeps it by snapshot ID); a transfer is one MsgSnapshot that
// the network may lose or delay, after which the leader's sender gives up
// and retries, as the driver's does.

// maybeSnapshot starts a snapshot once enough entries were applied since
// the last one.
func (n *simNode) maybeSnapshot() {
	if n.snapshotting || n.fsm.applied < n.newestSnapshot().Index+n.s.snapEvery {
		return
	}
	meta := SnapshotMeta{
		ID:    fmt.Sprintf("%s-%d-%d", n.id, n.fsm.applied, n.inc),
		Index: n.fsm.applied, Term: n.mirror.terms[n.fsm.applied-1],
		Configuration: n.fsm.conf.Clone(), ConfigurationIndex: n.fsm.confIndex,
	}
	n.s.snapData[meta.ID] = n.fsm.clone()
	n.snapshotting = true
	inc := n.inc
	n.s.sched.After(1+sim.Time(n.s.rand.Int64N(int64(n.disk))), func() {
		if n.inc != inc {
			return
		}
		n.snapshotting = false
		n.snaps = append(n.snaps, meta)
		n.s.record(n, "snapshot", meta.ID, meta.Index, meta.Term)
		n.c.snapshotDone(meta.Index, meta.Term)
		n.flush()
	})
}

// dropBehindSnapshot does what NewRaft does (dropConflictingSuffix) with
// what a crash between installing a snapshot and trimming the log leaves:
// a log that ends before the snapshot goes; entries after the snapshot go
// if the log's own entry at its index has another term.
func (n *simNode) dropBehindSnapshot(snap SnapshotMeta) {
	if snap.Index == 0 {
		return
	}
	last := n.durableFirst + uint64(len(n.durable)) - 1
	switch {
	case len(n.durable) == 0 || last < snap.Index:
		n.durable, n.durableFirst = nil, snap.Index+1
	case snap.Index >= n.durableFirst && n.durable[snap.Index-n.durableFirst].Term != snap.Term:
		n.durable = n.durable[:snap.Index-n.durableFirst+1]
	}
}

// newestSnapshot returns the stored snapshot of the highest index (the
// order they were stored in can differ: a snapshot of its own may finish
// after one installed from the leader), or the zero meta.
func (n *simNode) newestSnapshot() SnapshotMeta {
	var newest SnapshotMeta
	for _, m := range n.snaps {
		if m.Index > newest.Index {
			newest = m
		}
	}
	return newest
}

// trim applies a log compaction to the durable log.
func (n *simNode) trim(to uint64, reset bool) {
	switch {
	case reset:
		n.durable, n.durableFirst = nil, to+1
	case to >= n.durableFirst:
		drop := min(to-n.durableFirst+1, uint64(len(n.durable)))
		n.durable = slices.Clone(n.durable[drop:])
		n.durableFirst += drop
	}
}

// sendSnapshot streams a snapshot to a follower: one message, and a
// timeout after which the transfer counts as failed unless it ended.
func (n *simNode) sendSnapshot(snd snapshotSend) {
	i := slices.IndexFunc(n.snaps, func(m SnapshotMeta) bool { return m.Index == snd.Index && m.Term == snd.Term })
	if i < 0 {
		n.s.fail("%s asked to send snapshot (%d, %d), which it does not hold", n.id, snd.Index, snd.Term)
		return
	}
	meta := n.snaps[i]
	conf := meta.Configuration.Clone()
	n.s.send(Message{
		Type: MsgSnapshot, From: n.id, To: snd.To, Term: n.c.term, Index: meta.Index, LogTerm: meta.Term,
		Snapshot: &SnapshotChunk{ID: meta.ID, Done: true, Configuration: &conf, ConfigurationIndex: meta.ConfigurationIndex},
	})
	inc := n.inc
	n.s.sched.After(2*simET, func() {
		if n.inc == inc {
			n.c.snapshotSent(snd.To, snd.Index, false)
			n.flush()
		}
	})
}

// receiveSnapshot writes a received snapshot to the store, then hands it
// to the core to install.
func (n *simNode) receiveSnapshot(m *Message) {
	meta := SnapshotMeta{ID: m.Snapshot.ID, Index: m.Index, Term: m.LogTerm,
		Configuration: m.Snapshot.Configuration.Clone(), ConfigurationIndex: m.Snapshot.ConfigurationIndex}
	from, inc := m.From, n.inc
	n.s.sched.After(1+sim.Time(n.s.rand.Int64N(int64(n.disk))), func() {
		if n.inc != inc {
			return
		}
		n.snaps = append(n.snaps, meta)
		n.c.snapshotReceived(meta, from)
		n.flush()
	})
}

// installed restores the FSM from an installed snapshot and checks it: the
// snapshot must be the committed prefix, and not older than what the
// server had applied.
func (n *simNode) installed(meta SnapshotMeta) {
	s, k := n.s, n.s.check
	s.record(n, "install", meta.ID, meta.Index, meta.Term)
	if meta.Index > uint64(len(k.committed)) || k.committedTerm[meta.Index-1] != meta.Term {
		s.fail("%s installed snapshot (%d, %d), which is not a committed entry", n.id, meta.Index, meta.Term)
		return
	}
	if life := k.lives[n.id]; meta.Index < life.applied {
		s.fail("%s installed snapshot %d, older than its applied index %d", n.id, meta.Index, life.applied)
		return
	}
	n.fsm.restore(s.snapData[meta.ID])
	n.fsm.sessions.bugs = s.opt.sessBugs
	n.c.appliedTo(meta.Index) // as the applier reports after a restore
	// Forwarded puts the snapshot covers: which entry took their index is
	// unknown (the driver fails their futures alike).
	for _, i := range slices.Sorted(maps.Keys(n.props)) {
		if i <= meta.Index {
			s.reply(n.props[i], simAnswer{kind: replyUnknown})
			delete(n.props, i)
		}
	}
	n.mirror.install(k, meta.Index, n.c.log.lastIndex())
	k.installed(n, meta.Index)
}
