package raft

// snapshotBugs are planted bugs in the core's snapshot handling, for the
// simulator and tests to show that their checkers catch them. They live in
// coreConfig.snapBugs and must never be set outside tests.
type snapshotBugs struct {
	// CompactPastCommit compacts the log to its last index when a snapshot
	// is done, instead of at most to the snapshot's (applied, committed)
	// index: entries not yet committed or applied are forgotten.
	CompactPastCommit bool
	// ApplyOlderSnapshot installs a snapshot from the leader even when it is
	// older than what this server has committed and applied, rolling the
	// state machine back.
	ApplyOlderSnapshot bool
}
