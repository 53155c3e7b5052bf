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
	l := net.nodes["s1"].c
	require.Equal(t, roleLeader, l.role)
	require.False(t, l.committedInTerm())
	net.drop = nil
	for i := 0; i < 3; i++ {
		net.tickAll()
	}
	require.True(t, l.committedInTerm())
}

// Confirmation rounds: requests during a round wait for the next one, and
// a round needs a quorum of answers.
func TestConfirmationRounds(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	r1, err := l.requestConfirmation()
	require.NoError(t, err)
	r2, err := l.requestConfirmation()
	require.NoError(t, err)
	require.Equal(t, r1+1, r2, "a request during a round waits for the next")
	r3, _ := l.requestConfirmation()
	require.Equal(t, r2, r3, "later requests share that next round")
	net.settle()
	require.Equal(t, r2, l.reads.confirmed)

	// Cut off from both followers, a round never confirms.
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	r4, _ := l.requestConfirmation()
	net.settle()
	require.Less(t, l.reads.confirmed, r4)

	_, err = net.nodes["s2"].c.requestConfirmation()
	require.ErrorIs(t, err, errNotLeader)
}
