package raft

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	simSeeds = flag.Int("sim.seeds", simDefaultSeeds, "seeds TestSimulator runs (the race build runs fewer by default)")
	simSeed  = flag.Uint64("sim.seed", 0, "run only this seed, and print its run (replays a failure)")
	simLong  = flag.Bool("sim.long", false, "release mode: 20,000 seeds")
)

// simDefaultOptions are the options of a CI seed: at least 10,000 ticks and
// 1,000 client operations.
func simDefaultOptions(seed uint64) simOptions {
	return simOptions{seed: seed, ticks: 10_000, ops: 1_000, clients: 5}
}

// TestSimulator runs the simulator over many seeds: each a 3-, 5- or
// 7-server cluster under the faults its seed draws, with every safety
// checker on, then a liveness phase, then porcupine over the clients'
// history. A failure prints the seed and the command that replays it.
func TestSimulator(t *testing.T) {
	first, last := uint64(1), uint64(*simSeeds)
	if *simLong {
		last = 20_000
	}
	if *simSeed != 0 {
		first, last = *simSeed, *simSeed
	}
	start := time.Now()
	var (
		mu    sync.Mutex
		total simResult
	)
	// Seeds are independent: spread them over the CPUs, a stride each.
	workers := uint64(min(runtime.GOMAXPROCS(0), int(last-first+1)))
	t.Run("seeds", func(t *testing.T) {
		for w := uint64(0); w < workers; w++ {
			t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
				t.Parallel()
				for seed := first + w; seed <= last; seed += workers {
					res := runSim(simDefaultOptions(seed), t.TempDir())
					if res.err != nil {
						t.Fatal(res.err)
					}
					if *simSeed != 0 {
						t.Logf("seed %d: %v", seed, res)
					}
					require.GreaterOrEqual(t, res.ticks, 10_000, "seed %d ran too few ticks", seed)
					require.GreaterOrEqual(t, res.ops, 1_000, "seed %d ran too few client operations", seed)
					require.GreaterOrEqual(t, res.leaderCrashes, 1, "seed %d never crashed a leader", seed)
					mu.Lock()
					total.add(res)
					mu.Unlock()
				}
			})
		}
	})
	n := int(last - first + 1)
	t.Logf("%d seeds in %v: per seed %d ticks, %d operations (%d acknowledged, %d unknown; %d puts resent in session, %d refused as expired, %d sessions), %d committed, %d terms with a leader, %d crashes (%d of a leader), %d partitions, %d reads of evicted entries, %d puts refused with the proposal queue full; in all %d disk stalls, %d liveness checks under a hung leader",
		n, time.Since(start).Round(time.Millisecond), total.ticks/n, total.ops/n, total.done/n, total.unsure/n,
		total.retries/n, total.expired/n, total.registered/n,
		total.committed/n, total.terms/n, total.crashes/n, total.leaderCrashes/n, total.partitions/n, total.loads/n, total.queueFull/n, total.diskStalls, total.hangChecks)
}

func (r *simResult) add(o simResult) {
	r.ticks += o.ticks
	r.ops += o.ops
	r.done += o.done
	r.unsure += o.unsure
	r.committed += o.committed
	r.terms += o.terms
	r.crashes += o.crashes
	r.partitions += o.partitions
	r.leaderCrashes += o.leaderCrashes
	r.retries += o.retries
	r.expired += o.expired
	r.registered += o.registered
	r.loads += o.loads
	r.queueFull += o.queueFull
	r.diskStalls += o.diskStalls
	r.hangChecks += o.hangChecks
}

// TestSimulatorReplays runs 50 seeds twice and compares the hashes of
// their traces: a seed must replay byte for byte.
func TestSimulatorReplays(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		opt := simDefaultOptions(seed)
		opt.ticks, opt.ops = 2_000, 200
		a, b := runSim(opt, t.TempDir()), runSim(opt, t.TempDir())
		require.NoError(t, a.err)
		require.Equal(t, a.trace, b.trace, "seed %d: two runs, two traces", seed)
		require.Equal(t, a, b, "seed %d: two runs, two results", seed)
	}
}

func (r simResult) String() string {
	return fmt.Sprintf("ticks=%d ops=%d done=%d unsure=%d retries=%d expired=%d sessions=%d committed=%d terms=%d crashes=%d leaderCrashes=%d partitions=%d diskStalls=%d hangChecks=%d",
		r.ticks, r.ops, r.done, r.unsure, r.retries, r.expired, r.registered, r.committed, r.terms, r.crashes, r.leaderCrashes, r.partitions, r.diskStalls, r.hangChecks)
}
