package raft

// plantedBugs switches on deliberate protocol bugs, so that tests can show
// their checkers catch them. Test-only: it is never set outside tests and is
// not reachable from the public API (it lives in the unexported coreConfig).
type plantedBugs struct {
	// SingleMajorityWhileJoint makes a joint configuration count only its
	// incoming half (C_new) for commits, elections and leadership checks,
	// as if it were not joint.
	SingleMajorityWhileJoint bool
}
