package raft

import "testing"

// simRegressions are seeds on which the simulator found real bugs, kept
// so that they stay fixed. Each runs with the options it failed under.
var simRegressions = []struct {
	opt  simOptions
	what string
}{
	{simOptions{seed: 394, ticks: 3_000, ops: 300, clients: 8},
		"livelock: without PreVote, candidates with stale logs and fast clocks reset the up-to-date servers' election timers with every vote request, so no leader was ever elected (fixed: only a granted vote resets the timer)"},
}

func TestSimulatorRegressions(t *testing.T) {
	for _, r := range simRegressions {
		if res := runSim(r.opt, t.TempDir()); res.err != nil {
			t.Errorf("regression (%s):\n%v", r.what, res.err)
		}
	}
}
