package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Transfer to a named target that lags: proposals are refused while the
// leader brings it up to date, then it takes over in the next term.
func TestCoreTransferToTarget(t *testing.T) {
	net := newCoreNet(t, 3, 11, nil)
	net.elect("s1")
	l := net.nodes["s1"].c
	net.drop = func(m *Message) bool { return m.To == "s3" && m.Type == MsgAppend }
	net.propose("s1", "a")
	net.propose("s1", "b")
	require.Less(t, net.nodes["s3"].c.log.lastIndex(), l.log.lastIndex())
	term := l.term
	seq, to, err := l.transferLeadership("s3")
	require.NoError(t, err)
	require.Equal(t, ServerID("s3"), to)
	net.settle()
	require.Equal(t, roleLeader, l.role, "the target lags: no TimeoutNow yet")
	_, err = l.propose([]Log{{Type: LogCommand, Data: []byte("c")}})
	require.ErrorIs(t, err, ErrLeadershipTransferInProgress)
	_, _, err = l.transferLeadership("s2")
	require.ErrorIs(t, err, ErrLeadershipTransferInProgress)
	_, err = l.changeConfig(votersConf("s1", "s2"))
	require.ErrorIs(t, err, ErrLeadershipTransferInProgress)

	net.drop = nil
	// Heartbeat answers show s3's stream stalled; the leader resends.
	for i := 0; i < 8 && l.role == roleLeader; i++ {
		net.tickAll()
	}
	require.Equal(t, []ServerID{"s3"}, net.leaders())
	require.Equal(t, term+1, net.nodes["s3"].c.term)
	done, err := l.transferStatus(seq)
	require.True(t, done)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, net.commands("s3"))
}

// Without a target, the most up-to-date voter is chosen.
func TestCoreTransferToMostUpToDate(t *testing.T) {
	for _, lagging := range []ServerID{"s2", "s3"} {
		net := newCoreNet(t, 3, 12, nil)
		net.elect("s1")
		l := net.nodes["s1"].c
		net.drop = func(m *Message) bool { return m.To == lagging && m.Type == MsgAppend }
		net.propose("s1", "a")
		_, to, err := l.transferLeadership("")
		require.NoError(t, err)
		require.NotEqual(t, lagging, to)
		net.settle()
		require.Equal(t, []ServerID{to}, net.leaders())
	}
}

// A transfer to an unreachable target times out after an election timeout;
// the old leader resumes and takes proposals again.
func TestCoreTransferTimeout(t *testing.T) {
	net := newCoreNet(t, 3, 13, nil)
	net.elect("s1")
	l := net.nodes["s1"].c
	net.nodes["s3"].down = true
	term := l.term
	seq, _, err := l.transferLeadership("s3")
	require.NoError(t, err)
	for i := 0; i < l.cfg.electionTicks-1; i++ {
		net.tickAll()
		done, _ := l.transferStatus(seq)
		require.False(t, done)
		_, err := l.propose([]Log{{Type: LogCommand, Data: []byte("x")}})
		require.ErrorIs(t, err, ErrLeadershipTransferInProgress)
	}
	net.tickAll()
	done, err := l.transferStatus(seq)
	require.True(t, done)
	require.ErrorIs(t, err, ErrLeadershipTransferTimeout)
	require.Equal(t, roleLeader, l.role)
	require.Equal(t, term, l.term)
	net.propose("s1", "after")
	net.tickAll()
	require.Equal(t, []string{"after"}, net.commands("s2"))
}

func TestCoreTransferBadTargets(t *testing.T) {
	net := newGrowNet(t, 3, 1, 14, nil)
	net.elect("s1")
	l := net.nodes["s1"].c
	_, _, err := l.transferLeadership("s1")
	require.ErrorIs(t, err, ErrNoTransferTarget)
	_, _, err = l.transferLeadership("s4")
	require.ErrorIs(t, err, ErrNoTransferTarget)
	_, _, err = net.nodes["s2"].c.transferLeadership("s3")
	require.ErrorIs(t, err, errNotLeader)
}
