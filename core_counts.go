package raft

// coreCounts counts protocol events for metrics (metrics.go). They are
// plain counters the core bumps as events happen; the driver turns their
// growth into metric increments after each batch, so the core stays free
// of the metrics sink.
type coreCounts struct {
	preVotes       uint64 // pre-vote campaigns started
	elections      uint64 // elections started (the term went up)
	electionsWon   uint64 // times this server became leader
	readRounds     uint64 // confirmation rounds started because reads waited for one
	readIndexReads uint64 // reads answered after a confirmation round (a follower's included)
	leaseReads     uint64 // reads answered from the lease, without a round
	forwardedIn    uint64 // entries a leader appended for followers (MsgPropose)
	diskStepAsides uint64 // times a leader stepped down because its disk stalled
}

// peerReport is what a leader knows of one peer's replication.
type peerReport struct {
	id       ServerID
	match    uint64
	lag      uint64 // entries the leader holds beyond match
	inflight int    // appends sent and not yet acknowledged
	// silentTicks is how long ago, in ticks, the peer last answered (since
	// this server became leader, if it never has).
	silentTicks int
}

// peerReports lists the leader's peers in configuration order; nil on a
// server that does not lead.
func (c *core) peerReports() []peerReport {
	if c.role != roleLeader {
		return nil
	}
	last := c.log.lastIndex()
	out := make([]peerReport, 0, len(c.peers))
	for _, id := range c.peers {
		pr := c.prs[id]
		out = append(out, peerReport{id: id, match: pr.match, lag: last - min(pr.match, last),
			inflight: pr.inflight.count, silentTicks: c.leaderTicks - pr.lastHeard})
	}
	return out
}

// quorumMargin is how many more voters a leader can lose touch with before
// it no longer hears from a quorum: the voters that answered within the
// last election timeout (this server included), less a quorum; the
// smaller of the two halves' while joint. Negative means a leader without
// a quorum, which CheckQuorum will depose. 0 on a server that does not
// lead.
func (c *core) quorumMargin() int {
	if c.role != roleLeader {
		return 0
	}
	margin := func(voters []ServerID) int {
		active := 0
		for _, id := range voters {
			if id == c.id() {
				active++
			} else if pr := c.prs[id]; pr != nil && c.leaderTicks-pr.lastHeard < c.cfg.electionTicks {
				active++
			}
		}
		return active - (len(voters)/2 + 1)
	}
	m := margin(c.incoming)
	if len(c.outgoing) > 0 {
		m = min(m, margin(c.outgoing))
	}
	return m
}
