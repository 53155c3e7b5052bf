package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A follower never truncates a committed entry, whatever a (buggy or
// malicious) leader asks: it acknowledges only its commit index.
func TestFollowerNeverTruncatesCommitted(t *testing.T) {
	net := electedNet(t, nil)
	net.propose("s1", "x")
	net.tickAll() // followers learn the commit index
	f := net.nodes["s2"].c
	committed := f.log.committed
	require.GreaterOrEqual(t, committed, uint64(3))
	before := termsOf(f.log.entries)
	f.step(&Message{Type: MsgAppend, From: "s1", To: "s2", Term: f.term, Index: 1, LogTerm: 1,
		Entries: []Log{{Index: 2, Term: f.term + 7, Type: LogNoop}}, Commit: committed})
	require.Equal(t, before, termsOf(f.log.entries), "the log is unchanged")
	rd := f.ready()
	require.Len(t, rd.msgsAfterAppend, 1)
	require.Equal(t, committed, rd.msgsAfterAppend[0].Index)
}

// Stale and duplicate answers do not move a follower's progress backwards.
func TestProgressIgnoresStaleAnswers(t *testing.T) {
	p := newProgress(11, 4, 0)
	require.True(t, p.rejected(10, 5), "the probe at 10 was rejected: move back")
	require.Equal(t, uint64(6), p.next)
	require.False(t, p.rejected(10, 3), "a duplicate of that rejection is stale")
	require.Equal(t, uint64(6), p.next)

	require.True(t, p.acked(8))
	p.becomeReplicate()
	require.False(t, p.acked(7), "an older acknowledgement changes nothing")
	require.Equal(t, uint64(8), p.match)
	require.False(t, p.rejected(8, 2), "a rejection at or below match is stale")
	require.Equal(t, uint64(8), p.match)
	require.Equal(t, uint64(9), p.next)

	// The window bounds appends in flight and frees on acknowledgement.
	for i := uint64(0); i < 4; i++ {
		require.False(t, p.paused())
		p.sent(9+i, 10, 1)
	}
	require.True(t, p.paused(), "window of 4 full")
	require.True(t, p.acked(10))
	require.False(t, p.paused(), "acknowledging frees the window")
}

// An entry is applied only once it is committed and durable locally, and
// a follower acknowledges entries only once they are durable.
func TestApplyAndAckWaitForDurability(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"].c
	last := f.log.lastIndex()
	f.step(&Message{Type: MsgAppend, From: "s1", To: "s2", Term: f.term, Index: last, LogTerm: f.log.lastTerm(),
		Entries: []Log{{Index: last + 1, Term: f.term, Type: LogCommand, Data: []byte("x")}}, Commit: last + 1})
	rd := f.ready()
	require.Len(t, rd.entries, 1, "the entry goes to the persister")
	require.Empty(t, rd.msgs, "no acknowledgement before the entry is durable")
	require.Len(t, rd.msgsAfterAppend, 1)
	for _, e := range rd.apply {
		require.Less(t, e.Index, last+1, "committed but not durable: not applied")
	}
	f.persisted(last+1, f.term)
	rd = f.ready()
	require.Len(t, rd.apply, 1)
	require.Equal(t, last+1, rd.apply[0].Index)
}
