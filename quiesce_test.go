package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// quietNet is leaseNet with quiescence after 5 idle ticks.
func quietNet(t *testing.T) *coreNet {
	return leaseNet(t, func(cfg *coreConfig) { cfg.quiesceTicks = 5 })
}

// tickUntilQuiet ticks until every server is quiet, or fails.
func tickUntilQuiet(t *testing.T, net *coreNet) {
	for i := 0; i < 50; i++ {
		if net.allQuiet() {
			return
		}
		net.tickAll()
	}
	for _, id := range net.ids {
		t.Logf("%s: role %v quiesced %v", id, net.nodes[id].c.role, net.nodes[id].c.quiesced)
	}
	t.Fatal("the group did not go quiet")
}

func (net *coreNet) allQuiet() bool {
	for _, id := range net.ids {
		if !net.nodes[id].c.quiesced {
			return false
		}
	}
	return true
}

// An idle group goes quiet: after that its servers send nothing however
// long they are ticked, and its state stands still. A proposal wakes the
// leader, the append wakes the followers, and the group goes quiet again.
func TestQuiesceIdleGroup(t *testing.T) {
	net := quietNet(t)
	net.propose("s1", "x")
	tickUntilQuiet(t, net)
	l := net.nodes["s1"].c
	term, commit := l.term, l.log.committed
	for i := 0; i < 100; i++ {
		for _, id := range net.ids {
			net.nodes[id].c.tick()
			rd := net.nodes[id].c.ready()
			require.True(t, rd.empty(), "tick %d: %s has output while quiet", i, id)
		}
	}
	require.Equal(t, []ServerID{"s1"}, net.leaders())
	require.Equal(t, [2]uint64{term, commit}, [2]uint64{l.term, l.log.committed})

	net.propose("s1", "y")
	for _, id := range net.ids {
		require.False(t, net.nodes[id].c.quiesced, "%s still quiet after a proposal", id)
	}
	net.tickAll() // the commit index reaches the followers
	for _, id := range net.ids {
		require.Equal(t, []string{"x", "y"}, net.commands(id), id)
	}
	tickUntilQuiet(t, net)
	require.Equal(t, term, l.term, "no election on the way")
}

// A follower not in step with the leader's log when MsgQuiesce comes — here
// one waiting on a forwarded proposal the leader never got — does not go
// quiet, and its answer wakes the leader.
func TestQuiesceRefusedWakesLeader(t *testing.T) {
	net := quietNet(t)
	refused := 0
	net.drop = func(m *Message) bool {
		if m.Type == MsgHeartbeatResp && m.Reject && m.From == "s3" {
			refused++
		}
		return m.Type == MsgPropose
	}
	f := net.nodes["s3"].c
	require.NoError(t, f.forwardProposals(1, []Log{{Type: LogCommand, Data: []byte("lost")}}))
	net.settle()
	l := net.nodes["s1"].c
	for i := 0; i < 50 && len(f.forwards) > 0; i++ { // until the forward times out
		net.tickAll()
		if len(f.forwards) > 0 {
			require.False(t, f.quiesced, "s3 went quiet with a proposal pending")
			require.False(t, l.quiesced, "the leader stayed quiet after s3 refused")
		}
	}
	require.Positive(t, refused, "s3 was never asked to go quiet")
}

// A quiet leader's ticks stop, so its lease ends as it goes quiet: a lease
// read then waits for a round of heartbeats, which wakes the group.
func TestQuietLeaderHoldsNoLease(t *testing.T) {
	net := quietNet(t)
	tickUntilQuiet(t, net)
	nd := net.nodes["s1"]
	require.False(t, nd.c.leaseHolds(), "a quiet leader still holds its lease")
	require.NoError(t, nd.c.requestRead(1, readLease))
	rd := nd.c.ready()
	require.Empty(t, rd.reads, "a lease read answered without a round")
	require.NotEmpty(t, rd.msgs, "no confirmation round")
	require.False(t, nd.c.quiesced)
	net.queue = append(net.queue, rd.msgs...)
	net.settle()
	require.Equal(t, []readResult{{id: 1, index: nd.c.log.committed}}, nd.reads, "the round answered it")
}

// A quiet leader drops the answers to its last heartbeats without waking:
// handling one could confirm a round after its clock stopped.
func TestQuietLeaderDropsLateAnswers(t *testing.T) {
	net := quietNet(t)
	tickUntilQuiet(t, net)
	l := net.nodes["s1"].c
	l.step(&Message{Type: MsgHeartbeatResp, From: "s2", To: "s1", Term: l.term})
	require.True(t, l.quiesced)
	rd := l.ready()
	require.True(t, rd.empty())
	l.step(&Message{Type: MsgAppendResp, From: "s2", To: "s1", Term: l.term, Index: l.log.lastIndex()})
	require.False(t, l.quiesced, "any other message wakes it")
}

// A follower woken because its leader went silent may vote at once; one
// woken by a message keeps to its leader for an election timeout, as after
// any heartbeat (leader stickiness).
func TestWakeReasons(t *testing.T) {
	net := quietNet(t)
	tickUntilQuiet(t, net)
	f2, f3 := net.nodes["s2"].c, net.nodes["s3"].c
	f2.wake(wakeLeaderLost)
	f3.wake(wakeActivity)
	require.False(t, f2.heardFromLeader(), "woken for a lost leader, it still defers to it")
	require.True(t, f3.heardFromLeader())

	// A woken leader must hear from a quorum anew (CheckQuorum): cut off,
	// it steps down within the lease timeout.
	l := net.nodes["s1"].c
	net.drop = func(m *Message) bool { return m.From == "s1" || m.To == "s1" }
	l.wake(wakePeerLost)
	for i := 0; i < l.cfg.leaseTicks && l.role == roleLeader; i++ {
		net.tickAll()
	}
	require.NotEqual(t, roleLeader, l.role, "a woken leader cut off from its quorum kept leading")
}
