package raft

import "testing"

// simRegressions are seeds on which the simulator found real bugs, kept
// so that they stay fixed. Each runs with the options it failed under. A
// change to the simulator's draws makes a seed explore something else, so
// each bug also has a unit test that pins the rule (named beside it).
var simRegressions = []struct {
	opt  simOptions
	what string
}{
	{simOptions{seed: 394, ticks: 3_000, ops: 300, clients: 8},
		"livelock: without PreVote, candidates with stale logs and fast clocks reset the up-to-date servers' election timers with every vote request, so no leader was ever elected (fixed: only a granted vote resets the timer; TestRejectedVoteDoesNotResetTimer)"},
	{simDefaultOptions(234),
		"deadlock: the voter with the longest log was stuck in an old term; its vote requests were dropped unanswered, and it refused the pre-votes of the others (fixed: a stale vote request is answered with the current term; TestStaleVoteRequestAnsweredWithCurrentTerm)"},
	{simDefaultOptions(487),
		"no leader: after a restart the only server holding C_new, which removed it, judged by its commit index (0) that it had never been a voter and would not campaign, while the remaining voter needed its vote (fixed: a server left out of an uncommitted C_new may campaign if it votes in the configuration before; TestRestartedRemovedServerCampaigns)"},
	{simDefaultOptions(19),
		"livelock: with PreVote off, a server whose log was behind and whose clock ran fast campaigned first in every term and spent the vote that the only voter of the incoming configuration needed in that term (fixed: a server that voted for itself yields to a rival with a log at least as up to date, and waits an extra election timeout; TestYieldToBetterCandidate)"},
	{simDefaultOptions(3283),
		"no leader: a removed server that never learned of its removal campaigned without PreVote under its old configuration and kept pushing one voter's term up, so the other voter's pre-votes always came one term too low (fixed: a pre-candidate refused by a server in a later term takes the term and asks again at once; TestPreVoteRetriesAtOnceAfterTermRefusal)"},
	{simDefaultOptions(3263),
		"log matching broken: a deposed leader truncated and rewrote its log in place while an append it had sent was still in flight, so the follower received an entry of term 116 inside a message of term 115 (the TCP transport encodes queued messages later, and the persister writes jobs later: the same race). Fixed: a truncation copies the kept prefix to a new array; TestTruncationLeavesHandedOutEntriesAlone"},
}

func TestSimulatorRegressions(t *testing.T) {
	for _, r := range simRegressions {
		if res := runSim(r.opt, t.TempDir()); res.err != nil {
			t.Errorf("regression (%s):\n%v", r.what, res.err)
		}
	}
}
