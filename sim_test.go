package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/keelraft/raft/internal/sim"
)

// The simulator: whole clusters of cores driven from one goroutine in
// virtual time, with faults drawn from a seed, safety checkers after every
// event (sim_check_test.go), clients whose history porcupine checks
// (sim_client_test.go), and a liveness phase. A failing seed prints its
// fault plan, the last events and the command that replays it.
//
// Each simulated server does what the driver (loop.go, persist.go) does
// with the core's outputs, in the same order: the hard state is durable
// before any message leaves; log writes complete one by one after a
// random disk latency, and only then do the acknowledgements that depend
// on them leave; committed durable entries are applied at once. A crash
// loses the writes still queued.

const (
	simTick          = 50 * sim.Millisecond // the driver's default: HeartbeatInterval/2
	simElectionTicks = 20
	simET            = simElectionTicks * simTick
	// simClockDrift bounds how much the servers' clock rates differ: a
	// period of 75 % to 125 % of simTick, so one runs at least 0.75/1.25
	// = 60 % as fast as another. Lease reads are sized for it.
	simClockDrift = 0.4
)

// simOptions configures one run.
type simOptions struct {
	seed     uint64
	servers  int
	ticks    int // the fault phase lasts at least this many ticks over all servers
	ops      int // and at least this many client operations
	clients  int
	bugs     plantedBugs
	snapBugs snapshotBugs
	sessBugs sessionBugs
	// lazyHardState is a planted driver bug: term and vote are written
	// with the next log write instead of before any message leaves.
	lazyHardState bool
	// src, when set, replaces the seed's random source (fuzzing).
	src rand.Source
	// The multi-group simulation (sim_host_test.go) runs many clusters on
	// one scheduler and one network between hosts: sched and net, when
	// set, are shared, and noSpares keeps the servers to the hosts.
	sched    *sim.Scheduler
	net      *sim.Network
	noSpares bool
}

// simResult sums up a run.
type simResult struct {
	err                      error
	ticks, ops, done, unsure int
	committed, terms         int
	crashes, partitions      int
	leaderCrashes            int
	retries, expired         int // puts resent; refused as their session expired
	loads                    int // reads of entries evicted from a core's memory
	queueFull                int // puts refused: MaxPendingBytes
	registered               int // sessions registered
	diskStalls, hangChecks   int // stalls a core was told of; liveness checks under a hung leader (sim_stall_test.go)
	trace                    uint64
}

type simCluster struct {
	opt    simOptions
	rand   *rand.Rand
	sched  *sim.Scheduler
	net    *sim.Network
	faults sim.Faults
	trace  *sim.Trace
	hist   sim.History
	writes map[uint64]*simWriteOp // puts by client and request
	// snapData holds every snapshot's FSM state by ID: the bytes a real
	// transfer would stream.
	snapData map[string]*simFSM
	// snapEvery is how many applied entries make a server snapshot.
	snapEvery uint64
	check     *simChecker

	ids     []ServerID
	names   []string
	nodes   []*simNode
	clients []*simClient
	keys    []string

	// changeEvery and transferEvery are the mean times between membership
	// changes and leadership transfers.
	changeEvery, transferEvery sim.Time

	// leaseReads: every server sets CheckQuorum alike, as lease reads
	// assume, so clients use them (with CheckQuorum off they must fall
	// back to ReadIndex).
	leaseReads bool
	// forward: followers forward clients' puts to the leader (proposal
	// forwarding) instead of redirecting the client.
	forward bool

	// sessions: clients put through client sessions, resending a put of
	// unknown outcome with the same sequence number; otherwise (a quarter
	// of the seeds) plain commands, given up when their outcome is
	// unknown, which a double apply would show.
	sessions bool
	// sessionTTL is the TTL clients register their sessions with: short
	// in some seeds, so that sessions expire under the clients.
	sessionTTL sim.Time

	hangs simHangs // sim_stall_test.go: the seed's disk hangs

	// Hooks of the multi-group simulation (sim_host_test.go): sendHook
	// sends a message through the hosts' router instead of the network,
	// crashHook crashes the server's whole host, and replay is the
	// command a failure prints.
	sendHook  func(m Message)
	crashHook func(n *simNode)
	// flushHook sees every server after it flushed (the host's view of
	// its quiet groups).
	flushHook func(n *simNode)
	// idleUntil: the clients start no operation before then, so that the
	// group goes quiet (sim_quiet_test.go).
	idleUntil sim.Time
	replay    string

	calm    bool // the liveness phase: no new faults, no new client ops
	err     error
	res     simResult
	dataDir string // where a failed linearizability check writes its visualisation
}

// simNode is one server: its core (nil while down), what it made durable,
// and the writes still queued to its disk.
type simNode struct {
	s      *simCluster
	id     ServerID
	cfg    coreConfig
	period sim.Time // this server's tick: ±25 % of simTick, so clocks disagree
	disk   sim.Time // the longest a log write takes
	// clockOffset is how far its wall clock, which stamps session
	// entries, is ahead of virtual time.
	clockOffset sim.Time
	c           *core
	inc         int // incarnation; events scheduled by an earlier one are void

	hs           hardState
	durable      []Log          // the LogStore, entries durableFirst on
	durableFirst uint64         // the index of durable[0]
	snaps        []SnapshotMeta // the SnapshotStore, in the order stored
	writes       []simWrite
	lazyHS       *hardState
	snapshotting bool // a snapshot is being persisted

	hang   simDiskHang // sim_stall_test.go: whether its disk hangs
	mirror simMirror   // the core's log as the checkers see it
	fsm    simFSM
	// Client work this server holds as leader.
	props      map[uint64]simPending // proposals by log index
	fwdProps   map[uint64]simPending // proposals forwarded to the leader, by request ID
	reads      map[uint64]simPending // read requests by ID
	readWaits  []simPending          // reads waiting for their index to apply
	lastRead   uint64
	wasLeader  bool
	term       uint64
	commitSeen uint64
}

// simWrite is one log write in the disk queue, with the messages that wait
// for it.
type simWrite struct {
	entries   []Log
	msgs      []Message
	hs        *hardState
	compactTo uint64 // trim the log first: up to compactTo, or (reset) all of it
	reset     bool
	loads     []logLoad // reads of evicted entries, after the write
}

func newSimCluster(opt simOptions, dataDir string) *simCluster {
	src := opt.src
	if src == nil {
		src = rand.NewPCG(opt.seed, 0x5eed)
	}
	r := rand.New(src)
	if opt.servers == 0 {
		opt.servers = []int{3, 5, 7}[r.IntN(3)]
	}
	s := &simCluster{
		opt:      opt,
		rand:     r,
		trace:    sim.NewTrace(80),
		writes:   map[uint64]*simWriteOp{},
		snapData: map[string]*simFSM{},
		dataDir:  dataDir,
		sched:    opt.sched,
	}
	if s.sched == nil {
		s.sched = &sim.Scheduler{}
	}
	// Every seed changes the membership as it goes — two spare servers,
	// started empty, may be added, members removed or demoted — and
	// transfers leadership.
	pool := min(opt.servers+2, 7)
	if opt.noSpares {
		pool = opt.servers
	}
	s.changeEvery = simET * sim.Time(2+r.IntN(9))
	s.transferEvery = simET * sim.Time(2+r.IntN(9))
	// The time opt.ticks take when every server is up.
	nominal := sim.Time(opt.ticks/pool+1) * simTick
	s.faults = sim.DrawFaults(r, pool, simET, nominal)
	s.net = sim.NewNetwork(r, s.faults)
	if opt.net != nil {
		s.net = opt.net
	}
	s.check = newSimChecker(s)
	s.ids = serverIDs(pool)
	// Every seed snapshots often, so that logs are compacted and lagging
	// or new servers catch up by InstallSnapshot.
	s.snapEvery = uint64(5 + r.IntN(60))
	trailing := uint64(r.IntN(20))
	cacheRand := rand.New(rand.NewPCG(opt.seed, 0xcac4e))
	// PreVote and CheckQuorum may be switched off by users, and differ
	// between servers while a change of them rolls out. Without
	// CheckQuorum a cut-off leader keeps leading, beside the new one.
	preVote, checkQuorum := simSetting(r), simSetting(r)
	boot := Log{Index: 1, Term: 1, Type: LogConfiguration, Data: encodeConfiguration(bootstrapConfig(s.ids[:opt.servers]))}
	for i, id := range s.ids {
		cfg := coreConfig{
			id: id, electionTicks: simElectionTicks, heartbeatTicks: 2, leaseTicks: simElectionTicks / 2,
			leaseReadTicks: leaseReadTicksFor(simElectionTicks, simClockDrift),
			preVote:        preVote(), checkQuorum: checkQuorum(),
			// Small batches and windows split what a leader sends, which
			// opens the windows some bugs need.
			maxAppendEntries: []int{1, 2, 3, 8, 64}[r.IntN(5)], maxAppendBytes: 1 << 20,
			maxInflightMsgs: []int{1, 2, 4, 16}[r.IntN(4)],
			rand:            rand.New(rand.NewPCG(r.Uint64(), uint64(i))),
			bugs:            opt.bugs,
			snapBugs:        opt.snapBugs,
			trailingLogs:    trailing,
			// From its own stream, so that the other draws stay as they
			// were: most seeds evict applied entries from memory after a
			// few of them, so that leaders read lagging followers'
			// entries back from the disk.
			logCacheBytes: []uint64{0, 150, 600, 4000}[cacheRand.IntN(4)],
			// A few entries' worth in some seeds: leaders refuse puts,
			// followers hold entries back.
			maxPendingBytes: []uint64{0, 0, 300, 1500}[cacheRand.IntN(4)],
		}
		n := &simNode{
			s: s, id: id, cfg: cfg,
			period: simTick * sim.Time(75+r.IntN(51)) / 100,
			disk:   s.faults.DiskDelay[i],

			durableFirst: 1,
		}
		if i < opt.servers {
			n.hs, n.durable = hardState{Term: 1}, []Log{boot}
		}
		s.nodes = append(s.nodes, n)
		s.names = append(s.names, string(id))
	}
	s.leaseReads = true
	for _, n := range s.nodes {
		s.leaseReads = s.leaseReads && n.cfg.checkQuorum == s.nodes[0].cfg.checkQuorum
	}
	s.forward = r.IntN(2) == 0
	s.sessions = r.IntN(4) != 0
	for i := 0; i < 3+r.IntN(6); i++ { // enough keys that porcupine's per-key histories stay small
		s.keys = append(s.keys, fmt.Sprintf("k%d", i))
	}
	for i := 0; i < opt.clients; i++ {
		s.clients = append(s.clients, &simClient{s: s, id: i, target: s.ids[r.IntN(len(s.ids))]})
	}
	s.sessionTTL = 1000 * simET
	if r.IntN(4) == 0 {
		s.sessionTTL = simET * sim.Time(3+r.IntN(8))
	}
	for _, n := range s.nodes {
		n.clockOffset = sim.Time(r.Int64N(int64(6 * simET)))
	}
	s.drawHangs()
	return s
}

// simSetting draws how a seed sets a boolean option: on everywhere, off
// everywhere, or at random per server.
func simSetting(r *rand.Rand) func() bool {
	switch r.IntN(4) {
	case 0, 1:
		return func() bool { return true }
	case 2:
		return func() bool { return false }
	default:
		return func() bool { return r.IntN(2) == 0 }
	}
}

// runSim runs one seed: the fault phase, then the liveness phase, then the
// linearizability check.
func runSim(opt simOptions, dataDir string) simResult {
	s := newSimCluster(opt, dataDir)
	for _, n := range s.nodes {
		n.start()
	}
	for _, c := range s.clients {
		c.next()
	}
	// The fault phase ends once the servers have ticked opt.ticks times
	// and the clients have started opt.ops operations; faults are drawn
	// over 40 times the time the ticks take without downtime, room for
	// seeds whose faults keep the cluster down most of the time.
	duration := 40 * sim.Time(s.opt.ticks/len(s.nodes)+1) * simTick
	s.scheduleFaults(duration)
	s.sched.RunUntil(duration, func() bool {
		return s.err != nil || s.res.ticks >= s.opt.ticks && s.hist.Len() >= s.opt.ops
	})
	if s.err == nil {
		s.liveness()
	}
	if s.err == nil {
		s.res.ops = s.hist.Len()
		s.settleUnknownWrites()
		if err := s.hist.Check(simCheckTimeout, s.dataDir); err != nil {
			s.fail("%v", err)
		}
	}
	s.res.err = s.err
	s.res.committed = len(s.check.committed)
	s.res.terms = len(s.check.leaderOf)
	s.res.trace = s.trace.Hash()
	return s.res
}

// fail records the run's first failure, with what it takes to replay it.
func (s *simCluster) fail(format string, args ...any) {
	if s.err != nil {
		return
	}
	replay := s.replay
	if replay == "" {
		replay = fmt.Sprintf("go test -run 'TestSimulator$' -sim.seed=%d", s.opt.seed)
	}
	s.err = fmt.Errorf("seed %d at %v: %s\nservers %d, faults: %v %v\nreplay: %s\nlast events:\n%s",
		s.opt.seed, s.sched.Now(), fmt.Sprintf(format, args...), len(s.nodes), s.faults, &s.hangs, replay, s.trace.Tail())
}

func (s *simCluster) record(n *simNode, kind, detail string, nums ...uint64) {
	r := sim.Record{At: s.sched.Now(), Kind: kind, Detail: detail}
	if n != nil {
		r.Node = string(n.id)
	}
	copy(r.Nums[:], nums)
	s.trace.Add(r)
}

func (s *simCluster) node(id ServerID) *simNode {
	i, ok := slices.BinarySearch(s.ids, id)
	if !ok {
		return nil
	}
	return s.nodes[i]
}

// start boots (or reboots) a server from its durable state: the newest
// snapshot, and the log after it.
func (n *simNode) start() {
	n.inc++
	snap := n.newestSnapshot()
	n.dropBehindSnapshot(snap)
	var ents []Log
	for _, e := range n.durable {
		if e.Index > snap.Index {
			ents = append(ents, e)
		}
	}
	base := confEntry{}
	n.fsm.reset()
	if snap.Index > 0 {
		base = confEntry{index: snap.ConfigurationIndex, conf: snap.Configuration.Clone()}
		n.fsm.restore(n.s.snapData[snap.ID])
	}
	n.fsm.sessions.bugs = n.s.opt.sessBugs
	// As the driver does: only the newest entries in memory.
	b := newStartLogBuilder(snap.Index, n.cfg.logCacheBytes)
	for _, e := range ents {
		b.add(e)
	}
	n.c = newCoreFromLog(n.cfg, n.hs, snap.Index, snap.Term, base, b.result())
	n.mirror.resetAt(n.s.check, snap.Index, ents)
	n.snapshotting = false
	n.props, n.fwdProps, n.reads, n.readWaits = map[uint64]simPending{}, map[uint64]simPending{}, map[uint64]simPending{}, nil
	n.wasLeader, n.term, n.commitSeen = false, n.c.term, snap.Index
	n.s.check.restarted(n, snap.Index)
	n.scheduleTick()
}

// crash stops a server: its core, its FSM and its queued writes are gone;
// what it synced stays.
func (n *simNode) crash() {
	n.s.record(n, "crash", "", uint64(len(n.writes)))
	n.s.res.crashes++
	if n.c.role == roleLeader {
		n.s.res.leaderCrashes++
	}
	n.forgetTentative()
	n.c = nil
	n.inc++
	n.writes, n.lazyHS = nil, nil
}

func (n *simNode) up() bool { return n.c != nil }

func (n *simNode) scheduleTick() {
	inc := n.inc
	n.s.sched.After(n.period, func() {
		if n.inc != inc || !n.up() {
			return
		}
		n.s.res.ticks++
		n.checkDiskStall()
		n.c.tick()
		n.flush()
		n.scheduleTick()
	})
}

// flush acts on the core's outputs as the driver does.
func (n *simNode) flush() {
	s := n.s
	rd := n.c.ready()
	for _, err := range n.c.violations {
		s.fail("%s refused a message: %v", n.id, err)
	}
	n.c.violations = nil
	n.holdBehindHungDisk(&rd)
	if rd.hardState != nil {
		hs := *rd.hardState
		if s.opt.lazyHardState {
			n.lazyHS = &hs
		} else {
			n.hs = hs
		}
	}
	if len(rd.entries) > 0 || len(rd.msgsAfterAppend) > 0 || n.lazyHS != nil || rd.compactTo > 0 || len(rd.loads) > 0 {
		n.writes = append(n.writes, simWrite{entries: rd.entries, msgs: rd.msgsAfterAppend, hs: n.lazyHS,
			compactTo: rd.compactTo, reset: rd.resetLog, loads: rd.loads})
		n.lazyHS = nil
		if len(n.writes) == 1 {
			n.scheduleSync()
		}
	}
	s.check.appended(n, rd.entries)
	for i := range rd.msgs {
		s.send(rd.msgs[i])
	}
	for _, snd := range rd.snapshotSends {
		n.sendSnapshot(snd)
	}
	for _, m := range rd.snapshotChunks {
		n.receiveSnapshot(m)
	}
	if rd.restore != nil {
		n.installed(*rd.restore)
	}
	s.check.afterStep(n)
	if err := n.c.checkSnapshotInvariants(); err != nil {
		s.fail("%v", err)
	}
	// Forwarded proposals answered now wait for applies in this same
	// batch, as in the driver.
	for _, r := range rd.proposed {
		n.forwardAnswered(r)
	}
	for i := range rd.apply {
		n.apply(&rd.apply[i])
	}
	if len(rd.apply) > 0 {
		n.c.appliedTo(rd.apply[len(rd.apply)-1].Index)
		n.maybeSnapshot()
	}
	for _, r := range rd.reads {
		n.readAnswered(r)
	}
	n.serveReads()
	if !s.calm && !n.wasLeader && n.c.role == roleLeader && s.rand.Float64() < s.faults.Churn {
		s.churn(n)
	}
	n.leadershipChanged()
	// Crash points: right after a vote or term change, after an append,
	// after the commit index moved — where durability bugs show.
	committed := n.c.log.committed > n.commitSeen
	n.commitSeen = n.c.log.committed
	if !s.calm && (rd.hardState != nil && s.faults.CrashAfterVote > 0 && s.rand.Float64() < s.faults.CrashAfterVote ||
		(len(rd.entries) > 0 || committed) && s.faults.CrashAfterWrite > 0 && s.rand.Float64() < s.faults.CrashAfterWrite) {
		s.crashOne(n)
	}
	if s.flushHook != nil && n.up() {
		s.flushHook(n)
	}
}

// scheduleSync completes the oldest queued write after a disk latency.
func (n *simNode) scheduleSync() {
	inc := n.inc
	n.hang.busySince = n.s.sched.Now()
	n.s.sched.After(1+sim.Time(n.s.rand.Int64N(int64(n.disk))), func() {
		if n.inc != inc || n.diskHangs(inc) {
			return
		}
		w := n.writes[0]
		n.writes = n.writes[1:]
		if w.hs != nil {
			n.hs = *w.hs
		}
		if w.compactTo > 0 {
			n.trim(w.compactTo, w.reset)
		}
		if len(w.entries) > 0 {
			first := w.entries[0].Index
			if first < n.durableFirst || first > n.durableFirst+uint64(len(n.durable)) {
				n.s.fail("%s wrote entries from %d to a log holding [%d, %d]", n.id, first, n.durableFirst, n.durableFirst+uint64(len(n.durable))-1)
				return
			}
			n.durable = append(n.durable[:first-n.durableFirst], w.entries...)
			last := w.entries[len(w.entries)-1]
			n.c.persisted(last.Index, last.Term)
		}
		for i := range w.msgs {
			n.s.send(w.msgs[i])
		}
		for _, ld := range w.loads {
			n.load(ld)
		}
		if len(n.writes) > 0 {
			n.scheduleSync()
		}
		n.flush()
	})
}

// load reads evicted entries from the server's durable log for its core,
// as the driver's persister does.
func (n *simNode) load(ld logLoad) {
	var ents []Log
	var size uint64
	for i := ld.Lo; i <= ld.Hi; i++ {
		if i < n.durableFirst || i >= n.durableFirst+uint64(len(n.durable)) {
			if i > n.c.log.snapIndex {
				n.s.fail("%s asked to read entry %d, which its log [%d, %d] lacks", n.id, i, n.durableFirst, n.durableFirst+uint64(len(n.durable))-1)
				return
			}
			ents = nil // compacted meanwhile: a snapshot goes instead
			break
		}
		e := n.durable[i-n.durableFirst]
		size += uint64(len(e.Data))
		if size > ld.MaxBytes && len(ents) > 0 {
			break
		}
		ents = append(ents, e)
	}
	n.s.res.loads++
	n.c.loaded(ld, ents)
}

// send hands a message to the network, which may lose, duplicate or delay
// it.
func (s *simCluster) send(m Message) {
	if s.sendHook != nil {
		s.sendHook(m)
		return
	}
	for _, d := range s.net.Send(string(m.From), string(m.To)) {
		s.sched.After(d, func() { s.deliver(m) })
	}
}

func (s *simCluster) deliver(m Message) {
	to := s.node(m.To)
	if to == nil || !to.up() {
		return
	}
	s.record(to, m.Type.String(), string(m.From), m.Term, m.Index, m.LogTerm, uint64(len(m.Entries))<<32|m.Commit)
	stale := m.Type == MsgAppend && m.Term < to.c.term
	if m.Type == MsgPropose && to.c.role == roleLeader {
		m = *stampForwarded(&m, int64(to.clock())) // as the driver's step does
	}
	to.c.step(&m)
	if stale {
		s.check.staleAppendRefused(to, &m)
	}
	to.flush()
}

// liveness ends the faults — every link healed, message faults off, every
// server restarted — and requires that a leader emerges within 10
// election timeouts and that every server's FSM converges to the leader's
// whole log within 100.
func (s *simCluster) liveness() {
	s.calm = true
	s.net.Calm()
	s.releaseDisks()
	s.record(nil, "calm", "")
	for _, n := range s.nodes {
		if !n.up() {
			n.start()
		}
	}
	start := s.sched.Now()
	if s.sched.RunUntil(start+10*simET, func() bool { return s.err != nil || s.leader() != nil }) {
		s.fail("liveness: no leader within 10 election timeouts of healing: %s", s.progress())
		return
	}
	if s.err != nil {
		return
	}
	if s.sched.RunUntil(start+100*simET, func() bool { return s.err != nil || s.converged() }) {
		s.fail("liveness: servers did not converge within 100 election timeouts of healing: %s", s.progress())
		return
	}
	if s.err == nil {
		s.hangLeaderLiveness()
	}
}

// leader returns the leader every member of its latest configuration
// follows, if there is one. (Servers removed from the cluster may do as
// they like.)
func (s *simCluster) leader() *simNode {
	l := s.anyLeader()
	if l == nil {
		return nil
	}
	for _, n := range s.members(l) {
		if n != l && (n.c.term != l.c.term || n.c.lead != l.id) {
			return nil
		}
	}
	return l
}

// members returns the servers of l's latest configuration.
func (s *simCluster) members(l *simNode) []*simNode {
	var ns []*simNode
	for _, id := range l.c.confs.latest().conf.memberIDs() {
		ns = append(ns, s.node(id))
	}
	return ns
}

// converged reports whether the membership has settled (the latest
// configuration committed and not joint) and every member has applied the
// leader's whole log, with equal FSMs.
func (s *simCluster) converged() bool {
	l := s.leader()
	if l == nil {
		return false
	}
	if latest := l.c.confs.latest(); latest.conf.Joint() || latest.index > l.c.log.committed {
		return false
	}
	last := l.c.log.lastIndex()
	for _, n := range s.members(l) {
		if n.c.log.applied != last || n.fsm.applied != last || n.fsm.hash() != l.fsm.hash() {
			return false
		}
	}
	return true
}

func (s *simCluster) progress() string {
	var out string
	for _, n := range s.nodes {
		if !n.up() {
			out += fmt.Sprintf("%s down; ", n.id)
			continue
		}
		out += fmt.Sprintf("%s %v term %d lead %s last %d commit %d applied %d conf %v; ",
			n.id, n.c.role, n.c.term, n.c.lead, n.c.log.lastIndex(), n.c.log.committed, n.c.log.applied, n.c.confs.latest())
	}
	return out
}
