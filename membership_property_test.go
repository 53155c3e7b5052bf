package raft

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPropertyMembershipRandomFaults is TestPropertyRandomFaults with
// membership changes and leadership transfers: six servers (three
// bootstrapped, three fresh), and on top of random delivery order, ticks,
// proposals, loss, partitions and crashes, leaders are asked for random
// configurations (any subset of the six, random suffrage) and random
// leadership transfers. After every step the safety checker looks for two
// leaders in a term, servers applying different entries at an index, and a
// leader missing a committed entry. At the end everything heals and the
// members of the final configuration must converge.
func TestPropertyMembershipRandomFaults(t *testing.T) {
	seeds := 80
	if testing.Short() {
		seeds = 20
	}
	var changes, transfers int
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			st, err := runMembershipFaults(t, seed, plantedBugs{})
			require.NoError(t, err, "seed %d", seed)
			changes += st.changes
			transfers += st.transfers
		})
	}
	// Changes and transfers must actually happen, not just be refused.
	// Changes and transfers must actually complete, not just be refused.
	require.Greater(t, changes, seeds/3, "configuration changes completed over all seeds")
	require.Greater(t, transfers, seeds/5, "leadership transfers completed over all seeds")
	t.Logf("%d changes and %d transfers completed over %d seeds", changes, transfers, seeds)
}

// TestPropertyMembershipCatchesPlantedBug: with the planted bug (a single
// majority while joint), some seed of the random membership run must break
// safety.
func TestPropertyMembershipCatchesPlantedBug(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		if _, err := runMembershipFaults(t, seed, plantedBugs{SingleMajorityWhileJoint: true}); err != nil {
			t.Logf("seed %d caught it: %v", seed, err)
			return
		}
	}
	t.Fatal("no seed caught the planted bug")
}

// TestPropertyMembershipReplays: a seed of the membership run replays
// exactly (membership.go and transfer.go add no nondeterminism).
func TestPropertyMembershipReplays(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		a, err := runMembershipFaults(t, seed, plantedBugs{})
		require.NoError(t, err)
		b, err := runMembershipFaults(t, seed, plantedBugs{})
		require.NoError(t, err)
		require.Equal(t, a, b, "seed %d", seed)
	}
}

type membershipStats struct {
	changes, transfers int
	trace              uint64 // hash of the randomly delivered messages
}

func runMembershipFaults(t *testing.T, seed uint64, bugs plantedBugs) (membershipStats, error) {
	var st membershipStats
	net := newGrowNet(t, 3, 3, seed, func(c *coreConfig) {
		c.bugs = bugs
		c.promotionStableTicks, c.promotionMaxLag = 2, 5
	})
	all := net.ids
	rng := net.rng
	dropRate := rng.Float64() * 0.2
	side := map[ServerID]int{}
	net.drop = func(m *Message) bool {
		return side[m.From] != side[m.To] || rng.Float64() < dropRate
	}
	chk := newSafetyChecker()
	type pending struct {
		c   *core
		seq uint64
	}
	var changes, transfers []pending
	settleStats := func() {
		for i := 0; i < len(changes); i++ {
			if done, err := changes[i].c.changeStatus(changes[i].seq); done {
				if err == nil {
					st.changes++
				}
				changes = append(changes[:i], changes[i+1:]...)
				i--
			}
		}
		for i := 0; i < len(transfers); i++ {
			if done, err := transfers[i].c.transferStatus(transfers[i].seq); done {
				if err == nil {
					st.transfers++
				}
				transfers = append(transfers[:i], transfers[i+1:]...)
				i--
			}
		}
	}
	proposals := 0
	for step := 0; step < 5000; step++ {
		switch r := rng.IntN(1000); {
		case r < 450 && len(net.queue) > 0:
			i := rng.IntN(len(net.queue))
			net.queue[0], net.queue[i] = net.queue[i], net.queue[0]
			net.deliverOne()
		case r < 800:
			id := all[rng.IntN(len(all))]
			if !net.nodes[id].down {
				net.nodes[id].c.tick()
				net.process(id)
			}
		case r < 970:
			for _, id := range net.leaders() {
				proposals++
				if _, err := net.nodes[id].c.propose([]Log{{Type: LogCommand, Data: []byte(fmt.Sprintf("p%d", proposals))}}); err == nil {
					net.process(id)
				}
			}
		case r < 985:
			// A random configuration: each server out, nonvoter or voter.
			for _, id := range net.leaders() {
				var target Configuration
				for _, s := range all {
					switch rng.IntN(3) {
					case 1:
						target.Servers = append(target.Servers, Server{Suffrage: Nonvoter, ID: s, Address: ServerAddress(s)})
					case 2:
						target.Servers = append(target.Servers, Server{Suffrage: Voter, ID: s, Address: ServerAddress(s)})
					}
				}
				c := net.nodes[id].c
				if ch := c.member.change; ch != nil && rng.IntN(2) == 0 {
					c.abortChange(ch.seq) // the caller gave up waiting for a promotion
				}
				if seq, err := c.changeConfig(target); err == nil {
					changes = append(changes, pending{c, seq})
					net.process(id)
				}
			}
		case r < 993:
			for _, id := range net.leaders() {
				to := ServerID("")
				if rng.IntN(2) == 0 {
					to = all[rng.IntN(len(all))]
				}
				c := net.nodes[id].c
				if seq, _, err := c.transferLeadership(to); err == nil {
					transfers = append(transfers, pending{c, seq})
					net.process(id)
				}
			}
		default:
			switch rng.IntN(3) {
			case 0:
				id := all[rng.IntN(len(all))]
				if net.nodes[id].down {
					net.restart(id)
				} else {
					net.nodes[id].down = true
				}
			case 1:
				for _, id := range all {
					side[id] = rng.IntN(2)
				}
			default:
				clear(side)
			}
		}
		settleStats()
		if err := chk.check(net); err != nil {
			return st, fmt.Errorf("step %d: %w", step, err)
		}
	}
	// Liveness: heal, restart everyone; the members of the final
	// configuration converge.
	dropRate = 0
	clear(side)
	for _, id := range all {
		if net.nodes[id].down {
			net.restart(id)
		}
	}
	for i := 0; ; i++ {
		if i > 1000 {
			return st, fmt.Errorf("no single leader after healing: %v", net.leaders())
		}
		if err := tickChecked(net, chk); err != nil {
			return st, fmt.Errorf("healing: %w", err)
		}
		settleStats()
		if ls := net.leaders(); len(ls) == 1 {
			lc := net.nodes[ls[0]].c
			latest := lc.confs.latest()
			if !latest.conf.Joint() && latest.index <= lc.log.committed && lc.committedInTerm() {
				break
			}
		}
	}
	net.propose(net.leaders()[0], "final")
	converged := func() error {
		ls := net.leaders()
		if len(ls) != 1 {
			return fmt.Errorf("leaders after healing: %v", ls)
		}
		l := ls[0]
		lc := net.nodes[l].c
		conf := lc.confs.latest().conf
		if conf.Joint() || !lc.committedInTerm() {
			return fmt.Errorf("%s: not settled: joint %v", l, conf.Joint())
		}
		for _, id := range conf.memberIDs() {
			if got := net.nodes[id].c.log.applied; got != lc.log.committed {
				return fmt.Errorf("%s applied %d, leader %s committed %d", id, got, l, lc.log.committed)
			}
		}
		return nil
	}
	for range 100 {
		if err := tickChecked(net, chk); err != nil {
			return st, err
		}
		if converged() == nil {
			break
		}
	}
	if err := converged(); err != nil {
		return st, err
	}
	st.trace = net.trace.Sum64()
	return st, nil
}
