package raft

import (
	"fmt"
	"math/rand/v2"

	"github.com/keelraft/raft/internal/sim"
)

// Disk hangs in the simulator. In a quarter of the seeds, now and then a
// server's disk stops completing writes for a while — sometimes shorter
// than the stall timeout, mostly longer; half the time the leader's — and
// then resumes. The simulated driver does what loop.go and the persister
// do: it measures how long the write at the head of the disk queue has been
// under way and, on every tick, tells the core when that passes the stall
// timeout and when a write completes again; and while the disk hangs, term
// and vote are written through the disk queue, every message that would
// leave at once waiting behind them (persist_stall.go). (While the disk
// works the simulator keeps making term and vote durable at once, as
// before.)
//
// Liveness under a hang is checked once the faults are over and the
// cluster has converged: the leader's disk hangs in the middle of a write,
// and if the other voters form a quorum, one of them must lead a later
// term and commit in it within the stall timeout and 10 election
// timeouts; then the disk resumes and every server must converge again.
//
// The draws come from a random source of their own, so seeds without
// hangs run exactly as before.

const (
	simStallTimeout   = 3 * simET                        // the driver's Config.DiskStallTimeout
	simDiskHoldTicks  = 3 * simElectionTicks             // max(electionTicks, stall timeout in ticks), as coreConfig derives it
	simHangLiveBound  = simStallTimeout + 10*simET       // a leader among the others commits within this
	simHangMaxSeconds = 3 * simStallTimeout / sim.Second // for the fault report
)

// simHangs is a seed's disk-hang plan.
type simHangs struct {
	on    bool
	rand  *rand.Rand
	every sim.Time // mean time between hangs in the fault phase
}

// simDiskHang is one server's disk: whether it hangs, and the driver's
// stall check.
type simDiskHang struct {
	until      sim.Time // the disk hangs until then
	gen        int      // hangs so far; a release of an earlier one is void
	blocked    bool     // the head write waits for the hang to end
	blockedInc int      // ... in this incarnation
	busySince  sim.Time // when the write at the head of the queue began
	stalled    bool     // what the core was told last ...
	stalledInc int      // ... in this incarnation
	// tentative are the entries this life was first to append in a term
	// not yet durable (markTentative).
	tentative [][2]uint64
}

// drawHangs draws the seed's disk-hang plan and gives every server the
// driver's hold after a stall.
func (s *simCluster) drawHangs() {
	r := rand.New(rand.NewPCG(s.opt.seed, 0xd15c))
	s.hangs = simHangs{on: r.IntN(4) == 0, rand: r, every: simET * sim.Time(5+r.IntN(20))}
	for _, n := range s.nodes {
		n.cfg.diskHoldTicks = simDiskHoldTicks
	}
}

func (h *simHangs) String() string {
	if !h.on {
		return "hangs=off"
	}
	return fmt.Sprintf("hangs every %v for <=%ds", h.every, simHangMaxSeconds)
}

// scheduleHangs draws the disk hangs of the fault phase.
func (s *simCluster) scheduleHangs(duration sim.Time) {
	h := &s.hangs
	if !h.on {
		return
	}
	for t := sim.Time(h.rand.ExpFloat64()*float64(h.every)) + 1; t < duration; t += sim.Time(h.rand.ExpFloat64()*float64(h.every)) + 1 {
		s.sched.At(t, s.hangDisk)
	}
}

// hangDisk hangs the leader's disk or another's, for between half and
// three times the stall timeout.
func (s *simCluster) hangDisk() {
	r := s.hangs.rand
	if s.calm {
		return
	}
	var n *simNode
	if r.IntN(2) == 0 {
		n = s.anyLeader()
	}
	if n == nil {
		n = s.nodes[r.IntN(len(s.nodes))]
	}
	n.hangFor(simStallTimeout/2 + sim.Time(r.Int64N(int64(5*simStallTimeout/2))))
}

// hangFor makes n's disk hang for d, unless it hangs already.
func (n *simNode) hangFor(d sim.Time) {
	now := n.s.sched.Now()
	if n.hang.until > now {
		return
	}
	n.hang.until = now + d
	n.hang.gen++
	gen := n.hang.gen
	n.s.record(n, "diskhang", fmt.Sprint(d))
	n.s.sched.At(n.hang.until, func() {
		if n.hang.gen == gen {
			n.releaseDisk()
		}
	})
}

// hung reports whether n's disk hangs now.
func (n *simNode) hung() bool { return n.hang.until > n.s.sched.Now() }

// diskHangs reports, for the completion of the head write of incarnation
// inc, whether n's disk hangs; the write then completes only once the hang
// ends (releaseDisk).
func (n *simNode) diskHangs(inc int) bool {
	if !n.hung() {
		return false
	}
	n.hang.blocked, n.hang.blockedInc = true, inc
	return true
}

// releaseDisk ends n's hang: the write it held completes after the usual
// latency, having begun when it did.
func (n *simNode) releaseDisk() {
	if n.hang.until == 0 {
		return
	}
	n.hang.until = 0
	n.hang.gen++
	n.s.record(n, "diskresume", "")
	blocked := n.hang.blocked && n.hang.blockedInc == n.inc && len(n.writes) > 0
	n.hang.blocked = false
	if blocked {
		since := n.hang.busySince
		n.scheduleSync()
		n.hang.busySince = since
	}
}

// releaseDisks ends every hang, as the liveness phase heals the network.
func (s *simCluster) releaseDisks() {
	for _, n := range s.nodes {
		n.releaseDisk()
	}
}

// checkDiskStall is the driver's stall check (Raft.checkDiskStall), on
// every tick: the write at the head of the queue has been under way for the
// stall timeout.
func (n *simNode) checkDiskStall() {
	if n.hang.stalledInc != n.inc { // a restarted core starts unstalled
		n.hang.stalled, n.hang.stalledInc = false, n.inc
	}
	stalled := len(n.writes) > 0 && n.s.sched.Now()-n.hang.busySince >= simStallTimeout
	if stalled == n.hang.stalled {
		return
	}
	n.hang.stalled = stalled
	if stalled {
		n.s.res.diskStalls++
	}
	n.c.setDiskStalled(stalled)
	n.s.record(n, "diskstall", fmt.Sprint(stalled), n.c.term)
}

// holdBehindHungDisk does what the driver does with term and vote while the
// disk hangs: they are written through the disk queue, and the messages
// that would leave at once wait behind them, as do those of later readies
// until they are durable. (The driver's persister sends those with its
// next group of writes, whatever that holds; here they join the last
// write queued.)
func (n *simNode) holdBehindHungDisk(rd *ready) {
	if n.s.opt.lazyHardState {
		return // that planted bug has its own way with term and vote
	}
	defer n.markTentative(rd.entries)
	queued := false
	for i := range n.writes {
		queued = queued || n.writes[i].hs != nil
	}
	switch {
	case rd.hardState != nil && (queued || n.hung()):
		n.writes = append(n.writes, simWrite{hs: rd.hardState, msgs: rd.msgs})
		if len(n.writes) == 1 {
			n.scheduleSync()
		}
	case queued:
		last := &n.writes[len(n.writes)-1]
		last.msgs = append(last.msgs, rd.msgs...)
	default:
		return
	}
	rd.hardState, rd.msgs = nil, nil
}

// markTentative and forgetTentative keep the log-matching checker to
// entries that may exist beyond this life of the server. With term and
// vote queued behind a hung disk, a candidate that is the only voter wins
// its election at once and appends entries in a term that is not durable;
// nothing of that term leaves the server until it is (every message waits
// for it), so a crash before then loses the term with the entries, and the
// server, restarted in the term before, may win the same term again with
// other entries — harmless, as no other server ever saw the first ones,
// but what the checker, which remembers every entry any server appended,
// would take for two histories. So the entries a server is first to
// append in a term beyond its durable one are noted, and forgotten if it
// crashes before that term is durable.
func (n *simNode) markTentative(ents []Log) {
	k := n.s.check
	kept := n.hang.tentative[:0]
	for _, key := range n.hang.tentative {
		if key[1] > n.hs.Term {
			kept = append(kept, key)
		}
	}
	n.hang.tentative = kept
	for i := range ents {
		key := [2]uint64{ents[i].Index, ents[i].Term}
		if _, seen := k.entries[key]; !seen && key[1] > n.hs.Term {
			n.hang.tentative = append(n.hang.tentative, key)
		}
	}
}

func (n *simNode) forgetTentative() {
	for _, key := range n.hang.tentative {
		if key[1] > n.hs.Term {
			delete(n.s.check.entries, key)
		}
	}
	n.hang.tentative = nil
}

// hangLeaderLiveness, in seeds with disk hangs, hangs the disk of the
// converged cluster's leader in the middle of a write: if the other voters
// form a quorum, one of them must lead a later term and commit in it
// within simHangLiveBound. Then the disk resumes, and the servers must
// converge again within 100 election timeouts.
func (s *simCluster) hangLeaderLiveness() {
	l := s.leader()
	if !s.hangs.on || l == nil {
		return
	}
	conf := l.c.confs.latest().conf
	others := map[ServerID]bool{}
	for _, id := range voterIDs(conf.Servers) {
		others[id] = id != l.id
	}
	if jointVoteResult(voterIDs(conf.Servers), voterIDs(conf.Old), others) != voteWon {
		s.record(l, "hangcheck", "no quorum without the leader")
		return
	}
	term := l.c.term
	if _, err := l.c.propose([]Log{{Type: LogNoop}}); err != nil {
		// A leadership transfer from before the calm is still under way.
		s.record(l, "hangcheck", err.Error())
		return
	}
	s.res.hangChecks++
	l.hangFor(simHangLiveBound + simET)
	l.flush()
	start := s.sched.Now()
	if s.sched.RunUntil(start+simHangLiveBound, func() bool { return s.err != nil || s.otherLeaderCommitted(l, term) }) {
		s.fail("liveness: %s's disk hung while it led term %d, and no other server led and committed within %v: %s",
			l.id, term, simHangLiveBound, s.progress())
		return
	}
	if s.err != nil {
		return
	}
	s.releaseDisks()
	start = s.sched.Now()
	if s.sched.RunUntil(start+100*simET, func() bool { return s.err != nil || s.converged() }) {
		s.fail("liveness: servers did not converge within 100 election timeouts of the disk's recovery: %s", s.progress())
	}
}

// otherLeaderCommitted reports whether a server other than l leads a term
// after term and has committed an entry of it.
func (s *simCluster) otherLeaderCommitted(l *simNode, term uint64) bool {
	for _, n := range s.nodes {
		if n != l && n.up() && n.c.term > term && n.c.committedInTerm() {
			return true
		}
	}
	return false
}
