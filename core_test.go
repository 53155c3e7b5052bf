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
