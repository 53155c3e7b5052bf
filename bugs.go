package raft

// plantedBugs switches on known protocol bugs, one per field, so that the
// simulator can prove its checkers catch them (sim_bugs_test.go). It is
// test-only: nothing outside tests sets it, and no public API reaches it.
// Each switch is checked at the one place the correct rule is enforced.
type plantedBugs struct {
	// CommitOldTerm counts an entry of an earlier term as committed once
	// a majority stores it (Raft paper Figure 8).
	CommitOldTerm bool
	// DoubleVote grants a vote to any candidate, even after voting for
	// another in the same term.
	DoubleVote bool
	// SkipUpToDateCheck grants votes without the election restriction.
	SkipUpToDateCheck bool
	// TruncateCommitted lets a follower overwrite entries below its commit
	// index when a leader's append conflicts with them.
	TruncateCommitted bool
	// AcceptStaleAppend lets a follower skip the term check of
	// AppendEntries: it handles an append from an earlier term and
	// answers in that term, so a deposed leader counts its answers.
	AcceptStaleAppend bool
	// NoNoop drops the entry a new leader appends at the start of its term.
	NoNoop bool
	// CountUndurable lets the leader count its own entries toward commit
	// before they are durable, so a commit can be reported (and applied by
	// followers) on a copy a crash loses: apply-before-persist.
	CountUndurable bool
	// ReadBeforeCommitInTerm lets a new leader answer ReadIndex before an
	// entry of its own term has committed.
	ReadBeforeCommitInTerm bool
	// LeaseWithoutCheckQuorum serves lease reads even when CheckQuorum is
	// off, where no voter's stickiness backs the lease.
	LeaseWithoutCheckQuorum bool
	// ForwardDuplicates appends every copy of a forwarded proposal the
	// network delivers, so a duplicated MsgPropose applies twice.
	ForwardDuplicates bool
	// ApplyBeforeForwardAnswer lets a follower apply entries while its
	// forwarded proposals are unanswered, so the one it forwarded can be
	// applied before it knows the index: its caller never hears.
	ApplyBeforeForwardAnswer bool
	// SingleMajorityWhileJoint makes a joint configuration count only its
	// incoming half (C_new) for commits, elections and leadership checks,
	// as if it were not joint.
	SingleMajorityWhileJoint bool
	// IgnoreDiskStall makes the core ignore the driver's report that its
	// disk stalled (stall.go): a leader whose writes hang goes on leading.
	IgnoreDiskStall bool
}

// acceptStaleAppend is the AcceptStaleAppend bug.
func (c *core) acceptStaleAppend(m *Message) {
	n, nAfter := len(c.msgs), len(c.msgsAfterAppend)
	c.handleFollowerAppend(m)
	for i := n; i < len(c.msgs); i++ {
		c.msgs[i].Term = m.Term
	}
	for i := nAfter; i < len(c.msgsAfterAppend); i++ {
		c.msgsAfterAppend[i].Term = m.Term
	}
}
