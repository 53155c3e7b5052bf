//go:build !race

// The planted-bug search runs in the plain build only: some bugs take
// hundreds of seeds to surface, which the race detector would make take
// minutes. CI runs it in a step of its own (.ci/run).

package raft

import (
	"flag"
	"testing"
)

// simBug is a planted bug and how to switch it on.
type simBug struct {
	name string
	set  func(*simOptions)
}

var simBugs = []simBug{
	{"commit an old-term entry by counting (Figure 8)", func(o *simOptions) { o.bugs.CommitOldTerm = true }},
	{"grant two votes in one term", func(o *simOptions) { o.bugs.DoubleVote = true }},
	{"reply before term and vote are durable", func(o *simOptions) { o.lazyHardState = true }},
	{"count and apply the leader's entries before they are durable", func(o *simOptions) { o.bugs.CountUndurable = true }},
	{"truncate below the commit index", func(o *simOptions) { o.bugs.TruncateCommitted = true }},
	{"accept AppendEntries from a stale term", func(o *simOptions) { o.bugs.AcceptStaleAppend = true }},
	{"skip the up-to-date check when voting", func(o *simOptions) { o.bugs.SkipUpToDateCheck = true }},
	{"drop the new leader's no-op", func(o *simOptions) { o.bugs.NoNoop = true }},
	{"serve ReadIndex before the new leader's first commit", func(o *simOptions) { o.bugs.ReadBeforeCommitInTerm = true }},
	{"append a duplicated forwarded proposal twice", func(o *simOptions) { o.bugs.ForwardDuplicates = true }},
	{"apply before a forwarded proposal is answered", func(o *simOptions) { o.bugs.ApplyBeforeForwardAnswer = true }},
	{"use a single majority while joint", func(o *simOptions) { o.bugs.SingleMajorityWhileJoint = true }},
	{"compact past the commit index", func(o *simOptions) { o.snapBugs.CompactPastCommit = true }},
	{"install a snapshot older than the applied index", func(o *simOptions) { o.snapBugs.ApplyOlderSnapshot = true }},
	{"apply a session retry again", func(o *simOptions) { o.sessBugs.ApplyRetries = true }},
	{"apply a stale session command", func(o *simOptions) { o.sessBugs.ApplyStale = true }},
	{"leave the sessions out of snapshots", func(o *simOptions) { o.sessBugs.ForgetInSnapshot = true }},
	{"ignore a disk stall (the zombie leader)", func(o *simOptions) { o.bugs.IgnoreDiskStall = true }},
}

// simBugBudget is how many seeds a planted bug may take to be caught.
var simBugBudget = flag.Uint64("sim.bugbudget", 1000, "seeds a planted bug may take to be caught")

// TestSimulatorCatchesPlantedBugs proves the checkers can fail: each
// planted bug must make a seed fail within the budget, counting from seed
// 1, so the seed that catches it is fixed. The seeds are shorter than
// TestSimulator's so the whole test stays quick.
func TestSimulatorCatchesPlantedBugs(t *testing.T) {
	for _, bug := range simBugs {
		t.Run(bug.name, func(t *testing.T) {
			for seed := uint64(1); seed <= *simBugBudget; seed++ {
				opt := simOptions{seed: seed, ticks: 3_000, ops: 300, clients: 8}
				bug.set(&opt)
				if res := runSim(opt, t.TempDir()); res.err != nil {
					t.Logf("caught by seed %d: %.200s", seed, res.err)
					return
				}
			}
			t.Fatalf("planted bug %q survived %d seeds", bug.name, *simBugBudget)
		})
	}
}
