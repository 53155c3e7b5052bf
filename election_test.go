package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// electedNet returns a 3-server net whose first server leads.
func electedNet(t *testing.T, tweak func(*coreConfig)) *coreNet {
	net := newCoreNet(t, 3, 42, tweak)
	net.elect(net.ids[0])
	require.Equal(t, []ServerID{net.ids[0]}, net.leaders())
	return net
}

// §5.2: a server grants at most one vote per term, first come first served.
func TestOneVotePerTerm(t *testing.T) {
	net := newCoreNet(t, 3, 1, nil)
	voter := net.nodes["s3"].c
	ask := func(from ServerID) bool {
		voter.step(&Message{Type: MsgVote, From: from, To: "s3", Term: 5, Index: 1, LogTerm: 1})
		rd := voter.ready()
		require.Len(t, rd.msgs, 1)
		return !rd.msgs[0].Reject
	}
	require.True(t, ask("s1"))
	require.False(t, ask("s2"), "a second candidate in the same term")
	require.True(t, ask("s1"), "the same candidate asking again")
	require.Equal(t, hardState{Term: 5, Vote: "s1"}, hardState{Term: voter.term, Vote: voter.vote})
}

// §5.4.1: a vote goes only to a candidate whose log is at least as up to
// date.
func TestVoteRequiresUpToDateLog(t *testing.T) {
	cases := []struct {
		index, term uint64
		grant       bool
	}{
		{index: 3, term: 2, grant: true},  // same
		{index: 4, term: 2, grant: true},  // longer
		{index: 1, term: 3, grant: true},  // shorter but newer term
		{index: 2, term: 2, grant: false}, // shorter
		{index: 9, term: 1, grant: false}, // longer but older term
	}
	for _, tc := range cases {
		net := newCoreNet(t, 3, 1, nil)
		nd := net.nodes["s3"]
		nd.durable = logWithTerms(net.ids, 1, 2, 2)
		nd.hs = hardState{Term: 2}
		net.restart("s3")
		nd.c.step(&Message{Type: MsgVote, From: "s1", To: "s3", Term: 3, Index: tc.index, LogTerm: tc.term})
		rd := nd.c.ready()
		require.Len(t, rd.msgs, 1)
		require.Equal(t, tc.grant, !rd.msgs[0].Reject, "candidate log (%d, %d)", tc.index, tc.term)
		if tc.grant {
			require.NotNil(t, rd.hardState, "the vote is persisted before the answer leaves")
			require.Equal(t, ServerID("s1"), rd.hardState.Vote)
		}
	}
}

// Leader stickiness: a follower that hears from a live leader ignores a
// higher-term vote request and keeps its term.
func TestVoteIgnoredWhileLeaderAlive(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"].c
	term := f.term
	f.step(&Message{Type: MsgVote, From: "s3", To: "s2", Term: term + 5, Index: 100, LogTerm: 100})
	require.Equal(t, term, f.term)
	require.Empty(t, f.ready().msgs)
	// A leadership transfer is the exception.
	f.step(&Message{Type: MsgVote, From: "s3", To: "s2", Term: term + 5, Index: 100, LogTerm: 100, Transfer: true})
	require.Equal(t, term+5, f.term)
}

// Any message with a higher term turns a leader into a follower.
func TestHigherTermDeposesLeader(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	l.step(&Message{Type: MsgAppendResp, From: "s2", To: "s1", Term: l.term + 1})
	require.Equal(t, roleFollower, l.role)
}

// Stale-term messages are rejected with the newer term, and do not change
// the log.
func TestStaleTermAppendRejected(t *testing.T) {
	net := electedNet(t, nil)
	f := net.nodes["s2"].c
	last := f.log.lastIndex()
	f.step(&Message{Type: MsgAppend, From: "s3", To: "s2", Term: f.term - 1, Index: last, LogTerm: f.log.lastTerm(),
		Entries: []Log{{Index: last + 1, Term: f.term - 1}}})
	rd := f.ready()
	require.Equal(t, last, f.log.lastIndex())
	require.Len(t, rd.msgs, 1)
	require.True(t, rd.msgs[0].Reject)
	require.Equal(t, f.term, rd.msgs[0].Term)
}

// Scenario 8: a follower whose link keeps failing times out again and
// again; with PreVote its term never rises, so when it comes back the
// stable leader keeps leading. Without PreVote it would depose the leader.
func TestScenario8FlakyFollowerWithPreVote(t *testing.T) {
	for _, preVote := range []bool{true, false} {
		net := electedNet(t, func(c *coreConfig) { c.preVote = preVote })
		leader := net.nodes["s1"].c
		term := leader.term
		flaky := ServerID("s3")
		for round := 0; round < 5; round++ {
			net.drop = func(m *Message) bool { return m.From == flaky || m.To == flaky }
			for i := 0; i < 40; i++ {
				net.tickAll()
			}
			net.drop = nil
			for i := 0; i < 3; i++ {
				net.tickAll()
			}
		}
		if preVote {
			require.Equal(t, roleLeader, leader.role, "the stable leader keeps leading")
			require.Equal(t, term, leader.term, "no term inflation")
			require.Equal(t, term, net.nodes[flaky].c.term)
		} else {
			require.Greater(t, leader.term, term, "without PreVote the flaky server raises the term")
		}
	}
}

// CheckQuorum: a leader that hears from no quorum for an election timeout
// steps down.
func TestCheckQuorumStepsDown(t *testing.T) {
	net := electedNet(t, nil)
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	net.nodes["s2"].down, net.nodes["s3"].down = true, true
	for i := 0; i < 2*10+1; i++ {
		net.nodes["s1"].c.tick()
		net.settle()
	}
	require.Equal(t, roleFollower, net.nodes["s1"].c.role)
}

// Scenario 4: the leader dies after an entry committed but before the
// followers learned the commit index. The election restriction gives the
// new leader the entry, and it commits it.
func TestScenario4CommittedBeforeFollowersKnew(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	// Followers store x and acknowledge, but the leader's next messages
	// (which would carry the new commit index) are lost.
	idx, err := l.propose([]Log{{Type: LogCommand, Data: []byte("x")}})
	require.NoError(t, err)
	net.drop = func(m *Message) bool { return m.From == "s1" && (m.Type != MsgAppend || m.Commit >= idx) }
	net.settle()
	require.Equal(t, idx, l.log.committed, "x committed on the leader")
	require.Less(t, net.nodes["s2"].c.log.committed, idx)
	require.Less(t, net.nodes["s3"].c.log.committed, idx)
	require.Equal(t, []string{"x"}, net.commands("s1"))

	net.nodes["s1"].down = true
	net.drop = nil
	for len(net.leaders()) == 0 {
		net.tickAll()
	}
	for i := 0; i < 3; i++ {
		net.tickAll()
	}
	for _, id := range []ServerID{"s2", "s3"} {
		require.Equal(t, []string{"x"}, net.commands(id), "%s applied x once", id)
	}
}

// Figure 2: only a granted vote resets a follower's election timer. A
// candidate whose log is behind must not keep an up-to-date server from
// timing out, or stale candidates with fast clocks stop elections forever
// (the livelock of TestSimulatorRegressions, seed 394).
func TestRejectedVoteDoesNotResetTimer(t *testing.T) {
	net := newCoreNet(t, 3, 1, func(c *coreConfig) { c.preVote = false })
	v := net.nodes["s3"].c
	for i := 0; i < 5; i++ {
		v.tick()
	}
	require.Equal(t, 5, v.electionElapsed)
	// A stale log: the candidate has nothing, s3 has the bootstrap entry.
	v.step(&Message{Type: MsgVote, From: "s2", To: "s3", Term: v.term + 1})
	rd := v.ready()
	require.True(t, rd.msgs[0].Reject)
	require.Equal(t, 5, v.electionElapsed, "a rejected candidate reset the timer")

	v.step(&Message{Type: MsgVote, From: "s1", To: "s3", Term: v.term + 1, Index: 1, LogTerm: 1})
	rd = v.ready()
	require.False(t, rd.msgs[0].Reject)
	require.Equal(t, 0, v.electionElapsed, "a granted vote resets the timer")
}

// Figure 2: a vote request from an older term is refused with the current
// term, so that a candidate stuck in an old term learns it (the deadlock of
// TestSimulatorRegressions, seed 234).
func TestStaleVoteRequestAnsweredWithCurrentTerm(t *testing.T) {
	net := newCoreNet(t, 3, 1, nil)
	v := net.nodes["s3"].c
	v.step(&Message{Type: MsgHeartbeat, From: "s1", To: "s3", Term: 9})
	v.ready()
	v.step(&Message{Type: MsgVote, From: "s2", To: "s3", Term: 4, Index: 50, LogTerm: 4})
	rd := v.ready()
	require.Len(t, rd.msgs, 1)
	require.Equal(t, Message{Type: MsgVoteResp, From: "s3", To: "s2", Term: 9, Reject: true}, rd.msgs[0])

	cand := net.nodes["s2"].c
	cand.campaign(campaignElection)
	cand.ready()
	cand.step(&rd.msgs[0])
	require.Equal(t, uint64(9), cand.term, "the candidate learns the newer term")
	require.Equal(t, roleFollower, cand.role)
}

// A server that voted for itself and hears a rival of its term with a log
// at least as up to date steps down and waits an extra election timeout,
// so that the rival's next attempt comes first (TestSimulatorRegressions,
// seed 19). A rival with a worse log changes nothing.
func TestYieldToBetterCandidate(t *testing.T) {
	net := newCoreNet(t, 3, 1, func(c *coreConfig) { c.preVote = false })
	c := net.nodes["s2"].c
	c.campaign(campaignElection)
	c.ready()
	term := c.term
	c.step(&Message{Type: MsgVote, From: "s3", To: "s2", Term: term}) // an empty log: worse
	require.True(t, c.ready().msgs[0].Reject)
	require.Equal(t, roleCandidate, c.role, "a worse rival is no reason to yield")

	c.step(&Message{Type: MsgVote, From: "s3", To: "s2", Term: term, Index: 5, LogTerm: 1})
	require.True(t, c.ready().msgs[0].Reject, "the vote of this term is spent")
	require.Equal(t, roleFollower, c.role)
	require.Equal(t, ServerID("s2"), c.vote, "the vote stands")
	require.Equal(t, -c.cfg.electionTicks, c.electionElapsed, "an extra election timeout before campaigning again")
}

// A pre-candidate refused by a server already in a later term takes that
// term and asks again at once, for the term after it, instead of waiting a
// whole election timeout (TestSimulatorRegressions, seed 3283).
func TestPreVoteRetriesAtOnceAfterTermRefusal(t *testing.T) {
	net := newCoreNet(t, 3, 1, nil)
	c := net.nodes["s1"].c
	c.campaign(campaignPreElection)
	rd := c.ready()
	require.Equal(t, rolePreCandidate, c.role)
	require.Equal(t, uint64(2), rd.msgs[0].Term, "a pre-vote for term 2")
	c.step(&Message{Type: MsgPreVoteResp, From: "s2", To: "s1", Term: 5, Reject: true})
	rd = c.ready()
	require.Equal(t, rolePreCandidate, c.role)
	require.Equal(t, uint64(5), c.term)
	require.NotEmpty(t, rd.msgs)
	for _, m := range rd.msgs {
		require.Equal(t, MsgPreVote, m.Type)
		require.Equal(t, uint64(6), m.Term, "asked again, for the term after the refuser's")
	}
}
