package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// snapRun drives a 3-server coreNet for one seed with a tiny snapshot
// threshold, message loss and crashes, so that every seed compacts and
// installs snapshots, checking after every step: the snapshot invariants,
// that no server's applied index goes back (outside restarts), and that
// the applied commands of any two servers agree (one is a prefix of the
// other). It returns the first violation.
func snapRun(t *testing.T, seed uint64, bugs snapshotBugs) (installs int, err error) {
	net := newSnapNet(t, 3, seed, 2, func(c *coreConfig) { c.snapBugs = bugs })
	rng := rand.New(rand.NewPCG(seed, 99))
	var late []Message // snapshot chunks to deliver again, much later
	net.drop = func(m *Message) bool {
		if m.Type == MsgSnapshot && rng.IntN(2) == 0 {
			late = append(late, *m)
		}
		return rng.IntN(10) == 0
	}
	lastApplied := map[ServerID]uint64{}
	check := func() error {
		for _, id := range net.ids {
			nd := net.nodes[id]
			if err := nd.c.checkSnapshotInvariants(); err != nil {
				return err
			}
			if nd.c.log.applied < lastApplied[id] {
				return fmt.Errorf("%s: applied index went back from %d to %d", id, lastApplied[id], nd.c.log.applied)
			}
			lastApplied[id] = nd.c.log.applied
		}
		for i, a := range net.ids {
			for _, b := range net.ids[i+1:] {
				ca, cb := net.commands(a), net.commands(b)
				n := min(len(ca), len(cb))
				if !slices.Equal(ca[:n], cb[:n]) {
					return fmt.Errorf("%s and %s applied different commands", a, b)
				}
			}
		}
		return nil
	}
	for step := range 400 {
		if len(late) > 0 && rng.IntN(10) == 0 {
			net.queue = append(net.queue, late[0])
			late = late[1:]
		}
		switch r := rng.IntN(20); {
		case r < 8:
			if ls := net.leaders(); len(ls) == 1 {
				net.nodes[ls[0]].c.propose([]Log{{Type: LogCommand, Data: fmt.Appendf(nil, "s%d", step)}})
				net.settle()
			}
		case r < 15:
			net.tickAll()
		case r < 18:
			id := net.ids[rng.IntN(len(net.ids))]
			nd := net.nodes[id]
			if !nd.down && nd.c.log.applied >= nd.c.snapIndex+3 {
				net.takeSnapshot(id)
			}
		default:
			id := net.ids[rng.IntN(len(net.ids))]
			nd := net.nodes[id]
			if nd.down {
				net.restartFromSnapshot(id)
				lastApplied[id] = nd.c.log.applied
			} else if len(net.leaders()) == 1 {
				nd.down = true
			}
		}
		if err := check(); err != nil {
			return net.installs, fmt.Errorf("seed %d step %d: %w", seed, step, err)
		}
	}
	for _, id := range net.ids {
		if net.nodes[id].down {
			net.restartFromSnapshot(id)
			lastApplied[id] = net.nodes[id].c.log.applied
		}
	}
	net.drop = nil
	for range 60 {
		net.tickAll()
		if err := check(); err != nil {
			return net.installs, fmt.Errorf("seed %d healing: %w", seed, err)
		}
	}
	return net.installs, nil
}

// restartFromSnapshot restarts a server on its newest snapshot and the
// durable log after it.
func (net *coreNet) restartFromSnapshot(id ServerID) {
	nd := net.nodes[id]
	snap := net.latestSnap[id]
	if snap == nil {
		net.restart(id)
		return
	}
	m := snap.meta
	var ents []Log
	if len(nd.durable) > int(m.Index) {
		ents = slices.Clone(nd.durable[m.Index:])
	}
	nd.c = newCore(nd.c.cfg, nd.hs, m.Index, m.Term, confEntry{index: m.ConfigurationIndex, conf: m.Configuration}, ents)
	nd.applied = slices.Clone(snap.applied)
	nd.down = false
}

func TestCoreRandomSnapshotRuns(t *testing.T) {
	withInstalls := 0
	for seed := uint64(1); seed <= 60; seed++ {
		installs, err := snapRun(t, seed, snapshotBugs{})
		if err != nil {
			t.Fatal(err)
		}
		if installs > 0 {
			withInstalls++
		}
	}
	t.Logf("%d of 60 seeds installed a snapshot from a leader", withInstalls)
	if withInstalls < 30 {
		t.Errorf("only %d of 60 seeds installed a snapshot: the runs do not exercise InstallSnapshot", withInstalls)
	}
}

// Each planted bug is caught by the checks of some seed.
func TestCoreRandomSnapshotRunsCatchPlantedBugs(t *testing.T) {
	for name, bugs := range map[string]snapshotBugs{
		"CompactPastCommit":  {CompactPastCommit: true},
		"ApplyOlderSnapshot": {ApplyOlderSnapshot: true},
	} {
		caught := 0
		for seed := uint64(1); seed <= 60; seed++ {
			if _, err := snapRun(t, seed, bugs); err != nil {
				caught++
				if caught == 1 {
					t.Logf("%s caught: %v", name, err)
				}
			}
		}
		if caught == 0 {
			t.Errorf("planted bug %s not caught in 60 seeds", name)
		}
		t.Logf("%s caught in %d of 60 seeds", name, caught)
	}
}
