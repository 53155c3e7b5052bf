package raft

import (
	"errors"
	"time"

	"github.com/keelraft/raft/metrics"
)

// raftMetrics holds the instruments a Raft reports to Config.Metrics. It is
// nil when Config.Metrics is nil, and every method is then a no-op that
// reads no clock: metrics cost nothing unless asked for.
//
// Gauges are set from the same published figures Stats returns, on every
// tick and whenever the role, term or leader changes. Counters of protocol
// events come from the core's coreCounts, reported as they grow after each
// batch; the rest are counted where they happen, on the goroutine that does
// the work (the loop, the persister, the applier, a snapshot worker), so
// instruments are shared by goroutines (metrics.Sink requires that).
type raftMetrics struct {
	sink metrics.Sink

	term, commitIndex, appliedIndex, lastLogIndex, snapshotIndex metrics.Gauge
	logMemory, logPending, diskStalled, hasLeader, quorumMargin  metrics.Gauge
	sessions, snapshotReceiving                                  metrics.Gauge
	state                                                        [3]metrics.Gauge // Follower, Candidate, Leader

	leaderChanges, preVotes, elections, electionsWon, diskStepAsides, diskStalls metrics.Counter
	readRounds, readIndexReads, leaseReads, staleReads                           metrics.Counter
	proposals, forwardedOut, forwardedIn, commits, applies                       metrics.Counter
	refused                                                                      [numRefusals]metrics.Counter
	sent, dropped                                                                [msgTypeEnd]metrics.Counter
	sessionOps                                                                   [numSessionResults]metrics.Counter
	snapshotsTaken, snapshotsSent, snapshotsReceived, snapshotsFailed            metrics.Counter
	snapshotSentBytes, snapshotReceivedBytes                                     metrics.Counter

	commitLatency, applyLatency, logWrite, logWriteEntries, stableWrite     metrics.Histogram
	snapshotTake, snapshotPersist, snapshotSize, snapshotSend, snapshotRecv metrics.Histogram
	snapshotRestore                                                         metrics.Histogram

	// Event loop only.
	counts      coreCounts // as last reported
	commit      uint64     // the commit index last reported
	leader      ServerID   // the leader last reported
	peers       map[ServerID]*peerMetrics
	peersZeroed bool // every peer gauge is 0 (this server does not lead)
}

// peerMetrics are a leader's gauges for one peer.
type peerMetrics struct {
	match, lag, inflight, silent metrics.Gauge
}

// refusal is why a proposal was refused without being appended.
type refusal uint8

const (
	refusedQueueFullReason refusal = iota
	refusedNotLeaderReason
	refusedTransferReason
	refusedRestoreReason
	numRefusals
)

var refusalNames = [numRefusals]string{"queue_full", "not_leader", "transfer", "restore"}

// sessionResult is what the applier did with a session entry.
type sessionResult uint8

const (
	sessionRegistered sessionResult = iota
	sessionClosed
	sessionApplied
	sessionDuplicate
	sessionStale
	sessionExpired
	numSessionResults
)

var sessionResultNames = [numSessionResults]string{"registered", "closed", "applied", "duplicate", "stale", "expired"}

func raftDesc(name, help string, unit metrics.Unit, buckets []float64, labels ...metrics.Label) metrics.Desc {
	return metrics.Desc{Subsystem: "raft", Name: name, Help: help, Unit: unit, Labels: labels, Buckets: buckets}
}

func newRaftMetrics(sink metrics.Sink) *raftMetrics {
	if sink == nil {
		return nil
	}
	g := func(name, help string, unit metrics.Unit, labels ...metrics.Label) metrics.Gauge {
		return sink.Gauge(raftDesc(name, help, unit, nil, labels...))
	}
	c := func(name, help string, unit metrics.Unit, labels ...metrics.Label) metrics.Counter {
		return sink.Counter(raftDesc(name, help, unit, nil, labels...))
	}
	h := func(name, help string, unit metrics.Unit, buckets []float64) metrics.Histogram {
		return sink.Histogram(raftDesc(name, help, unit, buckets))
	}
	m := &raftMetrics{sink: sink, peers: map[ServerID]*peerMetrics{}, peersZeroed: true}

	m.term = g("term", "The current term.", metrics.Count)
	for i, s := range []RaftState{Follower, Candidate, Leader} {
		m.state[i] = g("state", "1 for the server's current role, 0 for the others.", metrics.Count, metrics.Label{Name: "state", Value: s.String()})
	}
	m.hasLeader = g("has_leader", "1 if this server knows a leader of its term (itself included), else 0.", metrics.Count)
	m.commitIndex = g("commit_index", "The highest log index known to be committed.", metrics.Count)
	m.appliedIndex = g("applied_index", "The highest log index applied to the FSM.", metrics.Count)
	m.lastLogIndex = g("last_log_index", "The last index in the log.", metrics.Count)
	m.snapshotIndex = g("last_snapshot_index", "The index of the newest snapshot taken or installed.", metrics.Count)
	m.logMemory = g("log_memory", "Bytes of log entries held in memory (bounded by MaxLogCacheBytes plus unapplied entries).", metrics.Bytes)
	m.logPending = g("log_pending", "Bytes of log entries not yet applied (bounded by MaxPendingBytes).", metrics.Bytes)
	m.diskStalled = g("disk_stalled", "1 while a log or stable-store write has been under way longer than DiskStallTimeout.", metrics.Count)
	m.quorumMargin = g("quorum_margin", "Leader: voters heard from within an election timeout (itself included) minus a quorum; 0 means one more lost voter loses the quorum. 0 on other servers.", metrics.Count)
	m.sessions = g("sessions", "Client sessions in the session table (expired ones until swept).", metrics.Count)
	m.snapshotReceiving = g("snapshot_receive_progress", "Bytes received so far of the snapshot being installed from the leader; 0 when none is.", metrics.Bytes)

	m.leaderChanges = c("leader_changes", "Times this server learned of a new leader (itself included).", metrics.Count)
	m.preVotes = c("prevotes_started", "Pre-vote campaigns started.", metrics.Count)
	m.elections = c("elections_started", "Elections started (campaigns that raised the term).", metrics.Count)
	m.electionsWon = c("elections_won", "Times this server became leader.", metrics.Count)
	m.diskStalls = c("disk_stalls", "Times a write stalled beyond DiskStallTimeout.", metrics.Count)
	m.diskStepAsides = c("disk_step_asides", "Times this server stepped down as leader because its disk stalled.", metrics.Count)
	m.readRounds = c("read_index_rounds", "Heartbeat rounds started to confirm leadership for reads.", metrics.Count)
	m.readIndexReads = c("read_index_reads", "Reads answered by the leader after a confirmation round (followers' reads included).", metrics.Count)
	m.leaseReads = c("lease_reads", "Reads the leader answered from its lease, without a round trip.", metrics.Count)
	m.staleReads = c("stale_reads", "Read(Stale) calls answered from the local FSM.", metrics.Count)
	m.proposals = c("proposals", "Entries proposed on this server while it led (Apply, Barrier, sessions).", metrics.Count)
	m.forwardedOut = c("forwarded_proposals", "Entries this follower forwarded to the leader.", metrics.Count)
	m.forwardedIn = c("forwarded_received", "Entries this leader appended for followers.", metrics.Count)
	for i := range m.refused {
		m.refused[i] = c("proposals_refused", "Proposals refused without being appended, by reason.", metrics.Count, metrics.Label{Name: "reason", Value: refusalNames[i]})
	}
	m.commits = c("commits", "Log entries this server learned are committed (entries covered by an installed snapshot included).", metrics.Count)
	m.applies = c("applies", "Log entries the applier processed (commands, no-ops, configurations, session entries).", metrics.Count)
	for t := MessageType(1); t < msgTypeEnd; t++ {
		l := metrics.Label{Name: "type", Value: t.String()}
		m.sent[t] = c("messages_sent", "Messages handed to the transport, by type.", metrics.Count, l)
		m.dropped[t] = c("messages_dropped", "Messages not sent, by type: the transport refused them, no address was known, or too many waited behind a stalled write.", metrics.Count, l)
	}
	for i := range m.sessionOps {
		m.sessionOps[i] = c("session_entries", "Session entries applied, by outcome.", metrics.Count, metrics.Label{Name: "result", Value: sessionResultNames[i]})
	}
	m.snapshotsTaken = c("snapshots_taken", "Snapshots this server took and stored.", metrics.Count)
	m.snapshotsFailed = c("snapshots_failed", "Snapshots that failed to be taken, stored, sent, received or restored.", metrics.Count)
	m.snapshotsSent = c("snapshots_sent", "Snapshots sent to followers in full.", metrics.Count)
	m.snapshotsReceived = c("snapshots_received", "Snapshots received in full from the leader and stored.", metrics.Count)
	m.snapshotSentBytes = c("snapshot_sent", "Bytes of snapshot chunks sent to followers (resent chunks included).", metrics.Bytes)
	m.snapshotReceivedBytes = c("snapshot_received", "Bytes of snapshot chunks written to the store from the leader.", metrics.Bytes)

	m.commitLatency = h("commit_latency", "From a proposal's arrival in the event loop to its commit being known, per entry (leader and forwarding follower).", metrics.Seconds, metrics.LatencyBuckets)
	m.applyLatency = h("apply_latency", "From a batch's commit being known to its application by the FSM, per batch.", metrics.Seconds, metrics.LatencyBuckets)
	m.logWrite = h("log_write_duration", "LogStore.StoreLogs calls (a write and its fsync), per call.", metrics.Seconds, metrics.LatencyBuckets)
	m.logWriteEntries = h("log_write_entries", "Entries per LogStore.StoreLogs call.", metrics.Count, metrics.EntriesBuckets)
	m.stableWrite = h("stable_write_duration", "Writes of term and vote to the StableStore.", metrics.Seconds, metrics.LatencyBuckets)
	m.snapshotTake = h("snapshot_take_duration", "FSM.Snapshot calls (applies wait for them).", metrics.Seconds, metrics.LatencyBuckets)
	m.snapshotPersist = h("snapshot_persist_duration", "Writing a snapshot to the SnapshotStore (FSMSnapshot.Persist until the sink is closed).", metrics.Seconds, metrics.DurationBuckets)
	m.snapshotSize = h("snapshot_size", "Size of the snapshots taken.", metrics.Bytes, metrics.SizeBuckets)
	m.snapshotSend = h("snapshot_send_duration", "Sending a snapshot to a follower, from the first chunk to the last acknowledgement.", metrics.Seconds, metrics.DurationBuckets)
	m.snapshotRecv = h("snapshot_receive_duration", "Receiving a snapshot from the leader, from the first chunk to the sink closed.", metrics.Seconds, metrics.DurationBuckets)
	m.snapshotRestore = h("snapshot_restore_duration", "FSM.Restore of a snapshot received from the leader or passed to Restore.", metrics.Seconds, metrics.DurationBuckets)
	return m
}

// now is the time to measure a latency from: zero, without reading the
// clock, when metrics are off.
func (m *raftMetrics) now() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

func observeSince(h metrics.Histogram, start time.Time) {
	h.Observe(time.Since(start).Seconds())
}

func addGrowth(c metrics.Counter, now, last uint64) {
	if now > last {
		c.Add(now - last)
	}
}

func boolGauge(g metrics.Gauge, v bool) {
	if v {
		g.Set(1)
	} else {
		g.Set(0)
	}
}

// gauges sets the gauges from the figures Stats returns. The loop calls it
// on every tick and when role, term, leader or disk state change, rather
// than after every batch: a scrape needs no fresher figures, and the hot
// path stays as it is.
func (m *raftMetrics) gauges(p published, applied uint64, quorumMargin int) {
	if m == nil {
		return
	}
	m.term.Set(float64(p.term))
	for i, g := range m.state {
		boolGauge(g, int(p.state) == i)
	}
	boolGauge(m.hasLeader, p.leaderID != "")
	m.commitIndex.Set(float64(p.commit))
	m.appliedIndex.Set(float64(applied))
	m.lastLogIndex.Set(float64(p.lastIndex))
	m.snapshotIndex.Set(float64(p.snapshotIndex))
	m.logMemory.Set(float64(p.logBytes))
	m.logPending.Set(float64(p.pendingBytes))
	boolGauge(m.diskStalled, p.diskStalled)
	m.quorumMargin.Set(float64(quorumMargin))
}

// published counts what changed since the last batch: a new leader,
// entries committed, and the growth of the core's event counts. Event
// loop only.
func (m *raftMetrics) published(p published, counts coreCounts) {
	if m == nil {
		return
	}
	if p.leaderID != "" && p.leaderID != m.leader {
		m.leaderChanges.Add(1)
	}
	m.leader = p.leaderID
	if p.commit > m.commit {
		m.commits.Add(p.commit - m.commit)
		m.commit = p.commit
	}

	last := m.counts
	addGrowth(m.preVotes, counts.preVotes, last.preVotes)
	addGrowth(m.elections, counts.elections, last.elections)
	addGrowth(m.electionsWon, counts.electionsWon, last.electionsWon)
	addGrowth(m.readRounds, counts.readRounds, last.readRounds)
	addGrowth(m.readIndexReads, counts.readIndexReads, last.readIndexReads)
	addGrowth(m.leaseReads, counts.leaseReads, last.leaseReads)
	addGrowth(m.forwardedIn, counts.forwardedIn, last.forwardedIn)
	addGrowth(m.diskStepAsides, counts.diskStepAsides, last.diskStepAsides)
	m.counts = counts
}

// shutdown sets the gauges of a server that stopped: no role (every state
// gauge 0), no leader, no peers; a sink that outlives the server then
// shows no stale leader.
func (m *raftMetrics) shutdown(p published, applied uint64) {
	if m == nil {
		return
	}
	p.state, p.leaderID = Shutdown, ""
	m.gauges(p, applied, 0)
	m.peerReports(nil, 0)
}

// startCommit sets the figures the commit counter starts from, so that a
// restart does not count the log it recovers as committed again.
func (m *raftMetrics) startCommit(commit uint64) {
	if m != nil {
		m.commit = commit
	}
}

// peerReports sets a leader's per-peer gauges; on any other server, peer
// gauges read 0 (they would otherwise keep a former leadership's
// figures). Event loop only.
func (m *raftMetrics) peerReports(reports []peerReport, tick time.Duration) {
	if m == nil {
		return
	}
	if len(reports) == 0 {
		if !m.peersZeroed {
			for _, pm := range m.peers {
				pm.lag.Set(0)
				pm.inflight.Set(0)
				pm.silent.Set(0)
			}
			m.peersZeroed = true
		}
		return
	}
	m.peersZeroed = false
	for _, pr := range reports {
		pm := m.peers[pr.id]
		if pm == nil {
			l := metrics.Label{Name: "peer", Value: string(pr.id)}
			pm = &peerMetrics{
				match:    m.sink.Gauge(raftDesc("peer_match_index", "Leader: the highest index known to be on the peer.", metrics.Count, nil, l)),
				lag:      m.sink.Gauge(raftDesc("peer_lag_entries", "Leader: entries in the leader's log beyond the peer's match index; 0 on other servers.", metrics.Count, nil, l)),
				inflight: m.sink.Gauge(raftDesc("peer_inflight_appends", "Leader: appends sent to the peer and not yet acknowledged.", metrics.Count, nil, l)),
				silent:   m.sink.Gauge(raftDesc("peer_last_contact", "Leader: time since the peer last answered (since this leadership began if it never has).", metrics.Seconds, nil, l)),
			}
			m.peers[pr.id] = pm
		}
		pm.match.Set(float64(pr.match))
		pm.lag.Set(float64(pr.lag))
		pm.inflight.Set(float64(pr.inflight))
		pm.silent.Set((time.Duration(pr.silentTicks) * tick).Seconds())
	}
}

func (m *raftMetrics) messageSent(t MessageType) {
	if m != nil && t < msgTypeEnd {
		m.sent[t].Add(1)
	}
}

func (m *raftMetrics) messageDropped(t MessageType) {
	if m != nil && t < msgTypeEnd {
		m.dropped[t].Add(1)
	}
}

func (m *raftMetrics) proposed(n int) {
	if m != nil {
		m.proposals.Add(uint64(n))
	}
}

func (m *raftMetrics) forwarded(n int) {
	if m != nil {
		m.forwardedOut.Add(uint64(n))
	}
}

// proposalRefused counts proposals refused with err, when err says they
// were not appended.
func (m *raftMetrics) proposalRefused(err error, n int) {
	if m == nil {
		return
	}
	var why refusal
	var nl *NotLeaderError
	switch {
	case errors.Is(err, ErrProposalQueueFull):
		why = refusedQueueFullReason
	case errors.Is(err, ErrNotLeader), errors.As(err, &nl):
		why = refusedNotLeaderReason
	case errors.Is(err, ErrLeadershipTransferInProgress):
		why = refusedTransferReason
	case errors.Is(err, ErrRestoreInProgress):
		why = refusedRestoreReason
	default:
		return
	}
	m.refused[why].Add(uint64(n))
}

// committed records the commit latency of proposals whose commit is known.
func (m *raftMetrics) committed(fs []*future) {
	if m == nil || len(fs) == 0 {
		return
	}
	now := time.Now()
	for _, f := range fs {
		if !f.start.IsZero() {
			m.commitLatency.Observe(now.Sub(f.start).Seconds())
		}
	}
}

// applied records a batch the applier finished.
func (m *raftMetrics) applied(n int, committedAt time.Time) {
	if m == nil {
		return
	}
	m.applies.Add(uint64(n))
	if !committedAt.IsZero() {
		observeSince(m.applyLatency, committedAt)
	}
}

func (m *raftMetrics) sessionEntry(r sessionResult) {
	if m != nil {
		m.sessionOps[r].Add(1)
	}
}

func (m *raftMetrics) sessionCount(n int) {
	if m != nil {
		m.sessions.Set(float64(n))
	}
}

func (m *raftMetrics) logWritten(entries int, start time.Time) {
	if m != nil {
		observeSince(m.logWrite, start)
		m.logWriteEntries.Observe(float64(entries))
	}
}

func (m *raftMetrics) stableWritten(start time.Time) {
	if m != nil {
		observeSince(m.stableWrite, start)
	}
}

func (m *raftMetrics) diskStall() {
	if m != nil {
		m.diskStalls.Add(1)
	}
}

func (m *raftMetrics) staleRead() {
	if m != nil {
		m.staleReads.Add(1)
	}
}

func (m *raftMetrics) snapshotTaken(start time.Time) {
	if m != nil {
		observeSince(m.snapshotTake, start)
	}
}

func (m *raftMetrics) snapshotPersisted(size int64, start time.Time, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.snapshotsFailed.Add(1)
		return
	}
	observeSince(m.snapshotPersist, start)
	m.snapshotSize.Observe(float64(size))
	m.snapshotsTaken.Add(1)
}

func (m *raftMetrics) snapshotFailed() {
	if m != nil {
		m.snapshotsFailed.Add(1)
	}
}

func (m *raftMetrics) snapshotChunkSent(n int) {
	if m != nil {
		m.snapshotSentBytes.Add(uint64(n))
	}
}

func (m *raftMetrics) snapshotDelivered(start time.Time) {
	if m != nil {
		m.snapshotsSent.Add(1)
		observeSince(m.snapshotSend, start)
	}
}

func (m *raftMetrics) snapshotChunkReceived(n int, offset uint64) {
	if m != nil {
		m.snapshotReceivedBytes.Add(uint64(n))
		m.snapshotReceiving.Set(float64(offset))
	}
}

// snapshotReceiveEnded ends a transfer from the leader: received in full
// (ok, after start) or given up.
func (m *raftMetrics) snapshotReceiveEnded(start time.Time, ok bool) {
	if m == nil {
		return
	}
	m.snapshotReceiving.Set(0)
	if ok {
		m.snapshotsReceived.Add(1)
		observeSince(m.snapshotRecv, start)
	} else {
		m.snapshotsFailed.Add(1)
	}
}

func (m *raftMetrics) snapshotRestored(start time.Time) {
	if m != nil {
		observeSince(m.snapshotRestore, start)
	}
}
