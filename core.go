package raft

import (
	"errors"
	"fmt"
)

// This file and election.go, replication.go, progress.go, quorum.go, log.go
// (raftLog) and membership.go (configs) are the deterministic core: the
// protocol as a state machine. Inputs arrive through step, tick, propose,
// persisted and appliedTo; outputs are collected and handed out by ready.
// The core has no goroutines, clock, I/O or global randomness (lint_test.go
// keeps it so), which lets a test drive many cores from one goroutine.

// role is a server's role in the protocol.
type role uint8

const (
	roleFollower role = iota
	rolePreCandidate
	roleCandidate
	roleLeader
	numRoles
)

var roleNames = [numRoles]string{"Follower", "PreCandidate", "Candidate", "Leader"}

func (r role) String() string { return roleNames[r] }

// randSource is the core's only source of randomness, injected so that a
// seed reproduces a run.
type randSource interface {
	// IntN returns a uniform random int in [0, n).
	IntN(n int) int
}

// coreConfig is the core's configuration, in ticks and counts; the driver
// derives it from Config.
type coreConfig struct {
	id             ServerID
	electionTicks  int // base election timeout; randomized in [electionTicks, 2*electionTicks)
	heartbeatTicks int
	leaseTicks     int // CheckQuorum: a leader steps down after this long without a quorum; <= electionTicks
	// leaseReadTicks is how long after a confirmed round a leader serves
	// lease reads (read.go); 0 disables them. It also makes a server
	// refuse votes for electionTicks after it starts (startHold).
	leaseReadTicks   int
	preVote          bool
	checkQuorum      bool
	maxAppendEntries int    // entries in one MsgAppend
	maxAppendBytes   uint64 // data bytes in one MsgAppend (beyond its first entry)
	maxInflightMsgs  int    // appends in flight per follower
	maxInflightBytes uint64 // bytes in flight per follower; 0 means no bound
	rand             randSource

	promotionMaxLag      uint64 // a nonvoter is caught up within this many entries of the leader's last index
	promotionStableTicks int    // ... for this many consecutive ticks before it is promoted
	bugs                 plantedBugs
	trailingLogs         uint64       // entries kept behind a snapshot when compacting
	logCacheBytes        uint64       // applied entries beyond this many bytes are evicted from memory; 0: none
	maxPendingBytes      uint64       // a leader refuses proposals beyond this many unapplied bytes; 0: no bound
	snapBugs             snapshotBugs // planted bugs; never set outside tests
	// diskHoldTicks is how long a server whose disk stalled waits, once it
	// works again, before it may campaign (stall.go).
	diskHoldTicks int
	// quiesceTicks is how many idle ticks a leader waits before its group
	// goes quiet (quiesce.go); 0: never (a server not on a Host).
	quiesceTicks int
}

// hardState is what must be durable before any message that depends on it
// leaves the server: the current term and the vote cast in it.
type hardState struct {
	Term uint64
	Vote ServerID
}

// ready is the core's output from a batch of inputs.
type ready struct {
	// hardState, when non-nil, must be made durable before anything below
	// is acted on.
	hardState *hardState
	// entries must be appended to the LogStore, replacing any stored entries
	// from entries[0].Index on.
	entries []Log
	// msgs may be sent at once.
	msgs []Message
	// msgsAfterAppend may be sent only once entries, and every append
	// handed out before them, are durable.
	msgsAfterAppend []Message
	// apply are committed, durable entries for the FSM, in order.
	apply []Log
	// reads answers read requests (requestRead).
	reads []readResult
	// proposed answers forwarded proposals (forwardProposals).
	proposed []proposeResult
	// loads asks for evicted entries to be read from the LogStore and
	// handed back with loaded (logcache.go).
	loads []logLoad
	// snapReady: snapshots to send, chunks to write, a snapshot to restore
	// (before apply) and log compaction (see snapshot.go).
	snapReady
}

func (rd *ready) empty() bool {
	return rd.hardState == nil && len(rd.entries) == 0 && len(rd.msgs) == 0 &&
		len(rd.msgsAfterAppend) == 0 && len(rd.apply) == 0 && len(rd.reads) == 0 && len(rd.proposed) == 0 && len(rd.loads) == 0 &&
		rd.emptySnap()
}

var (
	errNotLeader         = errors.New("not leader")
	errProtocolViolation = errors.New("protocol violation")
	errReadFailed        = errors.New("follower read failed")
	errForwardUnknown    = errors.New("forwarded proposal: no answer from the leader")
)

// core is the state of one server's protocol.
type core struct {
	cfg coreConfig

	term uint64   // currentTerm
	vote ServerID // votedFor in term
	role role
	lead ServerID // the leader of term, when known

	log   *raftLog
	confs configs
	// incoming and outgoing are the voters of the latest configuration and,
	// while joint, of the one being left; peers are all other members.
	incoming, outgoing, peers []ServerID

	prs   map[ServerID]*progress // leader: one per peer
	votes map[ServerID]bool      // candidate: granted or rejected

	reads    readState   // leader: leadership confirmation rounds
	forwards []forwarded // follower: requests handed to the leader (forward.go)
	// proposeSeen is, per follower, the highest forwarded-proposal ID this
	// leader took in its term (forward.go).
	proposeSeen map[ServerID]uint64
	// forwardedTo is the index of the last forwarded proposal this leader
	// appended: commits below it are announced at once (announceCommit).
	forwardedTo uint64
	// leaderTicks counts ticks; the lease is measured in it.
	leaderTicks int
	// startHold counts down the ticks after start during which this
	// server acts as if it had heard from a leader (read.go, leases).
	startHold int

	member    memberState  // membership.go: the change under way
	transfer  leadTransfer // transfer.go: leadership transfer
	snapState              // snapshots, compaction and install (snapshot.go)
	disk      diskStall    // stall.go: whether the disk is stalled
	counts    coreCounts   // core_counts.go: events, for metrics

	// quiesced: the group is quiet and this server is not ticked
	// (quiesce.go); idleTicks counts a leader's idle ticks before that.
	quiesced  bool
	idleTicks int

	electionElapsed   int // ticks since the last election timeout reset
	heartbeatElapsed  int // leader: ticks since the last heartbeat
	randomizedTimeout int

	hardStateDirty        bool
	msgs, msgsAfterAppend []Message
	readResults           []readResult
	proposeResults        []proposeResult
	loads                 []logLoad
	// applyLoading: a read of evicted entries to apply is under way;
	// applyLoaded holds them once read (logcache.go).
	applyLoading bool
	applyLoaded  []Log
	// violations lists messages refused because they broke the protocol
	// (for example asking to overwrite a committed entry); the driver logs
	// and clears them.
	violations []error
	// inflightRoom is the driver's input on a Host with MaxInflightBytes
	// (progress.go); every progress points at it.
	inflightRoom inflightRoom
}

// newCore builds a follower from durable state: the hard state, the
// snapshot the log starts after (snapIndex, snapTerm) with the configuration
// as of it, and the log entries after it.
func newCore(cfg coreConfig, hs hardState, snapIndex, snapTerm uint64, base confEntry, entries []Log) *core {
	return newCoreFromLog(cfg, hs, snapIndex, snapTerm, base, startLog{entries: entries})
}

// newCoreFromLog is newCore for a log of which only the tail is in memory
// (startLog, logcache.go).
func newCoreFromLog(cfg coreConfig, hs hardState, snapIndex, snapTerm uint64, base confEntry, sl startLog) *core {
	c := &core{cfg: cfg, term: hs.Term, vote: hs.Vote}
	c.log = newRaftLog(snapIndex, snapTerm, sl.entries)
	if sl.base > snapIndex {
		c.log.base, c.log.runs = sl.base, sl.runs
		c.log.stable, c.log.unsent = c.log.lastIndex(), c.log.lastIndex()+1
	}
	c.snapIndex, c.snapTerm = snapIndex, snapTerm
	c.confs = newConfigs(base)
	c.trackConfigs(sl.confs)
	c.trackConfigs(sl.entries)
	c.useConfig()
	c.becomeFollower(c.term, "")
	if cfg.leaseReadTicks > 0 && cfg.checkQuorum {
		c.startHold = cfg.electionTicks
	}
	return c
}

// step handles one message from another server (Raft paper Figure 2,
// "Rules for Servers").
func (c *core) step(m *Message) {
	if c.quiesced {
		if c.quietMessage(m) {
			return
		}
		c.wake(wakeActivity)
	}
	switch {
	case m.Term > c.term:
		if !c.stepHigherTerm(m) {
			return
		}
	case m.Term < c.term:
		if c.cfg.bugs.AcceptStaleAppend && m.Type == MsgAppend && c.role == roleFollower {
			c.acceptStaleAppend(m)
			return
		}
		c.stepLowerTerm(m)
		return
	}
	if m.Type == MsgVote || m.Type == MsgPreVote {
		c.handleVoteRequest(m)
		return
	}
	if m.Type < msgTypeEnd {
		if h := handlers[c.role][m.Type]; h != nil {
			h(c, m)
		}
	}
}

// handlers says which messages each role acts on; every other combination
// is ignored (handlers_test.go checks that negative space).
var handlers = [numRoles][msgTypeEnd]func(*core, *Message){
	roleFollower: {
		MsgAppend:        (*core).handleFollowerAppend,
		MsgHeartbeat:     (*core).handleFollowerHeartbeat,
		MsgQuiesce:       (*core).handleFollowerQuiesce,
		MsgTimeoutNow:    (*core).handleFollowerTimeoutNow,
		MsgSnapshot:      (*core).handleFollowerSnapshot,
		MsgReadIndex:     (*core).handleReadIndexRefused,
		MsgReadIndexResp: (*core).handleFollowerReadIndexResp,
		MsgPropose:       (*core).handleProposeRefused,
		MsgProposeResp:   (*core).handleFollowerProposeResp,
	},
	rolePreCandidate: {
		MsgAppend:      (*core).handleCandidateAppend,
		MsgHeartbeat:   (*core).handleCandidateHeartbeat,
		MsgQuiesce:     (*core).handleCandidateQuiesce,
		MsgPreVoteResp: (*core).handleCandidateVoteResp,
		MsgSnapshot:    (*core).handleCandidateSnapshot,
		MsgReadIndex:   (*core).handleReadIndexRefused,
		MsgPropose:     (*core).handleProposeRefused,
	},
	roleCandidate: {
		MsgAppend:    (*core).handleCandidateAppend,
		MsgHeartbeat: (*core).handleCandidateHeartbeat,
		MsgQuiesce:   (*core).handleCandidateQuiesce,
		MsgVoteResp:  (*core).handleCandidateVoteResp,
		MsgSnapshot:  (*core).handleCandidateSnapshot,
		MsgReadIndex: (*core).handleReadIndexRefused,
		MsgPropose:   (*core).handleProposeRefused,
	},
	roleLeader: {
		MsgAppendResp:    (*core).handleLeaderAppendResp,
		MsgHeartbeatResp: (*core).handleLeaderHeartbeatResp,
		MsgSnapshotResp:  (*core).handleLeaderSnapshotResp,
		MsgReadIndex:     (*core).handleLeaderReadIndex,
		MsgPropose:       (*core).handleLeaderPropose,
	},
}

// tick advances the core's clock by one tick.
func (c *core) tick() {
	if c.quiesced {
		return // a tick that was due as it went quiet
	}
	c.tickTransfer()
	c.leaderTicks++
	if c.startHold > 0 {
		c.startHold--
	}
	c.tickDisk()
	if c.role == roleLeader {
		c.tickPromotions()
		c.tickLeader()
		return
	}
	c.tickForwarded()
	c.tickElection()
}

// propose appends entries (Type and Data set by the caller) to the leader's
// log and returns the index given to the first.
func (c *core) propose(ents []Log) (uint64, error) {
	if c.role != roleLeader {
		return 0, errNotLeader
	}
	if err := c.transferBlocks(); err != nil {
		return 0, err
	}
	if pending := c.log.pendingBytes(); c.cfg.maxPendingBytes > 0 && pending > 0 {
		size := pending
		for i := range ents {
			size += entrySize(&ents[i])
		}
		if size > c.cfg.maxPendingBytes {
			return 0, fmt.Errorf("%w: %d bytes of proposals not yet applied, limit %d", ErrProposalQueueFull, pending, c.cfg.maxPendingBytes)
		}
	}
	first := c.log.lastIndex() + 1
	for i := range ents {
		ents[i].Index = first + uint64(i)
		ents[i].Term = c.term
	}
	c.appendLog(ents)
	c.bcastAppend()
	return first, nil
}

// persisted records that the log is durable up to (index, term).
func (c *core) persisted(index, term uint64) {
	c.log.persisted(index, term)
	if c.role == roleLeader {
		c.maybeCommit()
	}
}

// appliedTo records that the FSM has applied every entry up to index.
func (c *core) appliedTo(index uint64) {
	if index > c.log.applied && index <= c.log.applying {
		c.log.setApplied(index)
		c.log.evict(c.cfg.logCacheBytes)
	}
}

// ready hands out the outputs collected since the last call.
func (c *core) ready() ready {
	c.advanceMembership()
	c.settleReads()
	c.stayQuiet()
	rd := ready{
		entries:         c.log.unpersisted(),
		msgs:            c.msgs,
		msgsAfterAppend: c.msgsAfterAppend,
		apply:           c.takeApply(),
		reads:           c.readResults,
		proposed:        c.proposeResults,
		loads:           c.loads,
	}
	c.takeSnapReady(&rd)
	if c.hardStateDirty {
		rd.hardState = &hardState{Term: c.term, Vote: c.vote}
		c.hardStateDirty = false
	}
	c.msgs, c.msgsAfterAppend, c.readResults, c.proposeResults, c.loads = nil, nil, nil, nil, nil
	return rd
}

// send queues a message to be sent at once.
func (c *core) send(m Message) {
	c.msgs = append(c.msgs, c.stamp(m))
}

// sendAfterAppend queues a message that acknowledges log entries: it may
// leave only once they are durable.
func (c *core) sendAfterAppend(m Message) {
	c.msgsAfterAppend = append(c.msgsAfterAppend, c.stamp(m))
}

func (c *core) stamp(m Message) Message {
	m.From = c.id()
	if m.Term == 0 {
		m.Term = c.term
	}
	return m
}

func (c *core) id() ServerID { return c.cfg.id }

// appendLog appends entries to the log, tracking the configurations they
// carry.
func (c *core) appendLog(ents []Log) {
	if len(ents) == 0 {
		return
	}
	c.log.append(ents...)
	truncated := c.confs.truncateFrom(ents[0].Index)
	if c.trackConfigs(ents) || truncated {
		c.useConfig()
	}
}

// trackConfigs records the configuration entries among ents and reports
// whether there were any.
func (c *core) trackConfigs(ents []Log) bool {
	found := false
	for i := range ents {
		if ents[i].Type != LogConfiguration {
			continue
		}
		conf, err := decodeConfiguration(ents[i].Data)
		if err != nil {
			// Entries are validated where they enter the server (decoding
			// from the wire or the LogStore); this is a programming error.
			panic(fmt.Sprintf("raft: entry %d: %v", ents[i].Index, err))
		}
		c.confs.add(confEntry{index: ents[i].Index, conf: conf})
		found = true
	}
	return found
}

// useConfig derives the voter sets and peers from the latest configuration
// and, on a leader, starts or stops tracking peers.
func (c *core) useConfig() {
	latest := c.confs.latest().conf
	c.incoming = voterIDs(latest.Servers)
	c.outgoing = voterIDs(latest.Old)
	if c.cfg.bugs.SingleMajorityWhileJoint {
		c.outgoing = nil // planted bug (tests only): count C_new alone
	}
	c.peers = c.peers[:0]
	for _, id := range latest.memberIDs() {
		if id != c.id() {
			c.peers = append(c.peers, id)
		}
	}
	if c.role != roleLeader {
		return
	}
	// A lease is a quorum of the configuration it was confirmed in; a
	// quorum of the new one may not overlap it (read.go).
	c.reads.leaseOK = false
	next := make(map[ServerID]*progress, len(c.peers))
	for _, id := range c.peers {
		if pr, ok := c.prs[id]; ok {
			next[id] = pr
		} else {
			next[id] = c.newProgress()
		}
	}
	c.prs = next
}

func (c *core) newProgress() *progress {
	pr := newProgress(c.log.lastIndex()+1, c.cfg.maxInflightMsgs, c.cfg.maxInflightBytes)
	pr.lastHeard = c.leaderTicks
	pr.room = &c.inflightRoom
	return pr
}

// isVoter reports whether id votes in either half of the latest
// configuration.
func (c *core) isVoter(id ServerID) bool {
	for _, v := range c.incoming {
		if v == id {
			return true
		}
	}
	for _, v := range c.outgoing {
		if v == id {
			return true
		}
	}
	return false
}

// voters returns every voter of both halves except this server, sorted.
func (c *core) otherVoters() []ServerID {
	var ids []ServerID
	for _, id := range c.peers {
		if c.isVoter(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (c *core) violation(format string, args ...any) {
	c.violations = append(c.violations, fmt.Errorf("%w: "+format, append([]any{errProtocolViolation}, args...)...))
}
