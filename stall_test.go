package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Core tests of the disk-stall rules (stall.go). The harness makes every
// write durable at once, so a stalled server here could win elections if
// the core let it campaign: only the rules stop it.

// spy records, per sender and type, the messages the net delivers, and
// drops those drop says (nil: none).
type spy struct {
	sent map[ServerID]map[MessageType]int
}

func watch(net *coreNet, drop func(m *Message) bool) *spy {
	s := &spy{sent: map[ServerID]map[MessageType]int{}}
	net.drop = func(m *Message) bool {
		if s.sent[m.From] == nil {
			s.sent[m.From] = map[MessageType]int{}
		}
		s.sent[m.From][m.Type]++
		return drop != nil && drop(m)
	}
	return s
}

func (s *spy) count(from ServerID, types ...MessageType) int {
	n := 0
	for _, mt := range types {
		n += s.sent[from][mt]
	}
	return n
}

func (s *spy) reset() { clear(s.sent) }

// campaigned reports whether id asked for a pre-vote or a vote.
func (s *spy) campaigned(id ServerID) bool { return s.count(id, MsgPreVote, MsgVote) > 0 }

// A stalled leader steps down at once, stops heartbeating, hands over to a
// follower that holds its whole log, and never leads again while stalled;
// the others elect a leader and commit. With the rule broken
// (IgnoreDiskStall) it goes on leading.
func TestDiskStallLeaderStepsDown(t *testing.T) {
	run := func(bug bool) (stillLeads bool) {
		net := electedNet(t, func(cfg *coreConfig) { cfg.bugs.IgnoreDiskStall = bug })
		net.propose("s1", "a")
		net.tickAll() // every follower acknowledged everything
		l := net.nodes["s1"].c
		term := l.term
		sp := watch(net, nil)
		l.setDiskStalled(true)
		if bug {
			for i := 0; i < 50; i++ {
				net.tickAll()
			}
			return l.role == roleLeader && l.term == term && sp.count("s1", MsgHeartbeat) > 0
		}
		require.Equal(t, roleFollower, l.role, "steps down at once")
		require.Empty(t, l.lead)
		net.settle()
		require.Equal(t, 1, sp.count("s1", MsgTimeoutNow), "hands over to a caught-up voter")
		leaders := net.leaders()
		require.Len(t, leaders, 1, "the handover elects a leader at once")
		require.NotEqual(t, ServerID("s1"), leaders[0])
		require.Greater(t, net.nodes[leaders[0]].c.term, term)
		sp.reset()
		for i := 0; i < 100; i++ { // ten election timeouts
			net.tickAll()
			require.NotEqual(t, roleLeader, l.role, "a stalled server never leads")
		}
		require.Zero(t, sp.count("s1", MsgHeartbeat, MsgAppend, MsgPreVote, MsgVote, MsgTimeoutNow), "no heartbeats, no campaign")
		net.propose(leaders[0], "b")
		require.Equal(t, []string{"a", "b"}, net.commands(leaders[0]), "the new leader commits")
		return false
	}
	require.False(t, run(false))
	require.True(t, run(true), "control: with the rule broken the stalled leader goes on leading")
}

// Without a caught-up follower the stalled leader steps down without a
// handover; the others elect a leader once their timers run out, although
// the stalled server has the longest log and would win an election.
func TestDiskStallLeaderStepsDownWithoutHandover(t *testing.T) {
	net := electedNet(t, nil)
	l := net.nodes["s1"].c
	net.drop = func(m *Message) bool { return m.From == "s1" && m.Type == MsgAppend }
	net.propose("s1", "lost") // only the leader holds it
	sp := watch(net, nil)
	l.setDiskStalled(true)
	net.settle()
	require.Equal(t, roleFollower, l.role)
	require.Zero(t, sp.count("s1", MsgTimeoutNow), "no follower holds the whole log")
	for i := 0; i < 60 && len(net.leaders()) == 0; i++ {
		net.tickAll()
		require.NotEqual(t, roleLeader, l.role)
	}
	require.Len(t, net.leaders(), 1, "the others elect a leader within a few election timeouts")
	require.False(t, sp.campaigned("s1"))
}

// A stalled follower does not campaign when its election timer runs out,
// and ignores TimeoutNow; it still grants pre-votes, which need no write.
// Each check has a control with the disk working.
func TestDiskStallFollowerDoesNotCampaign(t *testing.T) {
	for _, stalled := range []bool{true, false} {
		net := electedNet(t, nil)
		f := net.nodes["s2"].c
		// No leader, so s2's timer runs out; and s2 cannot win.
		net.nodes["s1"].down = true
		sp := watch(net, func(m *Message) bool { return m.From == "s2" })
		f.setDiskStalled(stalled)
		for i := 0; i < 30; i++ { // three election timeouts
			f.tick()
			net.settle()
		}
		require.Equal(t, !stalled, sp.campaigned("s2"), "stalled %v: campaigns on election timeout", stalled)
		if stalled {
			require.Equal(t, roleFollower, f.role)
		}

		net = electedNet(t, nil)
		f = net.nodes["s2"].c
		f.setDiskStalled(stalled)
		term := f.term
		f.step(&Message{Type: MsgTimeoutNow, From: "s1", To: "s2", Term: term})
		rd := f.ready()
		asked := 0
		for _, m := range rd.msgs {
			if m.Type == MsgVote {
				asked++
			}
		}
		if stalled {
			require.Equal(t, roleFollower, f.role, "TimeoutNow ignored")
			require.Equal(t, term, f.term)
			require.Zero(t, asked)
		} else {
			require.Equal(t, roleCandidate, f.role, "control: TimeoutNow starts an election")
			require.Equal(t, 2, asked)
		}
	}

	// Pre-votes are granted while stalled.
	net := electedNet(t, nil)
	f := net.nodes["s2"].c
	f.setDiskStalled(true)
	f.becomeFollower(f.term, "") // no live leader known
	f.step(&Message{Type: MsgPreVote, From: "s3", To: "s2", Term: f.term + 1, Index: f.log.lastIndex(), LogTerm: f.log.lastTerm()})
	rd := f.ready()
	require.Len(t, rd.msgs, 1)
	require.Equal(t, MsgPreVoteResp, rd.msgs[0].Type)
	require.False(t, rd.msgs[0].Reject, "a stalled server still grants pre-votes")
}

// A pre-candidate or candidate whose disk stalls gives up at once: it
// could win, and then lead without a disk.
func TestDiskStallCandidateGivesUp(t *testing.T) {
	for _, kind := range []campaignKind{campaignPreElection, campaignElection} {
		net := newCoreNet(t, 3, 7, nil)
		c := net.nodes["s1"].c
		c.campaign(kind)
		require.NotEqual(t, roleFollower, c.role)
		c.setDiskStalled(true)
		require.Equal(t, roleFollower, c.role)
		net.settle() // the votes come back
		require.Empty(t, net.leaders())
	}
}

// After a stall clears, the server waits diskHoldTicks with a working disk
// before it campaigns; a new stall restarts the wait.
func TestDiskStallHoldAfterRecovery(t *testing.T) {
	const hold = 25
	net := electedNet(t, func(cfg *coreConfig) { cfg.diskHoldTicks = hold })
	f := net.nodes["s2"].c
	net.nodes["s1"].down = true
	sp := watch(net, func(m *Message) bool { return m.From == "s2" })
	ticks := func(n int) {
		for i := 0; i < n; i++ {
			f.tick()
			net.settle()
		}
	}
	f.setDiskStalled(true)
	ticks(40) // the election timer has long run out
	require.False(t, sp.campaigned("s2"))

	f.setDiskStalled(false)
	ticks(10)
	f.setDiskStalled(true) // stalls again within the hold
	ticks(40)
	f.setDiskStalled(false)
	ticks(hold - 1)
	require.False(t, sp.campaigned("s2"), "still holding: the hold restarted with the new stall")
	ticks(1)
	require.True(t, sp.campaigned("s2"), "campaigns once the hold is over")
}
