package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCoreElectsOneLeader(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		net := newCoreNet(t, 3, seed, nil)
		for i := 0; i < 100 && len(net.leaders()) == 0; i++ {
			net.tickAll()
		}
		require.Len(t, net.leaders(), 1, "seed %d", seed)
		leader := net.leaders()[0]
		net.propose(leader, "x")
		net.tickAll() // the heartbeat carries the commit index to followers
		for _, id := range net.ids {
			require.Equal(t, []string{"x"}, net.commands(id), "seed %d server %s", seed, id)
		}
	}
}

// Entries handed out — to the transport in a message, to the persister in
// a job — are read later on other goroutines; a truncation must not
// rewrite them in place (the simulator's seed 3263).
func TestTruncationLeavesHandedOutEntriesAlone(t *testing.T) {
	l := newRaftLog(0, 0, nil)
	l.append(Log{Index: 1, Term: 1}, Log{Index: 2, Term: 1}, Log{Index: 3, Term: 1})
	sent := l.slice(2, 4, 0, 0) // entries 2 and 3, as a message would carry them
	persisting := l.unpersisted()
	l.append(Log{Index: 2, Term: 2}, Log{Index: 3, Term: 2})
	require.Equal(t, []uint64{1, 1}, []uint64{sent[0].Term, sent[1].Term}, "a message's entries changed under it")
	require.Equal(t, uint64(1), persisting[2].Term, "a persister job's entries changed under it")
	tm, _ := l.term(3)
	require.Equal(t, uint64(2), tm)
}
