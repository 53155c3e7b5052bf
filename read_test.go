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
	require.NoError(t, l.requestRead(1, readIndex))
	require.NoError(t, l.requestRead(2, readVerify))
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

	require.ErrorIs(t, net.nodes["s2"].c.requestRead(1, readIndex), errNotLeader)
}

// A leader that loses leadership fails the reads it holds instead of
// answering them later.
func TestReadsFailOnLeadershipLoss(t *testing.T) {
	net := electedNet(t, nil)
	nd := net.nodes["s1"]
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	require.NoError(t, nd.c.requestRead(7, readIndex))
	net.settle()
	require.Empty(t, nd.reads, "no quorum answered: the read waits")
	nd.c.step(&Message{Type: MsgHeartbeat, From: "s2", To: "s1", Term: nd.c.term + 1})
	net.process("s1")
	require.Equal(t, []readResult{{id: 7, err: errNotLeader}}, nd.reads)
}

// leaseNet is electedNet with lease reads on (5 ticks; electionTicks is 10).
// The voters' start hold is cleared so that the election runs at once.
func leaseNet(t *testing.T, tweak func(*coreConfig)) *coreNet {
	net := newCoreNet(t, 3, 42, func(cfg *coreConfig) {
		cfg.leaseReadTicks = 5
		if tweak != nil {
			tweak(cfg)
		}
	})
	for _, nd := range net.nodes {
		require.Equal(t, nd.c.cfg.checkQuorum, nd.c.startHold == 10, "a server starts holding its vote")
		nd.c.startHold = 0
	}
	net.elect("s1")
	require.Equal(t, []ServerID{"s1"}, net.leaders())
	net.tickAll() // a heartbeat round confirms the leader
	return net
}

// A leader answers lease reads at once, without a message, while a quorum
// confirmed it within leaseReadTicks; after that, a lease read waits for a
// round like ReadIndex.
func TestLeaseReads(t *testing.T) {
	net := leaseNet(t, nil)
	nd := net.nodes["s1"]
	l := nd.c
	require.True(t, l.committedInTerm())
	require.True(t, l.leaseHolds())
	require.NoError(t, l.requestRead(1, readLease))
	rd := l.ready()
	require.Empty(t, rd.msgs, "no round trip")
	require.Equal(t, []readResult{{id: 1, index: l.log.committed}}, rd.reads)

	// Cut off: the lease lapses after leaseReadTicks ticks, and a lease
	// read then waits for a round that never confirms.
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	for i := 0; i < 4; i++ {
		net.tickAll()
	}
	require.True(t, l.leaseHolds(), "4 ticks into a 5-tick lease")
	net.tickAll()
	require.False(t, l.leaseHolds(), "the lease lapsed")
	require.NoError(t, l.requestRead(2, readLease))
	net.settle()
	require.Empty(t, nd.reads)
	net.drop = nil
	net.tickAll()
	require.Equal(t, []readResult{{id: 2, index: l.log.committed}}, nd.reads, "a round answered it")
	require.True(t, l.leaseHolds(), "and renewed the lease")
}

// Without CheckQuorum no lease holds (LeaseWithoutCheckQuorum plants the
// bug); after MsgTimeoutNow none holds for the rest of the term.
func TestLeaseNeedsCheckQuorum(t *testing.T) {
	net := leaseNet(t, func(cfg *coreConfig) { cfg.checkQuorum = false })
	require.False(t, net.nodes["s1"].c.leaseHolds())
	net = leaseNet(t, func(cfg *coreConfig) { cfg.checkQuorum = false; cfg.bugs.LeaseWithoutCheckQuorum = true })
	require.True(t, net.nodes["s1"].c.leaseHolds(), "the planted bug")

	net = leaseNet(t, nil)
	l := net.nodes["s1"].c
	require.True(t, l.leaseHolds())
	_, _, err := l.transferLeadership("s2")
	require.NoError(t, err)
	net.drop = func(m *Message) bool { return m.Type == MsgTimeoutNow }
	net.settle()
	require.True(t, l.reads.noLease, "TimeoutNow sent")
	require.False(t, l.leaseHolds())
}

// A restarted server refuses votes for an election timeout: it may have
// acknowledged a round a leader's lease rests on.
func TestStartHold(t *testing.T) {
	net := leaseNet(t, nil)
	net.restart("s3")
	v := net.nodes["s3"].c
	require.Equal(t, 10, v.startHold)
	v.step(&Message{Type: MsgVote, From: "s2", To: "s3", Term: v.term + 1, Index: v.log.lastIndex(), LogTerm: v.log.lastTerm()})
	require.Empty(t, v.ready().msgs, "no vote, no term change")
	for i := 0; i < 10; i++ {
		v.tick()
	}
	require.Zero(t, v.startHold)
}

// Follower reads: a follower asks the leader, which answers after a round;
// they fail when no answer comes within electionTicks or the leader
// changes.
func TestFollowerReads(t *testing.T) {
	net := leaseNet(t, nil)
	f := net.nodes["s2"]
	require.NoError(t, f.c.requestRead(1, readAny))
	net.settle()
	require.Equal(t, []readResult{{id: 1, index: net.nodes["s1"].c.log.committed}}, f.reads)
	require.ErrorIs(t, f.c.requestRead(2, readIndex), errNotLeader, "ReadIndex is the leader's")

	// The leader never answers: the read fails after electionTicks.
	f.reads = nil
	net.drop = func(m *Message) bool { return m.Type == MsgReadIndex }
	require.NoError(t, f.c.requestRead(3, readAny))
	for i := 0; i < 9; i++ {
		f.c.tick()
	}
	net.settle()
	require.Empty(t, f.reads)
	f.c.tick()
	net.settle()
	require.Equal(t, []readResult{{id: 3, err: errReadFailed}}, f.reads)

	// The follower moves on to a newer term: the read fails at once.
	f.reads = nil
	require.NoError(t, f.c.requestRead(4, readAny))
	f.c.step(&Message{Type: MsgHeartbeat, From: "s3", To: "s2", Term: f.c.term + 1})
	net.process("s2")
	require.Equal(t, []readResult{{id: 4, err: errReadFailed}}, f.reads)

	// A server that does not lead refuses a MsgReadIndex.
	net.drop = nil
	f.reads = nil
	s3 := net.nodes["s3"].c
	s3.step(&Message{Type: MsgReadIndex, From: "s2", To: "s3", Term: s3.term, Context: []byte{0, 0, 0, 0, 0, 0, 0, 5}})
	rd := s3.ready()
	require.Len(t, rd.msgs, 1)
	require.True(t, rd.msgs[0].Reject)
}

// Why a lease needs CheckQuorum: in a bridge partition (s1 leads, s3
// cannot reach it, both reach s2), s3's election timer fires while s2 still
// hears s1. With CheckQuorum, s2's leader stickiness refuses s3 and s1's
// lease stays sound; without it s2 votes for s3, which commits in a new
// term while s1 — until its next heartbeat exchange — still holds its
// lease: the planted bug LeaseWithoutCheckQuorum serves a stale read there.
func TestLeaseBridgePartition(t *testing.T) {
	for _, tc := range []struct {
		name        string
		checkQuorum bool
		bug         bool
		stale       bool
	}{
		{"CheckQuorum", true, false, false},
		{"no CheckQuorum", false, false, false},
		{"no CheckQuorum, planted bug", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := leaseNet(t, func(cfg *coreConfig) {
				cfg.checkQuorum, cfg.preVote = tc.checkQuorum, false
				cfg.bugs.LeaseWithoutCheckQuorum = tc.bug
			})
			l := net.nodes["s1"]
			net.drop = func(m *Message) bool {
				return m.From == "s1" && m.To == "s3" || m.From == "s3" && m.To == "s1"
			}
			// Tick until s3 campaigns; stop as soon as it leads.
			for i := 0; i < 40 && net.nodes["s3"].c.role != roleLeader; i++ {
				net.tickAll()
			}
			if tc.checkQuorum {
				require.NotEqual(t, roleLeader, net.nodes["s3"].c.role, "stickiness refuses s3")
			} else {
				require.Equal(t, roleLeader, net.nodes["s3"].c.role, "without stickiness s2 votes for s3")
			}
			newer := net.nodes["s3"].c.log.committed
			l.reads = nil
			if tc.stale {
				require.Equal(t, roleLeader, l.c.role, "s1 has not heard of the new term yet")
			}
			if l.c.role != roleLeader {
				return // s1 already learnt of the new term
			}
			require.NoError(t, l.c.requestRead(9, readLease))
			net.process("s1")
			served := len(l.reads) == 1 && l.reads[0].err == nil
			if tc.stale {
				require.True(t, served)
				require.Less(t, l.reads[0].index, newer, "a stale read: s3 committed past it")
			} else if served {
				require.GreaterOrEqual(t, l.reads[0].index, newer)
			}
		})
	}
}

// A lease is a quorum of the configuration it was confirmed in, which a
// quorum of the next may not overlap: a membership change ends it until a
// round in the new configuration confirms the leader.
func TestLeaseEndsWithConfigurationChange(t *testing.T) {
	net := leaseNet(t, nil)
	l := net.nodes["s1"].c
	require.True(t, l.leaseHolds())
	next := bootstrapConfig(serverIDs(3))
	next.Servers[2].Suffrage = Nonvoter
	_, err := l.changeConfig(next)
	require.NoError(t, err)
	require.False(t, l.leaseHolds(), "the new configuration's quorum has not confirmed this leader")
	net.tickAll()
	require.True(t, l.leaseHolds(), "a round in the new configuration renews it")
}
