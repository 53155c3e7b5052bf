package raft

import (
	"errors"
	"slices"
	"time"
)

// maxDrain bounds how many queued inputs of one kind the loop takes before
// it flushes, so that batching never starves other inputs.
const maxDrain = 512

// run is the event loop: it takes inputs, hands them to the core, and
// flushes the core's outputs after each batch.
func (r *Raft) run() {
	ticker := time.NewTicker(r.tick)
	defer ticker.Stop()
	consumer := r.trans.Consumer()
	for {
		// Shutdown first: after a storage failure nothing more may leave.
		select {
		case <-r.shutdownCh:
			r.failAll()
			return
		default:
		}
		select {
		case <-r.shutdownCh:
			r.failAll()
			return
		case <-ticker.C:
			r.onTick()
		case m := <-consumer:
			r.step(m)
			for i := 0; i < maxDrain; i++ {
				select {
				case m := <-consumer:
					r.step(m)
					continue
				default:
				}
				break
			}
		case f := <-r.applyCh:
			r.proposeBatch(f)
		case <-r.persistNotify:
			r.onPersisted()
		case <-r.applyNotify:
			r.onApplied()
		case <-r.loadNotify:
			if err := r.takeLoads(); err != nil {
				r.fatal(err)
				r.failAll()
				return
			}
		case op := <-r.opCh:
			op()
		}
		if err := r.flush(); err != nil {
			r.fatal(err)
			r.failAll()
			return
		}
	}
}

// runOnce is the event loop of a group on a Host (host.go): run by a
// step worker whenever the group has input, it takes what is queued
// without waiting, at most maxDrain of each kind, and flushes. It reports
// whether the loop still runs.
func (r *Raft) runOnce() bool {
	select {
	case <-r.shutdownCh:
		r.failAll()
		return false
	default:
	}
	if why := r.hosted.wakeDue.Swap(0); why != 0 {
		r.core.wake(wakeReason(why))
	}
	if r.hosted.tickDue.Swap(false) {
		r.onTick()
		r.hostSnapshotTick()
	}
	more := false
	consumer := r.trans.Consumer()
	for i := 0; ; i++ {
		if i == maxDrain {
			more = true
			break
		}
		select {
		case m := <-consumer:
			r.step(m)
			continue
		case f := <-r.applyCh:
			r.proposeBatch(f)
			continue
		case op := <-r.opCh:
			op()
			continue
		default:
		}
		break
	}
	select {
	case <-r.persistNotify:
		r.onPersisted()
	default:
	}
	select {
	case <-r.applyNotify:
		r.onApplied()
	default:
	}
	select {
	case <-r.loadNotify:
		if err := r.takeLoads(); err != nil {
			r.fatal(err)
			r.failAll()
			return false
		}
	default:
	}
	if err := r.flush(); err != nil {
		r.fatal(err)
		r.failAll()
		return false
	}
	r.syncQuiet()
	if more {
		r.wakeLoop()
	}
	return true
}

func (r *Raft) onTick() {
	r.checkDiskStall()
	r.core.tick()
	if r.metrics != nil {
		r.metrics.gauges(r.lastPub, r.applier.applied.Load(), r.core.quorumMargin())
		r.metrics.peerReports(r.core.peerReports(), r.tick)
	}
}

func (r *Raft) onPersisted() {
	r.persistMu.Lock()
	index, term := r.persistedAt[0], r.persistedAt[1]
	r.persistMu.Unlock()
	r.core.persisted(index, term)
}

func (r *Raft) onApplied() {
	r.core.appliedTo(r.applier.applied.Load())
	r.maybeSnapshotForLogSize()
}

func (r *Raft) step(m *Message) {
	if m.To != r.conf.LocalID {
		// Addresses can be reused by another server; IDs cannot.
		r.logger.Debug("dropping message for another server", "to", m.To, "from", m.From, "type", m.Type)
		return
	}
	if err := newerEntryType(m.Entries); err != nil {
		// A newer leader's entry this build cannot interpret: never store
		// or apply it. The leader retries; once this server is upgraded it
		// accepts. Transports that decode (tcp) refuse it earlier.
		r.refusedNewer++
		if r.refusedNewer&(r.refusedNewer-1) == 0 { // 1st, 2nd, 4th, ...: a reminder, not a flood
			r.logger.Error("refusing entries newer than this build; upgrade this server", "from", m.From, "type", m.Type, "refused", r.refusedNewer, "err", err)
		}
		return
	}
	if m.FromAddr != "" {
		r.addrs[m.From] = m.FromAddr
	}
	if m.Type == MsgPropose && r.core.role == roleLeader {
		if r.restoring {
			r.core.refuseProposal(m, refusedRestore)
			return
		}
		if r.hostRefusesForwarded(m) { // HostConfig.MaxPendingBytes
			return
		}
		m = stampForwarded(m, r.conf.sessionNow())
	}
	r.core.step(m)
	if m.Type == MsgSnapshotResp {
		r.snapshotAck(m)
	}
	if (m.Type == MsgAppend || m.Type == MsgHeartbeat || m.Type == MsgSnapshot) && r.core.lead == m.From {
		r.lastContact.Store(time.Now().UnixNano())
	}
}

// proposeBatch proposes f and every proposal queued behind it (up to
// MaxAppendEntries) as one append: one log write, one message per peer.
func (r *Raft) proposeBatch(f *future) {
	if r.restoring {
		f.respond(0, nil, ErrRestoreInProgress)
		return
	}
	batch := []*future{f}
	for len(batch) < r.conf.MaxAppendEntries {
		select {
		case f := <-r.applyCh:
			batch = append(batch, f)
			continue
		default:
		}
		break
	}
	ents := make([]Log, 0, len(batch))
	live := batch[:0]
	var now int64
	for _, f := range batch {
		if err := f.ctx.Err(); err != nil {
			f.respond(0, nil, err) // the caller gave up: do not commit it behind its back
			continue
		}
		if f.log.Type == LogSession {
			// The leader's clock gives session entries their log time;
			// the core stays clock-free.
			if now == 0 {
				now = r.conf.sessionNow()
			}
			stampSessionEntry(f.log.Data, now)
		}
		ents = append(ents, f.log)
		live = append(live, f)
	}
	ents, live = r.hostAdmit(ents, live) // HostConfig.MaxPendingBytes
	if len(ents) == 0 {
		return
	}
	first, err := r.core.propose(ents)
	if errors.Is(err, errNotLeader) && !r.conf.ForwardingDisabled {
		r.lastReq++
		if r.core.forwardProposals(r.lastReq, ents) == nil {
			r.forwards[r.lastReq] = live
			r.metrics.forwarded(len(ents))
			return
		}
	}
	if err != nil {
		if errors.Is(err, errNotLeader) {
			err = r.notLeader()
		}
		r.metrics.proposalRefused(err, len(live))
		for _, f := range live {
			f.respond(0, nil, err)
		}
		return
	}
	for i, f := range live {
		f.log.Index, f.log.Term = first+uint64(i), ents[i].Term
		r.inflight = append(r.inflight, f)
	}
	r.metrics.proposed(len(live))
}

// forwarded settles proposals this follower forwarded to the leader: once
// answered they wait, like a leader's, for their index to be applied here.
func (r *Raft) forwarded(res proposeResult) {
	fs := r.forwards[res.id]
	delete(r.forwards, res.id)
	var err error
	switch {
	case res.err == nil:
		for i, f := range fs {
			f.log.Index, f.log.Term = res.index+uint64(i), res.term
		}
		r.addInflight(fs)
		return
	case errors.Is(res.err, errNotLeader):
		err = r.notLeader()
	case errors.Is(res.err, errForwardUnknown):
		err = ErrLeadershipLost
	default:
		err = res.err
	}
	r.metrics.proposalRefused(err, len(fs))
	for _, f := range fs {
		f.respond(0, nil, err)
	}
}

// addInflight adds futures, in index order among themselves, to the
// futures waiting for their index to be applied, keeping that list in
// index order.
func (r *Raft) addInflight(fs []*future) {
	if len(fs) == 0 {
		return
	}
	at := len(r.inflight)
	for at > 0 && r.inflight[at-1].log.Index > fs[0].log.Index {
		at--
	}
	r.inflight = slices.Insert(r.inflight, at, fs...)
}

// flush acts on the core's outputs, in the order durability demands: term
// and vote first (written by the persister before the entries, every
// message waiting for them), then messages, log writes and applies.
func (r *Raft) flush() error {
	rd := r.core.ready()
	for _, err := range r.core.violations {
		r.logger.Warn("refused message", "err", err)
	}
	r.core.violations = nil
	held := r.holdForHardState(&rd) // stall_driver.go: term and vote go through the persister
	job := persistJob{entries: rd.entries, msgs: slices.Grow(held, len(rd.msgsAfterAppend)),
		compact: logCompaction{to: rd.compactTo, reset: rd.resetLog}, loads: rd.loads, hardState: rd.hardState}
	for i := range rd.msgsAfterAppend {
		job.msgs = append(job.msgs, r.route(&rd.msgsAfterAppend[i]))
	}
	if len(job.msgs) > 0 && r.persister.queuedMsgs.Load()+int64(len(job.msgs)) > maxQueuedMsgs {
		r.logger.Debug("persister backlog full: dropping messages", "count", len(job.msgs))
		for _, m := range job.msgs {
			r.metrics.messageDropped(m.msg.Type)
		}
		job.msgs = nil
	}
	if !job.empty() {
		r.persister.submit(job)
	}
	for i := range rd.msgs {
		r.sendNow(r.route(&rd.msgs[i]))
	}
	r.flushSnapshots(&rd) // before apply: a restore goes first
	for _, res := range rd.reads {
		f := r.reads[res.id]
		delete(r.reads, res.id)
		switch {
		case errors.Is(res.err, errReadFailed):
			f.respond(0, nil, ErrFollowerReadFailed)
		case res.err != nil:
			f.respond(0, nil, ErrLeadershipLost)
		default:
			f.respond(res.index, nil, nil)
		}
	}
	for _, res := range rd.proposed {
		r.forwarded(res)
	}
	if len(rd.apply) > 0 {
		futures := r.takeInflight(rd.apply[len(rd.apply)-1].Index)
		r.metrics.committed(futures)
		r.applier.submit(applyBatch{entries: rd.apply, futures: futures, committedAt: r.metrics.now()})
	}
	r.publish()
	return nil
}

// takeInflight removes and returns the proposals up to index.
func (r *Raft) takeInflight(index uint64) []*future {
	n := 0
	for n < len(r.inflight) && r.inflight[n].log.Index <= index {
		n++
	}
	if n == 0 {
		return nil
	}
	taken := append([]*future(nil), r.inflight[:n]...)
	r.inflight = append(r.inflight[:0], r.inflight[n:]...)
	return taken
}

// route stamps a message with this server's address and finds where it
// goes: the configuration's address, else the one the peer last sent from.
func (r *Raft) route(m *Message) outMsg {
	m.FromAddr = r.trans.LocalAddr()
	addr, ok := r.core.confs.latest().conf.address(m.To)
	if !ok {
		addr = r.addrs[m.To]
	}
	return outMsg{addr: addr, msg: m}
}

func (r *Raft) sendNow(m outMsg) {
	if m.addr == "" {
		r.logger.Debug("no address for peer", "peer", m.msg.To, "type", m.msg.Type)
		r.metrics.messageDropped(m.msg.Type)
		return
	}
	if err := r.trans.Send(m.addr, m.msg); err != nil {
		r.logger.Debug("send failed", "peer", m.msg.To, "type", m.msg.Type, "err", err)
		r.metrics.messageDropped(m.msg.Type)
		return
	}
	r.metrics.messageSent(m.msg.Type)
}

// loadsDone is the persister's report of the loads it did.
func (r *Raft) loadsDone(res []loadResult) {
	r.persistMu.Lock()
	r.loadResults = append(r.loadResults, res...)
	r.persistMu.Unlock()
	r.notify(r.loadNotify)
}

// takeLoads hands the core the entries the persister read for it. An
// entry missing because a compaction removed it meanwhile is no error (the
// follower gets a snapshot instead); any other failure to read an entry
// the log holds stops the server, as a failed write does.
func (r *Raft) takeLoads() error {
	r.persistMu.Lock()
	res := r.loadResults
	r.loadResults = nil
	r.persistMu.Unlock()
	for _, lr := range res {
		if lr.err != nil {
			if !errors.Is(lr.err, ErrLogNotFound) || lr.load.Lo > r.core.log.snapIndex {
				return lr.err
			}
			lr.ents = nil
		}
		r.core.loaded(lr.load, lr.ents)
	}
	return nil
}

// persistedTo is the persister's report that the log is durable up to
// (index, term).
func (r *Raft) persistedTo(index, term uint64) {
	r.persistMu.Lock()
	r.persistedAt = [2]uint64{index, term}
	r.persistMu.Unlock()
	r.notify(r.persistNotify)
}

// publish updates the state public getters read, tells observers about
// changes, and settles futures that a change of role decides.
func (r *Raft) publish() {
	c := r.core
	p := published{
		state:     publicState(c.role),
		term:      c.term,
		leaderID:  c.lead,
		lastIndex: c.log.lastIndex(),
		commit:    c.log.committed,

		logBytes:      c.log.memBytes,
		pendingBytes:  c.log.pendingBytes(),
		snapshotIndex: c.log.snapIndex,
		otherVoters:   len(c.incoming),

		diskStalled:  r.stall.stalled,
		stalledSince: r.stall.since,
	}
	if slices.Contains(c.incoming, c.id()) {
		p.otherVoters--
	}
	if p.leaderID != "" {
		p.leaderAddr, _ = c.confs.latest().conf.address(p.leaderID)
		if p.leaderAddr == "" {
			p.leaderAddr = r.addrs[p.leaderID]
		}
	}
	if c.role == roleLeader {
		p.leaderAddr = r.trans.LocalAddr()
	}
	old := r.lastPub
	r.lastPub = p
	r.pubMu.Lock()
	r.pub = p
	r.pubMu.Unlock()

	if old.state == Leader && p.state != Leader || old.term != p.term && len(r.inflight) > 0 {
		r.failLeaderWork()
	}
	r.settleMembership()
	r.metrics.published(p, c.counts)
	if old.state != p.state || old.term != p.term || old.leaderID != p.leaderID || old.diskStalled != p.diskStalled {
		if r.metrics != nil {
			r.metrics.gauges(p, r.applier.applied.Load(), c.quorumMargin())
		}
		if (old.state == Leader) != (p.state == Leader) {
			r.setLeaderCh(p.state == Leader)
		}
		r.observe(Observation{State: p.state, Term: p.term, LeaderID: p.leaderID, LeaderAddr: p.leaderAddr, DiskStalled: p.diskStalled})
	}
}

// failLeaderWork fails proposals not yet committed, which only a leader
// can finish: they may still commit under the next leader, so the outcome
// is unknown. (The core fails read requests itself.)
func (r *Raft) failLeaderWork() {
	for _, f := range r.inflight {
		f.respond(0, nil, ErrLeadershipLost)
	}
	r.inflight = nil
}

// failAll fails every operation the loop holds, at shutdown.
func (r *Raft) failAll() {
	if r.hosted != nil {
		r.hosted.host.leaveQuiet(r.hosted.id) // a stopped leader must not be vouched for
	}
	err := r.shutdownErr
	for _, f := range r.inflight {
		f.respond(0, nil, err)
	}
	for _, f := range r.reads {
		f.respond(0, nil, err)
	}
	for _, fs := range r.forwards {
		for _, f := range fs {
			f.respond(0, nil, err)
		}
	}
	for {
		select {
		case f := <-r.applyCh:
			f.respond(0, nil, err)
		default:
			r.pubMu.Lock()
			r.pub.state = Shutdown
			r.pubMu.Unlock()
			r.metrics.shutdown(r.lastPub, r.applier.applied.Load())
			return
		}
	}
}

func (r *Raft) notLeader() error {
	p := r.lastPub
	if p.state == Leader {
		p.leaderID, p.leaderAddr = "", ""
	}
	return &NotLeaderError{LeaderID: p.leaderID, LeaderAddress: p.leaderAddr}
}

func publicState(ro role) RaftState {
	switch ro {
	case roleLeader:
		return Leader
	case roleCandidate, rolePreCandidate:
		return Candidate
	default:
		return Follower
	}
}
