package raft

// Disk stalls: the core's side (the driver's is in stall_driver.go).
//
// A write that fails stops the server (fail-stop); a write that never
// returns — an fsync that hangs, a full disk that blocks — is worse: a
// leader whose disk hangs keeps heartbeating, so no one else is elected,
// and nothing it is asked to do completes (the "zombie leader" of
// hashicorp/raft#503, #612, #614). The driver measures how long its oldest
// unfinished log or stable-store write has been under way and tells the
// core, through setDiskStalled, when that passes Config.DiskStallTimeout
// and when a write completes again. The core then:
//
//   - as leader, steps down at once and stops heartbeating, so that the
//     followers' election timers run out; if a voter holds the leader's
//     whole log, it is told to campaign at once (MsgTimeoutNow), which
//     saves the followers an election timeout;
//   - in any role, does not campaign while the disk is stalled: no
//     pre-vote or vote request of its own, MsgTimeoutNow ignored (a
//     candidate or pre-candidate gives up), so it never wins an election
//     it could not serve;
//   - once the disk works again, waits diskHoldTicks more ticks before it
//     may campaign, so that a disk that stalls now and then does not make
//     leadership flap between it and the others. A new stall restarts the
//     wait.
//
// It still answers pre-votes (they need no write) and votes (the answer
// waits, like every answer, for the vote to be durable), and follows a
// leader as usual. Safety does not depend on any of this: only liveness.

// diskStall is the core's view of its disk.
type diskStall struct {
	stalled bool
	// hold counts down the ticks, after a stall cleared, before this
	// server may campaign again.
	hold int
}

// setDiskStalled tells the core that its oldest unfinished write has been
// under way for longer than the stall timeout (true), or that the stall is
// over (false).
func (c *core) setDiskStalled(stalled bool) {
	if c.cfg.bugs.IgnoreDiskStall || stalled == c.disk.stalled {
		return
	}
	c.disk.stalled = stalled
	if !stalled {
		c.disk.hold = c.cfg.diskHoldTicks
		return
	}
	switch c.role {
	case roleLeader:
		c.stepAsideForDisk()
	case roleCandidate, rolePreCandidate:
		c.becomeFollower(c.term, "")
	}
}

// stepAsideForDisk steps a leader whose disk stalled down, and hands over
// to a voter that holds its whole log, if there is one. (Having stepped
// down, it serves no more lease reads, which TimeoutNow's bypass of leader
// stickiness would otherwise endanger.)
func (c *core) stepAsideForDisk() {
	to := c.mostUpToDateVoter()
	handOver := to != "" && c.prs[to].match >= c.log.lastIndex()
	c.counts.diskStepAsides++
	c.becomeFollower(c.term, "")
	if handOver {
		c.send(Message{Type: MsgTimeoutNow, To: to})
	}
}

// diskBlocksCampaign reports whether the disk keeps this server from
// campaigning: it is stalled, or recovered less than diskHoldTicks ago.
func (c *core) diskBlocksCampaign() bool {
	return c.disk.stalled || c.disk.hold > 0
}

// tickDisk counts the hold after a stall down (a new stall sets it again
// when it clears).
func (c *core) tickDisk() {
	if c.disk.hold > 0 {
		c.disk.hold--
	}
}
