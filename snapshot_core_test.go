package raft

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// coreSnap is a snapshot in the coreNet harness: the commands applied up
// to its index stand for the FSM's state.
type coreSnap struct {
	meta    SnapshotMeta
	applied []Log
}

// processSnapshots acts on a ready's snapshot outputs as the driver would,
// with transfers done in one MsgSnapshot chunk through the message queue.
func (net *coreNet) processSnapshots(id ServerID, rd *ready) {
	nd := net.nodes[id]
	if rd.resetLog {
		// The LogStore is emptied; the next entry is compactTo+1.
		nd.durable = nd.durable[:min(len(nd.durable), int(rd.compactTo))]
	}
	if rd.compactTo > 0 {
		// durable is indexed from 1: pad what the snapshot covers with
		// placeholders.
		for len(nd.durable) < int(rd.compactTo) {
			nd.durable = append(nd.durable, Log{Index: uint64(len(nd.durable) + 1)})
		}
	}
	for _, s := range rd.snapshotSends {
		snap := net.latestSnap[id]
		require.NotNil(net.t, snap, "%s asked to send a snapshot it does not have", id)
		require.Equal(net.t, s.Index, snap.meta.Index)
		conf := snap.meta.Configuration.Clone()
		net.queue = append(net.queue, Message{
			Type: MsgSnapshot, From: id, To: s.To, Term: nd.c.term,
			Index: s.Index, LogTerm: s.Term,
			Snapshot: &SnapshotChunk{ID: snap.meta.ID, Done: true, Configuration: &conf, ConfigurationIndex: snap.meta.ConfigurationIndex},
		})
	}
	for _, m := range rd.snapshotChunks {
		// The whole snapshot arrived in this chunk: store it under a new ID
		// and report it, as the driver's receiver does.
		src := net.snaps[m.Snapshot.ID]
		require.NotNil(net.t, src)
		meta := src.meta
		meta.ID = fmt.Sprintf("%s-recv-%d", id, len(net.snaps))
		cs := &coreSnap{meta: meta, applied: src.applied}
		net.snaps[meta.ID] = cs
		nd.c.snapshotReceived(meta, m.From)
	}
	if rd.restore != nil {
		snap := net.snaps[rd.restore.ID]
		require.NotNil(net.t, snap)
		nd.applied = slices.Clone(snap.applied)
		net.latestSnap[id] = snap
		net.installs++
		nd.c.appliedTo(rd.restore.Index)
	}
}

// takeSnapshot snapshots id's state as applied and reports it durable.
func (net *coreNet) takeSnapshot(id ServerID) *coreSnap {
	nd := net.nodes[id]
	index := nd.c.log.applied
	var term uint64
	if len(nd.applied) > 0 {
		term = nd.applied[len(nd.applied)-1].Term
	}
	ce := nd.c.confs.committed(index)
	snap := &coreSnap{
		meta: SnapshotMeta{
			ID: fmt.Sprintf("%s-%d-%d", id, index, len(net.snaps)), Index: index, Term: term,
			Configuration: ce.conf.Clone(), ConfigurationIndex: ce.index,
		},
		applied: slices.Clone(nd.applied),
	}
	net.snaps[snap.meta.ID] = snap
	net.latestSnap[id] = snap
	nd.c.snapshotDone(index, term)
	net.settle()
	return snap
}

func newSnapNet(t *testing.T, n int, seed uint64, trailing uint64, tweak func(*coreConfig)) *coreNet {
	net := newCoreNet(t, n, seed, func(c *coreConfig) {
		c.trailingLogs = trailing
		if tweak != nil {
			tweak(c)
		}
	})
	net.snaps = map[string]*coreSnap{}
	net.latestSnap = map[ServerID]*coreSnap{}
	return net
}

func (net *coreNet) checkInvariants() {
	for _, id := range net.ids {
		if err := net.nodes[id].c.checkSnapshotInvariants(); err != nil {
			net.t.Fatal(err)
		}
	}
}

func TestCoreFollowerFarBehindGetsSnapshot(t *testing.T) {
	net := newSnapNet(t, 3, 1, 5, nil)
	net.elect("s1")
	net.nodes["s3"].down = true
	for i := range 50 {
		net.propose("s1", fmt.Sprintf("c%d", i))
	}
	net.tickAll()
	snap := net.takeSnapshot("s1")
	net.checkInvariants()
	l := net.nodes["s1"].c.log
	require.Equal(t, snap.meta.Index-5, l.snapIndex, "compacted to the snapshot minus TrailingLogs")
	require.Equal(t, snap.meta.Index-5, net.nodes["s1"].c.snapIndex-5)

	net.nodes["s3"].down = false
	for range 5 {
		net.tickAll()
	}
	net.propose("s1", "after")
	net.tickAll()
	net.checkInvariants()
	s3 := net.nodes["s3"].c
	require.Equal(t, snap.meta.Index, s3.snapIndex, "s3 installed the leader's snapshot")
	require.Equal(t, net.commands("s1"), net.commands("s3"))
	require.Equal(t, stateReplicate, net.nodes["s1"].c.prs["s3"].state)
}

// A follower missing entries the leader compacted, with a conflict hint
// below the leader's compaction point, gets a snapshot instead of endless
// probing.
func TestCoreRejectHintBelowCompactionPointSendsSnapshot(t *testing.T) {
	net := newSnapNet(t, 3, 2, 0, nil)
	net.elect("s1")
	for i := range 10 {
		net.propose("s1", fmt.Sprintf("c%d", i))
	}
	net.takeSnapshot("s1")
	c := net.nodes["s1"].c
	require.Equal(t, c.log.lastIndex(), c.log.snapIndex, "TrailingLogs 0 keeps nothing")
	for i := range 3 {
		net.propose("s1", fmt.Sprintf("d%d", i))
	}
	pr := c.prs["s2"]
	pr.match = 0 // as if s2 had lost its log
	pr.becomeProbe()
	pr.next = c.log.lastIndex() + 1
	c.step(&Message{Type: MsgAppendResp, From: "s2", To: "s1", Term: c.term, Reject: true,
		Index: c.log.lastIndex(), RejectHint: 3, LogTerm: 1})
	require.Equal(t, stateSnapshot, pr.state)
	rd := c.ready()
	require.Equal(t, []snapshotSend{{To: "s2", Index: c.snapIndex, Term: c.snapTerm}}, rd.snapshotSends)
}

func followerAfterSnapshot(t *testing.T, snapIndex, snapTerm uint64, entries []Log) *core {
	cfg := testCoreConfig("s2", 7)
	conf := bootstrapConfig(serverIDs(3))
	c := newCore(cfg, hardState{Term: snapTerm}, snapIndex, snapTerm, confEntry{index: 1, conf: conf}, entries)
	require.Equal(t, snapIndex, c.log.committed)
	return c
}

func TestCoreAppendAtSnapshotBoundary(t *testing.T) {
	c := followerAfterSnapshot(t, 10, 2, nil)
	ent := []Log{{Index: 11, Term: 2, Type: LogNoop}}

	// prev == snapIndex with snapTerm: accepted.
	c.step(&Message{Type: MsgAppend, From: "s1", To: "s2", Term: 2, Index: 10, LogTerm: 2, Entries: ent, Commit: 11})
	rd := c.ready()
	require.Len(t, rd.msgsAfterAppend, 1)
	require.False(t, rd.msgsAfterAppend[0].Reject)
	require.Equal(t, uint64(11), rd.msgsAfterAppend[0].Index)
	c.persisted(11, 2)

	// prev == snapIndex with another term cannot be: the snapshot is
	// committed. A prev below the snapshot is answered with the commit index.
	c2 := followerAfterSnapshot(t, 10, 2, nil)
	c2.step(&Message{Type: MsgAppend, From: "s1", To: "s2", Term: 2, Index: 4, LogTerm: 1, Entries: []Log{{Index: 5, Term: 1}}})
	rd = c2.ready()
	require.Len(t, rd.msgsAfterAppend, 1)
	require.False(t, rd.msgsAfterAppend[0].Reject)
	require.Equal(t, uint64(10), rd.msgsAfterAppend[0].Index)
	require.Equal(t, uint64(10), c2.log.lastIndex(), "nothing below the snapshot is rewritten")

	// A prev beyond the log: rejected with the snapshot boundary as hint.
	c2.step(&Message{Type: MsgAppend, From: "s1", To: "s2", Term: 2, Index: 15, LogTerm: 2})
	rd = c2.ready()
	require.Len(t, rd.msgs, 1)
	require.True(t, rd.msgs[0].Reject)
	require.Equal(t, uint64(10), rd.msgs[0].RejectHint)
	require.Equal(t, uint64(2), rd.msgs[0].LogTerm)
}

func TestCoreVoteUpToDateWithEmptyLogAfterSnapshot(t *testing.T) {
	for _, tc := range []struct {
		index, term uint64
		granted     bool
	}{
		{9, 3, false},  // shorter log of the same last term
		{10, 2, false}, // older last term
		{10, 3, true},  // equal
		{5, 4, true},   // newer last term
	} {
		c := followerAfterSnapshot(t, 10, 3, nil)
		require.Equal(t, uint64(3), c.log.lastTerm(), "last term comes from the snapshot")
		c.step(&Message{Type: MsgVote, From: "s1", To: "s2", Term: 5, Index: tc.index, LogTerm: tc.term})
		rd := c.ready()
		require.Len(t, rd.msgs, 1)
		require.Equal(t, !tc.granted, rd.msgs[0].Reject, "candidate log (%d, %d)", tc.index, tc.term)
	}
}

func TestCoreInstallKeepsMatchingSuffix(t *testing.T) {
	ents := func(terms ...uint64) []Log {
		var out []Log
		for i, tm := range terms {
			out = append(out, Log{Index: uint64(6 + i), Term: tm, Type: LogNoop})
		}
		return out
	}
	conf := bootstrapConfig(serverIDs(3))
	meta := SnapshotMeta{ID: "snap", Index: 8, Term: 2, Configuration: conf, ConfigurationIndex: 1}

	// Entries 6..10 with entry 8 of term 2: 9 and 10 stay.
	c := followerAfterSnapshot(t, 5, 1, ents(1, 2, 2, 2, 3))
	c.snapshotReceived(meta, "s1")
	rd := c.ready()
	require.False(t, rd.resetLog)
	require.Equal(t, uint64(8), rd.compactTo)
	require.Equal(t, uint64(8), rd.restore.Index)
	require.Equal(t, uint64(10), c.log.lastIndex(), "the matching suffix is kept")
	require.Equal(t, uint64(8), c.log.snapIndex)
	require.Equal(t, uint64(3), c.log.lastTerm())
	require.Len(t, rd.msgsAfterAppend, 1, "the final answer waits for the log trim")
	require.True(t, rd.msgsAfterAppend[0].Snapshot.Done)

	// Entry 8 of another term: the log is reset.
	c = followerAfterSnapshot(t, 5, 1, ents(1, 1, 1, 1))
	c.snapshotReceived(meta, "s1")
	rd = c.ready()
	require.True(t, rd.resetLog)
	require.Equal(t, uint64(8), c.log.lastIndex())
	require.Equal(t, uint64(2), c.log.lastTerm())
	require.NoError(t, c.checkSnapshotInvariants())

	// A snapshot the follower already covers is answered, not installed.
	c = followerAfterSnapshot(t, 9, 2, nil)
	c.snapshotReceived(meta, "s1")
	rd = c.ready()
	require.Nil(t, rd.restore)
	require.Len(t, rd.msgs, 1)
	require.True(t, rd.msgs[0].Snapshot.Done)
}

// A server restarted on its snapshot and the log after it rejoins and
// catches up.
func TestCoreRestartFromSnapshotPlusLog(t *testing.T) {
	net := newSnapNet(t, 3, 3, 2, nil)
	net.elect("s1")
	for i := range 20 {
		net.propose("s1", fmt.Sprintf("c%d", i))
	}
	net.tickAll()
	snap := net.takeSnapshot("s2")
	for i := range 5 {
		net.propose("s1", fmt.Sprintf("d%d", i))
	}
	net.tickAll()
	want := net.commands("s2")

	nd := net.nodes["s2"]
	cfg := nd.c.cfg
	m := snap.meta
	nd.c = newCore(cfg, nd.hs, m.Index, m.Term, confEntry{index: m.ConfigurationIndex, conf: m.Configuration}, slices.Clone(nd.durable[m.Index:]))
	nd.applied = slices.Clone(snap.applied)
	for range 5 {
		net.tickAll()
	}
	require.Equal(t, want, net.commands("s2"), "snapshot plus the log replayed after it")
	net.checkInvariants()
}

// The planted bugs break the invariants the simulator checks.
func TestCorePlantedSnapshotBugsAreCaught(t *testing.T) {
	t.Run("CompactPastCommit", func(t *testing.T) {
		net := newSnapNet(t, 3, 4, 0, func(c *coreConfig) { c.snapBugs.CompactPastCommit = true })
		net.elect("s1")
		net.propose("s1", "a")
		net.nodes["s2"].down, net.nodes["s3"].down = true, true
		net.nodes["s1"].c.propose([]Log{{Type: LogCommand, Data: []byte("uncommitted")}})
		net.settle()
		net.takeSnapshot("s1")
		require.Error(t, net.nodes["s1"].c.checkSnapshotInvariants())
	})
	t.Run("ApplyOlderSnapshot", func(t *testing.T) {
		net := newSnapNet(t, 3, 5, 0, func(c *coreConfig) { c.snapBugs.ApplyOlderSnapshot = true })
		net.elect("s1")
		net.propose("s1", "a")
		net.tickAll()
		old := net.takeSnapshot("s1")
		for i := range 5 {
			net.propose("s1", fmt.Sprintf("b%d", i))
		}
		net.tickAll()
		s2 := net.nodes["s2"].c
		before := s2.log.applied
		conf := old.meta.Configuration.Clone()
		s2.step(&Message{Type: MsgSnapshot, From: "s1", To: "s2", Term: s2.term, Index: old.meta.Index, LogTerm: old.meta.Term,
			Snapshot: &SnapshotChunk{ID: old.meta.ID, Done: true, Configuration: &conf}})
		net.process("s2")
		net.process("s2")
		require.Less(t, s2.log.applied, before, "the planted bug rolls the state machine back")
	})
}
