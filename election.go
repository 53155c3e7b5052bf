package raft

// Election: timeouts, PreVote, RequestVote and CheckQuorum (Raft paper §5.2,
// dissertation §9.6 for PreVote and leader stickiness).

// campaignKind says why a server campaigns.
type campaignKind uint8

const (
	campaignPreElection campaignKind = iota // ask first, without changing term
	campaignElection                        // a real election: bump the term
	campaignTransfer                        // leadership transfer: skip PreVote and stickiness
)

func (c *core) resetRandomizedTimeout() {
	c.randomizedTimeout = c.cfg.electionTicks + c.cfg.rand.IntN(c.cfg.electionTicks)
}

// tickElection is the follower's and candidate's clock: campaign when no
// leader has been heard from for a randomized election timeout.
func (c *core) tickElection() {
	c.electionElapsed++
	if c.electionElapsed < c.randomizedTimeout || !c.canCampaign() || c.diskBlocksCampaign() {
		return
	}
	c.electionElapsed = 0
	if c.cfg.preVote {
		c.campaign(campaignPreElection)
	} else {
		c.campaign(campaignElection)
	}
}

// tickLeader sends heartbeats and, with CheckQuorum, steps down when a
// quorum has not been heard from within the lease timeout.
func (c *core) tickLeader() {
	c.electionElapsed++
	c.heartbeatElapsed++
	last := c.log.lastIndex()
	for _, id := range c.peers {
		if pr := c.prs[id]; pr.match < last {
			pr.stallTicks++
		}
	}
	if c.electionElapsed >= c.cfg.leaseTicks {
		c.electionElapsed = 0
		if c.cfg.checkQuorum {
			if !c.quorumActive() {
				c.becomeFollower(c.term, "")
				return
			}
			for _, pr := range c.prs {
				pr.recentActive = false
			}
		}
	}
	if c.tickQuiesce() {
		return
	}
	if c.heartbeatElapsed >= c.cfg.heartbeatTicks {
		c.heartbeatElapsed = 0
		c.heartbeat()
	}
}

// quorumActive reports whether a quorum (of each half, when joint) has been
// heard from since the last check; the leader counts itself.
func (c *core) quorumActive() bool {
	active := map[ServerID]bool{c.id(): true}
	for id, pr := range c.prs {
		active[id] = pr.recentActive
	}
	return jointVoteResult(c.incoming, c.outgoing, active) == voteWon
}

// heardFromLeader reports whether a leader was heard from within the base
// election timeout. Such a server refuses to help depose it (leader
// stickiness), which, with PreVote, stops a server with a flaky link from
// disrupting a healthy cluster.
func (c *core) heardFromLeader() bool {
	return c.lead != "" && c.electionElapsed < c.cfg.electionTicks
}

func (c *core) becomeFollower(term uint64, lead ServerID) {
	if term != c.term {
		c.term, c.vote = term, ""
		c.hardStateDirty = true
	}
	if c.role != roleFollower || term != c.term || lead != c.lead {
		c.failForwarded()
	}
	c.role = roleFollower
	c.lead = lead
	c.prs, c.votes = nil, nil
	c.resetReads()
	c.electionElapsed = 0
	c.resetRandomizedTimeout()
}

func (c *core) becomePreCandidate() {
	c.failForwarded()
	c.role = rolePreCandidate
	c.lead = ""
	c.votes = map[ServerID]bool{}
	c.electionElapsed = 0
	c.resetRandomizedTimeout()
}

func (c *core) becomeCandidate() {
	c.failForwarded()
	c.term++
	c.vote = c.id()
	c.hardStateDirty = true
	c.role = roleCandidate
	c.lead = ""
	c.votes = map[ServerID]bool{}
	c.electionElapsed = 0
	c.resetRandomizedTimeout()
}

// becomeLeader takes over the cluster: every follower starts in probe
// state, and a no-op entry of the new term is appended so that entries of
// earlier terms can commit (Raft paper §5.4.2, §8).
func (c *core) becomeLeader() {
	c.failForwarded()
	c.proposeSeen, c.forwardedTo = map[ServerID]uint64{}, 0
	c.role = roleLeader
	c.lead = c.id()
	c.counts.electionsWon++
	c.votes = nil
	c.electionElapsed, c.heartbeatElapsed = 0, 0
	c.prs = make(map[ServerID]*progress, len(c.peers))
	for _, id := range c.peers {
		c.prs[id] = c.newProgress()
	}
	if !c.cfg.bugs.NoNoop {
		c.appendLog([]Log{{Index: c.log.lastIndex() + 1, Term: c.term, Type: LogNoop}})
	}
	c.bcastAppend()
}

// campaign asks every voter for its vote (or pre-vote).
func (c *core) campaign(kind campaignKind) {
	if !c.canCampaign() || c.diskBlocksCampaign() {
		return
	}
	msgType, term := MsgVote, c.term+1
	if kind == campaignPreElection {
		c.becomePreCandidate()
		msgType = MsgPreVote
		c.counts.preVotes++
	} else {
		c.becomeCandidate()
		term = c.term
		c.counts.elections++
	}
	c.votes[c.id()] = true
	if c.tallyVotes() {
		return
	}
	for _, id := range c.otherVoters() {
		c.send(Message{
			Type: msgType, To: id, Term: term,
			Index: c.log.lastIndex(), LogTerm: c.log.lastTerm(),
			Transfer: kind == campaignTransfer,
		})
	}
}

// tallyVotes acts on the votes so far and reports whether the election is
// decided.
func (c *core) tallyVotes() bool {
	switch jointVoteResult(c.incoming, c.outgoing, c.votes) {
	case voteWon:
		if c.role == rolePreCandidate {
			c.campaign(campaignElection)
		} else {
			c.becomeLeader()
		}
		return true
	case voteLost:
		c.becomeFollower(c.term, "")
		return true
	default:
		return false
	}
}

func (c *core) handleCandidateVoteResp(m *Message) {
	if _, seen := c.votes[m.From]; !seen {
		c.votes[m.From] = !m.Reject
	}
	c.tallyVotes()
}

// handleVoteRequest answers MsgVote and MsgPreVote (Raft paper §5.2, §5.4.1):
// at most one vote per term, first come first served, and only for a
// candidate whose log is at least as up to date.
func (c *core) handleVoteRequest(m *Message) {
	respType := MsgVoteResp
	if m.Type == MsgPreVote {
		respType = MsgPreVoteResp
	}
	canVote := c.vote == m.From || (c.vote == "" && c.lead == "")
	if m.Type == MsgPreVote {
		// A pre-vote is for a future term, where this server has not voted;
		// but it is refused while a leader is alive.
		canVote = m.Term > c.term && (m.Transfer || !c.heardFromLeader())
	}
	if m.Type == MsgVote && c.cfg.bugs.DoubleVote {
		canVote = true
	}
	if !canVote || !(c.log.isUpToDate(m.Index, m.LogTerm) || c.cfg.bugs.SkipUpToDateCheck) {
		c.send(Message{Type: respType, To: m.From, Term: c.term, Reject: true})
		if m.Type == MsgVote && c.vote == c.id() && c.role != roleLeader && c.log.isUpToDate(m.Index, m.LogTerm) {
			c.yieldCandidacy()
		}
		return
	}
	// A granted pre-vote carries the candidate's future term, so that the
	// candidate does not take the answer for a stale one.
	c.send(Message{Type: respType, To: m.From, Term: m.Term})
	if m.Type == MsgVote {
		c.vote = m.From
		c.hardStateDirty = true
		c.electionElapsed = 0
	}
}

// yieldCandidacy steps a server that voted for itself down when a rival of
// its term holds a log at least as up to date: it has spent its vote on
// itself, so it cannot
// help the rival now, and it waits an extra election timeout before it
// campaigns again, so that the rival's next attempt comes first. Without
// it, a candidate whose log is behind and whose clock runs fast campaigns
// first in every term and takes the vote the rival needs in that term —
// when that vote is the only voter of an incoming configuration, forever
// (a livelock the simulator found with PreVote off; PreVote avoids it).
// Timers decide only liveness: safety is untouched.
func (c *core) yieldCandidacy() {
	c.becomeFollower(c.term, "")
	c.electionElapsed = -c.cfg.electionTicks
}

// stepHigherTerm handles the term of a message newer than ours. It reports
// whether the message should then be handled.
func (c *core) stepHigherTerm(m *Message) bool {
	switch {
	case m.Type == MsgVote && !m.Transfer && c.cfg.checkQuorum && (c.heardFromLeader() || c.startHold > 0):
		// Leader stickiness: a live leader is known, so a disruptive
		// candidate gets no answer and does not raise our term. A server
		// that started less than an election timeout ago holds its vote
		// too (startHold): before it went down it may have backed a
		// leader's lease (read.go). Pre-votes, which elect no one, it
		// answers as usual.
		return false
	case m.Type == MsgPreVote:
		// Pre-votes never change terms.
	case m.Type == MsgPreVoteResp && !m.Reject:
		// A granted pre-vote carries the term we would campaign in.
	case m.Type == MsgPreVoteResp && c.role == rolePreCandidate:
		// Refused by a server already in a later term: take the term and
		// ask again at once, for the term after it. Waiting a whole
		// election timeout instead lets a disruptive server (removed,
		// without PreVote) keep that voter one term ahead of us forever:
		// a livelock the simulator found (seed 3283). Pre-votes change no
		// one's term, so the retry is cheap; it happens only when the
		// term moved.
		c.becomeFollower(m.Term, "")
		c.campaign(campaignPreElection)
		return false
	case m.Type == MsgAppend || m.Type == MsgHeartbeat || m.Type == MsgQuiesce || m.Type == MsgSnapshot:
		c.becomeFollower(m.Term, m.From)
	case m.Type == MsgVote:
		// Only a granted vote resets the election timer (Raft paper
		// Figure 2; handleVoteRequest does it). Resetting it for every
		// newer candidate lets candidates with stale logs and fast
		// clocks keep the up-to-date servers from ever campaigning: a
		// livelock the simulator found (TestSimulatorRegressions).
		elapsed := c.electionElapsed
		c.becomeFollower(m.Term, "")
		c.electionElapsed = elapsed
	default:
		c.becomeFollower(m.Term, "")
	}
	return true
}

// stepLowerTerm answers a message from a stale term so that its sender
// learns the newer term: a deposed leader steps down, a pre-candidate gives
// up. Other stale messages are dropped.
func (c *core) stepLowerTerm(m *Message) {
	switch m.Type {
	case MsgAppend, MsgHeartbeat, MsgQuiesce:
		c.send(Message{Type: MsgAppendResp, To: m.From, Index: m.Index, Reject: true})
	case MsgPreVote:
		c.send(Message{Type: MsgPreVoteResp, To: m.From, Reject: true})
	case MsgVote:
		// Raft paper Figure 2: the answer carries the current term, so a
		// candidate left behind in an old term catches up. Without it, a
		// candidate whose log is the longest but whose term is stale
		// (possible when servers differ in PreVote, as during a rolling
		// change of that setting) is never heard and never hears — a
		// deadlock the simulator found (TestSimulatorRegressions).
		c.send(Message{Type: MsgVoteResp, To: m.From, Reject: true})
	case MsgSnapshot:
		c.send(Message{Type: MsgSnapshotResp, To: m.From, Index: m.Index, Reject: true})
	}
}

func (c *core) handleFollowerTimeoutNow(m *Message) {
	c.campaign(campaignTransfer)
}
