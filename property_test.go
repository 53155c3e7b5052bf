package raft

import (
	"flag"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

var propertySeeds = flag.Int("property.seeds", 150, "seeds for TestPropertyRandomFaults")

// TestPropertyRandomFaults runs 3- and 5-server clusters under random
// proposals, ticks with skew, message loss and reordering, partitions and
// crashes, from a seed each, and checks after every step that at most one
// leader exists per term and that every server applies the same entry at
// each index. Then it heals everything and requires convergence. A failure
// names the seed: -run 'TestPropertyRandomFaults/seed=N' replays it.
func TestPropertyRandomFaults(t *testing.T) {
	var committed, leaderChanges int
	for seed := uint64(1); seed <= uint64(*propertySeeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			c, l, _ := runRandomFaults(t, seed)
			committed += c
			leaderChanges += l
		})
	}
	// The faults must not be so heavy that nothing happens: on average a
	// seed commits dozens of entries under several leaders.
	require.Greater(t, committed, 30**propertySeeds, "entries committed over all seeds")
	require.Greater(t, leaderChanges, 2**propertySeeds, "terms with a leader over all seeds")
}

// runRandomFaults runs one seed and returns how many entries committed, how
// many terms had a leader, and the hash of the message trace.
func runRandomFaults(t *testing.T, seed uint64) (int, int, uint64) {
	n := 3 + 2*int(seed%2)
	net := newCoreNet(t, n, seed, nil)
	rng := net.rng
	dropRate := rng.Float64() * 0.3
	side := map[ServerID]int{}
	net.drop = func(m *Message) bool {
		return side[m.From] != side[m.To] || rng.Float64() < dropRate
	}
	leaderOf := map[uint64]ServerID{}
	applied := map[uint64]Log{}
	check := func() {
		for _, id := range net.ids {
			nd := net.nodes[id]
			if !nd.down && nd.c.role == roleLeader {
				if l, ok := leaderOf[nd.c.term]; ok && l != id {
					t.Fatalf("seed %d: two leaders in term %d: %s and %s", seed, nd.c.term, l, id)
				}
				leaderOf[nd.c.term] = id
			}
			for _, e := range nd.applied {
				if prev, ok := applied[e.Index]; ok && (prev.Term != e.Term || string(prev.Data) != string(e.Data)) {
					t.Fatalf("seed %d: %s applied (%d, %d) where another applied (%d, %d)", seed, id, e.Index, e.Term, prev.Index, prev.Term)
				}
				applied[e.Index] = e
			}
		}
	}
	proposals := 0
	for step := 0; step < 4000; step++ {
		switch r := rng.IntN(100); {
		case r < 45 && len(net.queue) > 0:
			// Deliver a random queued message: reordering.
			i := rng.IntN(len(net.queue))
			net.queue[0], net.queue[i] = net.queue[i], net.queue[0]
			net.deliverOne()
		case r < 80:
			id := net.ids[rng.IntN(n)]
			if !net.nodes[id].down {
				net.nodes[id].c.tick()
				net.process(id)
			}
		case r < 99:
			for _, id := range net.leaders() {
				proposals++
				_, err := net.nodes[id].c.propose([]Log{{Type: LogCommand, Data: []byte(fmt.Sprintf("p%d", proposals))}})
				require.NoError(t, err)
				net.process(id)
			}
		default:
			// Faults are rare enough that leaders get elected between them.
			switch rng.IntN(3) {
			case 0:
				id := net.ids[rng.IntN(n)]
				if net.nodes[id].down {
					net.restart(id)
				} else {
					net.nodes[id].down = true
				}
			case 1:
				for _, id := range net.ids {
					side[id] = rng.IntN(2)
				}
			default:
				clear(side)
			}
		}
		check()
	}
	// Liveness: heal, restart everyone, and all must converge.
	dropRate = 0
	clear(side)
	for _, id := range net.ids {
		if net.nodes[id].down {
			net.restart(id)
		}
	}
	for i := 0; i < 200 && len(net.leaders()) != 1; i++ {
		net.tickAll()
		check()
	}
	require.Len(t, net.leaders(), 1, "seed %d: no leader after healing", seed)
	l := net.leaders()[0]
	net.propose(l, "final")
	for i := 0; i < 10; i++ {
		net.tickAll()
		check()
	}
	want := net.nodes[l].c.log.committed
	for _, id := range net.ids {
		require.Equal(t, want, net.nodes[id].c.log.applied, "seed %d: %s did not converge", seed, id)
	}
	return len(applied), len(leaderOf), net.trace.Sum64()
}

// TestPropertyRunsReplay checks that a seed replays exactly: the same
// messages in the same order, byte for byte. Anything nondeterministic in
// the core (map iteration order reaching an output, a clock) breaks it.
func TestPropertyRunsReplay(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		_, _, first := runRandomFaults(t, seed)
		_, _, second := runRandomFaults(t, seed)
		require.Equal(t, first, second, "seed %d produced two different traces", seed)
	}
}
