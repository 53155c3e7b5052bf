package raft

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// A follower's proposals go to the leader, which appends them as its own
// and answers with where they went; every server applies them.
func TestForwardedProposalIsAppendedByTheLeader(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"]
	require.NoError(t, f.c.forwardProposals(9, []Log{
		{Type: LogCommand, Data: []byte("a")}, {Type: LogNoop}, {Type: LogCommand, Data: []byte("b")},
	}))
	net.settle()
	net.tickAll() // followers learn the commit index
	l := net.nodes["s1"].c
	require.Equal(t, []proposeResult{{id: 9, index: 3, term: l.term}}, f.proposed,
		"index of the first entry after the no-op at 2, in the leader's term")
	for _, id := range net.ids {
		require.Equal(t, []string{"a", "b"}, net.commands(id), id)
	}
	require.Equal(t, Log{Index: 4, Term: l.term, Type: LogNoop}, *f.c.log.entry(4))
	require.Empty(t, f.c.forwards)
}

// Only a follower of a known leader forwards; a server that does not lead
// refuses, and the follower reports it not leader.
func TestForwardedProposalRefusedByNonLeader(t *testing.T) {
	net := electedNet(t, nil)
	require.ErrorIs(t, net.nodes["s1"].c.forwardProposals(1, []Log{{Type: LogCommand}}), errNotLeader,
		"the leader proposes, it does not forward")
	f := net.nodes["s2"]
	// s2 believes s3 leads (a stale belief, as after a missed election).
	f.c.lead = "s3"
	require.NoError(t, f.c.forwardProposals(2, []Log{{Type: LogCommand, Data: []byte("x")}}))
	net.settle()
	require.Equal(t, []proposeResult{{id: 2, err: errNotLeader}}, f.proposed)
	require.Empty(t, net.commands("s1"))
}

// A leader handing leadership over refuses forwarded proposals, as it
// refuses its own, and says why.
func TestForwardedProposalRefusedDuringTransfer(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	// Deliver only the proposal and its answer, so the transfer stays
	// under way.
	net.drop = func(m *Message) bool { return m.Type != MsgPropose && m.Type != MsgProposeResp }
	_, _, err := l.transferLeadership("s3")
	require.NoError(t, err)
	f := net.nodes["s2"]
	require.NoError(t, f.c.forwardProposals(4, []Log{{Type: LogCommand, Data: []byte("x")}}))
	net.settle()
	require.Len(t, f.proposed, 1)
	require.ErrorIs(t, f.proposed[0].err, ErrLeadershipTransferInProgress)
}

// Configuration entries never travel as forwarded data: membership goes
// through changeConfig.
func TestForwardedConfigurationEntryRefused(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	last := l.log.lastIndex()
	data := encodeConfiguration(bootstrapConfig(serverIDs(1)))
	l.step(&Message{Type: MsgPropose, From: "s2", To: "s1", Term: l.term, Context: []byte{0, 0, 0, 0, 0, 0, 0, 1},
		Entries: []Log{{Type: LogConfiguration, Data: data}}})
	require.Equal(t, last, l.log.lastIndex())
	require.Len(t, l.violations, 1)
	l.violations = nil
}

// A forwarded proposal fails — outcome unknown — when no answer comes
// within an election timeout, or when the follower stops following the
// leader it asked.
func TestForwardedProposalFailsWithoutAnswer(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"]
	net.drop = func(m *Message) bool { return m.Type == MsgProposeResp }
	require.NoError(t, f.c.forwardProposals(5, []Log{{Type: LogCommand, Data: []byte("x")}}))
	net.settle()
	require.Empty(t, f.proposed)
	for i := 0; i < f.c.cfg.electionTicks-1; i++ {
		f.c.tick()
		net.process("s2")
	}
	require.Empty(t, f.proposed, "still within an election timeout")
	f.c.tick()
	net.process("s2")
	require.Equal(t, []proposeResult{{id: 5, err: errForwardUnknown}}, f.proposed)

	require.NoError(t, f.c.forwardProposals(6, []Log{{Type: LogCommand, Data: []byte("y")}}))
	net.process("s2")
	f.c.step(&Message{Type: MsgHeartbeat, From: "s3", To: "s2", Term: f.c.term + 1})
	net.process("s2")
	require.Equal(t, proposeResult{id: 6, err: errForwardUnknown}, f.proposed[1], "a new leader: the old one's answer will never be waited for")
}

// The answer to a forwarded proposal and the leader's commit of it travel
// separately. A follower that learned the commit first must not apply the
// entry before it knows the entry is its proposal: its future would miss
// the apply. So it applies nothing above the commit index it had when it
// forwarded until the answer comes.
func TestForwardedProposalHoldsApplyUntilAnswered(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"]
	commitAtSend := f.c.log.committed
	var held []Message
	net.drop = func(m *Message) bool {
		if m.Type == MsgProposeResp {
			held = append(held, *m)
			return true
		}
		return false
	}
	require.NoError(t, f.c.forwardProposals(3, []Log{{Type: LogCommand, Data: []byte("x")}}))
	net.settle()
	net.tickAll() // the leader's heartbeat carries the new commit index
	require.Greater(t, f.c.log.committed, commitAtSend, "the follower knows the entry committed")
	require.Len(t, held, 1)
	require.LessOrEqual(t, f.c.log.applying, commitAtSend, "nothing above the commit index at send is applied before the answer")
	require.Empty(t, net.commands("s2"))

	f.c.step(&held[0])
	net.process("s2")
	require.Equal(t, []proposeResult{{id: 3, index: held[0].Index, term: held[0].LogTerm}}, f.proposed)
	require.Equal(t, []string{"x"}, net.commands("s2"), "answered: the apply goes on")
	require.Equal(t, held[0].Index, f.applied[len(f.applied)-1].Index)
}

// An answer with an index or term of zero is a protocol violation; the
// request fails with its outcome unknown.
func TestForwardedProposalMalformedAnswer(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"]
	require.NoError(t, f.c.forwardProposals(8, []Log{{Type: LogCommand}}))
	net.process("s2")
	net.queue = nil
	f.c.step(&Message{Type: MsgProposeResp, From: "s1", To: "s2", Term: f.c.term, Context: []byte{0, 0, 0, 0, 0, 0, 0, 8}})
	require.Len(t, f.c.violations, 1)
	f.c.violations = nil
	net.process("s2")
	require.Equal(t, []proposeResult{{id: 8, err: errForwardUnknown}}, f.proposed)
}

// A duplicated MsgPropose is appended once: the leader takes a follower's
// proposals only under a request ID above every one it took before in its
// term; the late copy is refused and the follower ignores the refusal of
// a request it no longer waits on.
func TestDuplicatedForwardedProposalAppendedOnce(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"]
	require.NoError(t, f.c.forwardProposals(10, []Log{{Type: LogCommand, Data: []byte("x")}}))
	net.process("s2")
	require.Len(t, net.queue, 1)
	net.queue = append(net.queue, net.queue[0]) // the network duplicates it
	net.settle()
	net.tickAll()
	require.Equal(t, []string{"x"}, net.commands("s1"))
	require.Equal(t, []proposeResult{{id: 10, index: 3, term: net.nodes["s1"].c.term}}, f.proposed)

	// A reordered older request is refused: its outcome is reported unknown.
	require.NoError(t, f.c.forwardProposals(12, []Log{{Type: LogCommand, Data: []byte("y")}}))
	require.NoError(t, f.c.forwardProposals(11, []Log{{Type: LogCommand, Data: []byte("z")}}))
	net.settle()
	net.tickAll()
	require.Equal(t, []string{"x", "y"}, net.commands("s1"))
	require.Equal(t, []proposeResult{{id: 12, index: 4, term: net.nodes["s1"].c.term}, {id: 11, err: errForwardUnknown}}, f.proposed[1:])
}

// A leader stamps forwarded session entries with its own clock, copying
// what it changes: the sender may share the message.
func TestStampForwardedCopies(t *testing.T) {
	sess := sessionEntry{op: sessionCommand, session: 3, seq: 1, payload: []byte("x"), time: 5}
	m := &Message{Type: MsgPropose, Entries: []Log{{Type: LogCommand, Data: []byte("c")}, {Type: LogSession, Data: sess.encode()}}}
	orig := slices.Clone(m.Entries[1].Data)
	out := stampForwarded(m, 99)
	require.NotSame(t, m, out)
	require.Equal(t, orig, m.Entries[1].Data, "the sender's entry is untouched")
	e, err := decodeSessionEntry(out.Entries[1].Data)
	require.NoError(t, err)
	require.Equal(t, int64(99), e.time)
	require.Equal(t, m.Entries[0], out.Entries[0])

	plain := &Message{Type: MsgPropose, Entries: []Log{{Type: LogCommand, Data: []byte("c")}}}
	require.Same(t, plain, stampForwarded(plain, 99), "nothing to stamp: no copy")
}

// A follower waiting on an apply hears of the commit at once: the leader
// announces a commit that covers a forwarded proposal to caught-up
// followers — no heartbeat tick needed — and a follower read learns the
// commit from its confirmation round. A commit of the leader's own
// proposals costs no extra message.
func TestCommitAnnouncedToWaitingFollowers(t *testing.T) {
	net := electedNet(t, nil)
	net.tickAll() // everyone knows the no-op committed
	heartbeats := 0
	count := func(m *Message) bool {
		if m.Type == MsgHeartbeat {
			heartbeats++
		}
		return false
	}
	net.drop = count
	net.propose("s1", "own")
	require.Zero(t, heartbeats, "the leader's own write: followers learn the commit with the next append")

	f := net.nodes["s2"]
	require.NoError(t, f.c.forwardProposals(20, []Log{{Type: LogCommand, Data: []byte("fwd")}}))
	net.settle()
	require.Equal(t, []string{"own", "fwd"}, net.commands("s2"), "applied without a tick")

	// The forwarder is told even when its acknowledgement comes after the
	// commit (the other follower made the quorum).
	net.drop = func(m *Message) bool { return m.Type == MsgAppendResp && m.From == "s2" }
	require.NoError(t, f.c.forwardProposals(22, []Log{{Type: LogCommand, Data: []byte("late")}}))
	net.settle()
	held := net.nodes["s1"].c.prs["s2"].match
	net.drop = count
	net.nodes["s1"].c.step(&Message{Type: MsgAppendResp, From: "s2", To: "s1", Term: f.c.term, Index: f.c.log.lastIndex()})
	net.settle()
	require.Less(t, held, f.c.log.lastIndex())
	require.Equal(t, []string{"own", "fwd", "late"}, net.commands("s2"), "applied without a tick")

	net.propose("s1", "more")
	require.NoError(t, f.c.requestRead(21, readAny))
	net.settle()
	require.Equal(t, net.nodes["s1"].c.log.committed, f.reads[len(f.reads)-1].index)
	require.Equal(t, f.c.log.committed, f.reads[len(f.reads)-1].index, "the follower knows the read index committed")
	require.Equal(t, []string{"own", "fwd", "late", "more"}, net.commands("s2"))
}

// In a larger cluster the forwarder may acknowledge before the commit: the
// leader tells it when a later acknowledgement commits the entry.
func TestCommitAnnouncedToEarlyAcknowledger(t *testing.T) {
	net := newCoreNet(t, 5, 42, nil)
	net.elect("s1")
	net.tickAll()
	// Only s2, the forwarder, and then s3 acknowledge.
	var held []Message
	net.drop = func(m *Message) bool {
		if m.Type == MsgAppendResp && m.From == "s3" {
			held = append(held, *m)
			return true
		}
		return m.Type == MsgAppendResp && (m.From == "s4" || m.From == "s5")
	}
	f := net.nodes["s2"]
	require.NoError(t, f.c.forwardProposals(30, []Log{{Type: LogCommand, Data: []byte("x")}}))
	net.settle()
	require.Empty(t, net.commands("s2"), "no quorum yet: leader and s2 are two of five")
	require.NotEmpty(t, held)
	for i := range held {
		net.nodes["s1"].c.step(&held[i])
	}
	net.settle()
	require.Equal(t, []string{"x"}, net.commands("s1"))
	require.Equal(t, []string{"x"}, net.commands("s2"), "applied without a tick")
}
