package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQuorumMarginFallsAsVotersGoSilent: a leader of five voters has a
// margin of 2; each voter that stops answering for an election timeout
// takes one off, and below a quorum the margin is negative (just before
// CheckQuorum deposes it).
func TestQuorumMarginFallsAsVotersGoSilent(t *testing.T) {
	net := newCoreNet(t, 5, 1, func(c *coreConfig) { c.checkQuorum = false })
	net.elect("s1")
	l := net.nodes["s1"].c
	require.Equal(t, 2, l.quorumMargin())
	for _, id := range []ServerID{"s2", "s3", "s4", "s5"} {
		require.Zero(t, net.nodes[id].c.quorumMargin(), "a follower reports 0")
	}

	silent := map[ServerID]bool{}
	net.drop = func(m *Message) bool { return silent[m.From] || silent[m.To] }
	for i, id := range []ServerID{"s2", "s3", "s4"} {
		silent[id] = true
		for range l.cfg.electionTicks {
			net.tickAll()
			net.settle()
		}
		require.Equal(t, 1-i, l.quorumMargin(), "%d voters silent", i+1)
	}
	reports := l.peerReports()
	require.Len(t, reports, 4)
	for _, pr := range reports {
		if silent[pr.id] {
			require.GreaterOrEqual(t, pr.silentTicks, l.cfg.electionTicks, pr.id)
		} else {
			require.Less(t, pr.silentTicks, l.cfg.electionTicks, pr.id)
		}
	}
}

// TestCoreCountsElectionsAndReads: the core counts its campaigns, wins and
// reads as they happen.
func TestCoreCountsElectionsAndReads(t *testing.T) {
	net := newCoreNet(t, 3, 2, nil)
	l := net.nodes["s1"].c
	l.campaign(campaignPreElection)
	net.settle()
	require.Equal(t, roleLeader, l.role)
	require.EqualValues(t, 1, l.counts.preVotes)
	require.EqualValues(t, 1, l.counts.elections)
	require.EqualValues(t, 1, l.counts.electionsWon)
	require.NoError(t, l.requestRead(1, readIndex))
	net.settle()
	require.EqualValues(t, 1, l.counts.readIndexReads)
	require.EqualValues(t, 1, l.counts.readRounds)
}
