package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A new leader answers no read until an entry of its own term commits: its
// commit index may lag what an earlier leader committed.
func TestNewLeaderReadsOnlyAfterCommitInTerm(t *testing.T) {
	net := newCoreNet(t, 3, 5, nil)
	// Hold every append so the new leader's no-op cannot commit.
	net.drop = func(m *Message) bool { return m.Type == MsgAppend }
	net.elect("s1")
	nd := net.nodes["s1"]
	l := nd.c
	require.Equal(t, roleLeader, l.role)
	require.False(t, l.committedInTerm())
	require.NoError(t, l.requestRead(1, true))
	require.NoError(t, l.requestRead(2, false))
	net.settle()
	require.Equal(t, []readResult{{id: 2, index: l.log.committed}}, nd.reads,
		"VerifyLeader needs no commit in term; the read must wait for it")
	net.drop = nil
	for i := 0; i < 3; i++ {
		net.tickAll()
	}
	require.True(t, l.committedInTerm())
	require.Len(t, nd.reads, 2)
	require.Equal(t, readResult{id: 1, index: 2}, nd.reads[1], "the read index is the no-op's")
}

// Confirmation rounds: requests during a round wait for the next one, and
// a round needs a quorum of answers.
func TestConfirmationRounds(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	r1 := l.requestConfirmation()
	r2 := l.requestConfirmation()
	require.Equal(t, r1+1, r2, "a request during a round waits for the next")
	r3 := l.requestConfirmation()
	require.Equal(t, r2, r3, "later requests share that next round")
	net.settle()
	require.Equal(t, r2, l.reads.confirmed)

	// Cut off from both followers, a round never confirms.
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	r4 := l.requestConfirmation()
	net.settle()
	require.Less(t, l.reads.confirmed, r4)

	require.ErrorIs(t, net.nodes["s2"].c.requestRead(1, true), errNotLeader)
}

// A leader that loses leadership fails the reads it holds instead of
// answering them later.
func TestReadsFailOnLeadershipLoss(t *testing.T) {
	net := electedNet(t, nil)
	nd := net.nodes["s1"]
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	require.NoError(t, nd.c.requestRead(7, true))
	net.settle()
	require.Empty(t, nd.reads, "no quorum answered: the read waits")
	nd.c.step(&Message{Type: MsgHeartbeat, From: "s2", To: "s1", Term: nd.c.term + 1})
	net.process("s1")
	require.Equal(t, []readResult{{id: 7, err: errNotLeader}}, nd.reads)
}
