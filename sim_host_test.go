package raft

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/keelraft/raft/internal/sim"
)

// The multi-group simulation: H hosts, each running one replica of every
// one of G groups (a group's ServerIDs are the host names), as a Host does.
// All groups share one virtual-time scheduler and one network between the
// hosts. A message between hosts carries its group's ID and the receiving
// host's router hands it to that group (Host.deliver); the messages of all
// groups share the links, so a partition or a cut between two hosts cuts
// every group on them at once. Faults act on hosts: a host crash crashes
// every replica on it at the same instant, and they restart together.
//
// Each group is a simCluster with every checker of the single-group
// simulator: safety after every event, porcupine over its own clients'
// history, and the liveness phase (a leader, then convergence, in every
// group at once). Per group, the membership changes, leadership transfers
// and disk hangs go on as in the single-group simulator, among the hosts.

var (
	simHostSeeds    = flag.Int("simhost.seeds", simHostDefaultSeeds, "seeds TestSimHost runs")
	simHostSeed     = flag.Uint64("simhost.seed", 0, "run only this seed of TestSimHost (replays a failure)")
	simHostHosts    = flag.Int("simhost.hosts", 3, "hosts of TestSimHost")
	simHostGroups   = flag.Int("simhost.groups", 8, "groups of TestSimHost")
	simHostNoQuiet  = flag.Bool("simhost.noquiesce", false, "run the groups without quiescence (idle groups keep ticking)")
	simHostMisroute = flag.Float64("simhost.misroute", 0, "planted router bug: the probability that an append goes to the next group on its host")
)

// simHostOptions configures one multi-group run.
type simHostOptions struct {
	seed          uint64
	hosts, groups int
	ticks, ops    int // per group: as simOptions
	clients       int // per group
	// misroute is the planted router bug: the probability that the router
	// hands a MsgAppend of group g to group g+1 on the same host.
	misroute float64
	bugs     plantedBugs // in every group's cores
}

func simHostDefaultOptions(seed uint64, hosts, groups int) simHostOptions {
	return simHostOptions{seed: seed, hosts: hosts, groups: groups, ticks: 1_500, ops: 120, clients: 3}
}

// replay is the command that replays the run.
func (o simHostOptions) replay() string {
	cmd := fmt.Sprintf("go test -run 'TestSimHost$' -simhost.seed=%d -simhost.hosts=%d -simhost.groups=%d", o.seed, o.hosts, o.groups)
	if o.misroute > 0 {
		cmd += " -simhost.misroute=" + strconv.FormatFloat(o.misroute, 'g', -1, 64)
	}
	return cmd
}

// simHost is one multi-group run.
type simHost struct {
	opt     simHostOptions
	rand    *rand.Rand
	bug     *rand.Rand // the router bug's draws, apart so the other draws stay as they are
	sched   sim.Scheduler
	net     *sim.Network
	faults  sim.Faults
	names   []string
	down    []bool     // by host
	periods []sim.Time // by host: its clock's tick
	quiet   simQuiet   // sim_quiet_test.go
	groups  []*simCluster
	calm    bool

	crashes, partitions, misrouted, routed int
}

// simHostResult sums up a multi-group run.
type simHostResult struct {
	err                                    error
	ticks, ops, committed                  int
	crashes, partitions, misrouted, routed int
	quietRounds, wakes                     int
	traces                                 []uint64
}

// simEnvelope is a message between hosts: tagged with its group, as the
// host transport's wire encoding tags it.
type simEnvelope struct {
	group GroupID
	m     Message
}

func newSimHost(opt simHostOptions, dataDir string) *simHost {
	r := rand.New(rand.NewPCG(opt.seed, 0x4057))
	h := &simHost{opt: opt, rand: r, bug: rand.New(rand.NewPCG(opt.seed, 0xb06))}
	nominal := sim.Time(opt.ticks/opt.hosts+1) * simTick
	h.faults = sim.DrawFaults(r, opt.hosts, simET, nominal)
	h.net = sim.NewNetwork(r, h.faults)
	for _, id := range serverIDs(opt.hosts) {
		h.names = append(h.names, string(id))
	}
	h.down = make([]bool, opt.hosts)
	// One clock per host: every replica on it ticks at its rate and stamps
	// with its wall clock.
	periods, offsets := make([]sim.Time, opt.hosts), make([]sim.Time, opt.hosts)
	h.periods = periods
	for i := range periods {
		periods[i] = simTick * sim.Time(75+r.IntN(51)) / 100
		offsets[i] = sim.Time(r.Int64N(int64(6 * simET)))
	}
	// Per group, the crash points of a replica crash its whole host: their
	// rates are shared among the groups, so that a host crashes as often
	// as one server of the single-group simulator.
	gf := h.faults
	gf.CrashAfterWrite /= float64(opt.groups)
	gf.CrashAfterVote /= float64(opt.groups)
	gf.Churn /= float64(opt.groups)
	for g := 0; g < opt.groups; g++ {
		gopt := simOptions{seed: r.Uint64(), servers: opt.hosts, ticks: opt.ticks, ops: opt.ops, clients: opt.clients,
			sched: &h.sched, net: h.net, noSpares: true, bugs: opt.bugs}
		s := newSimCluster(gopt, filepath.Join(dataDir, fmt.Sprint(g+1)))
		s.faults = gf
		s.replay = opt.replay()
		gi := g
		s.sendHook = func(m Message) { h.send(gi, m) }
		s.crashHook = func(n *simNode) { h.crashHost(s.nodeIndex(n)) }
		for i, n := range s.nodes {
			n.period, n.clockOffset, n.disk = periods[i], offsets[i], h.faults.DiskDelay[i]
		}
		h.groups = append(h.groups, s)
	}
	h.initQuiet()
	return h
}

func (s *simCluster) nodeIndex(n *simNode) int {
	for i, o := range s.nodes {
		if o == n {
			return i
		}
	}
	panic("no such node")
}

// send puts a group's message on the link between two hosts.
func (h *simHost) send(g int, m Message) {
	env := simEnvelope{group: GroupID(g + 1), m: m}
	for _, d := range h.net.Send(string(m.From), string(m.To)) {
		h.sched.After(d, func() { h.route(env) })
	}
}

// route is the receiving host's router: it hands the message to the
// replica of its group on that host (Host.deliver).
func (h *simHost) route(env simEnvelope) {
	if env.group == hostGroup {
		h.hostMessage(env.m)
		return
	}
	g := int(env.group) - 1
	if g < 0 || g >= len(h.groups) {
		return // an unknown group: dropped
	}
	h.routed++
	if h.opt.misroute > 0 && env.m.Type == MsgAppend && h.bug.Float64() < h.opt.misroute {
		g = (g + 1) % len(h.groups)
		h.misrouted++
		h.groups[g].record(nil, "misroute", fmt.Sprintf("group %d's %s->%s to group %d", env.group, env.m.From, env.m.To, g+1))
	}
	h.groups[g].deliver(env.m)
}

// record traces a host event in every group.
func (h *simHost) record(host int, kind, detail string) {
	for _, s := range h.groups {
		var n *simNode
		if host >= 0 {
			n = s.nodes[host]
		}
		s.record(n, kind, detail)
	}
}

// crashHost crashes every replica on a host at once; they restart
// together, each from what it made durable.
func (h *simHost) crashHost(i int) {
	if h.calm || h.down[i] {
		return
	}
	h.down[i] = true
	h.stopWatch(i)
	h.crashes++
	h.record(i, "hostcrash", "")
	for _, s := range h.groups {
		if n := s.nodes[i]; n.up() {
			n.crash()
		}
	}
	f := h.faults
	h.sched.After(f.MaxDowntime/10+sim.Time(h.rand.Int64N(int64(f.MaxDowntime))), func() { h.restartHost(i) })
}

func (h *simHost) restartHost(i int) {
	if !h.down[i] {
		return
	}
	h.down[i] = false
	h.startWatch(i)
	h.record(i, "hostrestart", "")
	for _, s := range h.groups {
		if n := s.nodes[i]; !n.up() {
			n.start()
		}
	}
}

// leaderHost returns a host that holds a leader of some group, picked at
// random, or -1.
func (h *simHost) leaderHost() int {
	var hosts []int
	for _, s := range h.groups {
		if l := s.anyLeader(); l != nil {
			hosts = append(hosts, s.nodeIndex(l))
		}
	}
	if len(hosts) == 0 {
		return -1
	}
	return hosts[h.rand.IntN(len(hosts))]
}

// crashLeaderHost crashes a host holding a leader, or tries again shortly.
func (h *simHost) crashLeaderHost() {
	if h.calm {
		return
	}
	if i := h.leaderHost(); i >= 0 && !h.down[i] {
		h.crashHost(i)
		return
	}
	h.sched.After(simET/2, h.crashLeaderHost)
}

// partition replaces the hosts' partition with a new one, healed after a
// while: as simCluster.partition, on hosts.
func (h *simHost) partition() {
	if h.calm {
		return
	}
	f := h.faults
	kinds := partitionKinds(f)
	h.net.Heal()
	switch kinds[h.rand.IntN(len(kinds))] {
	case "split":
		side := randomSide(h.rand, h.names)
		h.net.Split(side, h.names)
		h.record(-1, "hostpartition", fmt.Sprint(side))
	case "oneway":
		for i := 0; i < 1+h.rand.IntN(len(h.names)); i++ {
			a, b := h.names[h.rand.IntN(len(h.names))], h.names[h.rand.IntN(len(h.names))]
			h.net.Cut(a, b)
			h.record(-1, "hostcut", a+"->"+b)
		}
	case "isolate":
		if i := h.leaderHost(); i >= 0 {
			h.net.Split([]string{h.names[i]}, h.names)
			h.record(i, "hostisolate", "")
		}
	case "bridge":
		// A host holding a leader loses its link to another host; both
		// still reach the rest.
		if i := h.leaderHost(); i >= 0 {
			o := h.names[h.rand.IntN(len(h.names))]
			h.net.Cut(h.names[i], o)
			h.net.Cut(o, h.names[i])
			h.record(i, "hostbridge", o)
		}
	}
	h.partitions++
	gen := h.partitions
	h.sched.After(f.MaxPartition/10+sim.Time(h.rand.Int64N(int64(f.MaxPartition))), func() {
		if gen == h.partitions && !h.calm {
			h.net.Heal()
			h.record(-1, "hostheal", "")
		}
	})
}

func (h *simHost) scheduleFaults(duration sim.Time) {
	f := h.faults
	h.sched.At(f.LeaderCrashAt, h.crashLeaderHost)
	if f.Crash {
		for t := h.exp(f.CrashEvery); t < duration; t += h.exp(f.CrashEvery) {
			h.sched.At(t, func() { h.crashHost(h.rand.IntN(len(h.names))) })
		}
	}
	if f.Partition || f.OneWay || f.IsolateLeader {
		for t := h.exp(f.PartitionEvery); t < duration; t += h.exp(f.PartitionEvery) {
			h.sched.At(t, h.partition)
		}
	}
	// Per group: its membership changes, leadership transfers and disk
	// hangs, from its own draws.
	for _, s := range h.groups {
		s.scheduleHangs(duration)
		for t := s.exp(s.changeEvery); t < duration; t += s.exp(s.changeEvery) {
			s.sched.At(t, s.changeMembership)
		}
		for t := s.exp(s.transferEvery); t < duration; t += s.exp(s.transferEvery) {
			s.sched.At(t, s.transferLeadership)
		}
	}
}

func (h *simHost) exp(mean sim.Time) sim.Time {
	return sim.Time(h.rand.ExpFloat64()*float64(mean)) + 1
}

// err returns the first group's failure, with the host run's shape.
func (h *simHost) err() error {
	for g, s := range h.groups {
		if s.err != nil {
			return fmt.Errorf("multi-group seed %d (%d hosts x %d groups, misroute=%v, %d messages misrouted), group %d: %w",
				h.opt.seed, h.opt.hosts, h.opt.groups, h.opt.misroute, h.misrouted, g+1, s.err)
		}
	}
	return nil
}

func (h *simHost) failed() bool {
	for _, s := range h.groups {
		if s.err != nil {
			return true
		}
	}
	return false
}

// runSimHost runs one multi-group seed: the fault phase, the liveness phase
// of every group at once, then each group's linearizability check.
func runSimHost(opt simHostOptions, dataDir string) simHostResult {
	h := newSimHost(opt, dataDir)
	for i := range h.names {
		h.startWatch(i)
	}
	for _, s := range h.groups {
		for _, n := range s.nodes {
			n.start()
		}
		for _, c := range s.clients {
			c.next()
		}
	}
	duration := 40 * sim.Time(opt.ticks/opt.hosts+1) * simTick
	h.scheduleFaults(duration)
	if !*simHostNoQuiet {
		h.scheduleIdle(duration)
	}
	h.sched.RunUntil(duration, func() bool {
		done := true
		for _, s := range h.groups {
			if s.err != nil {
				return true
			}
			done = done && s.res.ticks >= opt.ticks && s.hist.Len() >= opt.ops
		}
		return done
	})
	if !h.failed() {
		h.liveness()
	}
	for _, s := range h.groups {
		if h.failed() {
			break
		}
		s.res.ops = s.hist.Len()
		s.settleUnknownWrites()
		if err := s.hist.Check(simCheckTimeout, s.dataDir); err != nil {
			s.fail("%v", err)
		}
	}
	res := simHostResult{err: h.err(), crashes: h.crashes, partitions: h.partitions, misrouted: h.misrouted, routed: h.routed,
		quietRounds: h.quiet.rounds, wakes: h.quiet.wakes}
	for _, s := range h.groups {
		res.ticks += s.res.ticks
		res.ops += s.hist.Len()
		res.committed += len(s.check.committed)
		res.traces = append(res.traces, s.trace.Hash())
	}
	return res
}

// liveness ends the faults for every group at once — links healed, message
// faults off, every host restarted — and requires that every group elects
// a leader within 10 election timeouts and converges within 100, as
// simCluster.liveness does for one.
func (h *simHost) liveness() {
	h.calm = true
	h.net.Calm()
	for _, s := range h.groups {
		s.calm = true
		s.releaseDisks()
		s.record(nil, "calm", "")
	}
	for i := range h.down {
		h.down[i] = true
		h.restartHost(i)
	}
	start := h.sched.Now()
	all := func(ok func(s *simCluster) bool) func() bool {
		return func() bool {
			for _, s := range h.groups {
				if s.err != nil {
					return true
				}
			}
			for _, s := range h.groups {
				if !ok(s) {
					return false
				}
			}
			return true
		}
	}
	// Each group must have had a leader followed by all its members at
	// some instant, as simCluster.liveness asks of one: not all groups at
	// the same instant, which a group whose removed servers keep
	// campaigning (their PreVote and the members' CheckQuorum off)
	// rarely grants.
	led := make([]bool, len(h.groups))
	if h.sched.RunUntil(start+10*simET, func() bool {
		done := true
		for g, s := range h.groups {
			if s.err != nil {
				return true
			}
			led[g] = led[g] || s.leader() != nil
			done = done && led[g]
		}
		return done
	}) {
		for g, s := range h.groups {
			if !led[g] {
				s.fail("liveness: no leader within 10 election timeouts of healing: %s", s.progress())
				return
			}
		}
	}
	if h.failed() {
		return
	}
	if h.sched.RunUntil(start+100*simET, all(func(s *simCluster) bool { return s.converged() })) {
		for _, s := range h.groups {
			if !s.converged() {
				s.fail("liveness: servers did not converge within 100 election timeouts of healing: %s", s.progress())
				return
			}
		}
	}
	for _, s := range h.groups {
		if h.failed() {
			return
		}
		s.hangLeaderLiveness()
	}
}

// runSimHostSeeds runs the seeds in [first, last] of a shape over the CPUs.
func runSimHostSeeds(t *testing.T, first, last uint64, hosts, groups int) {
	start := time.Now()
	workers := uint64(min(runtime.GOMAXPROCS(0), int(last-first+1)))
	var total simHostResult
	results := make(chan simHostResult, last-first+1)
	t.Run("seeds", func(t *testing.T) {
		for w := uint64(0); w < workers; w++ {
			t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
				t.Parallel()
				for seed := first + w; seed <= last; seed += workers {
					opt := simHostDefaultOptions(seed, hosts, groups)
					opt.misroute = *simHostMisroute
					res := runSimHost(opt, t.TempDir())
					if res.err != nil {
						t.Fatal(res.err)
					}
					results <- res
				}
			})
		}
	})
	close(results)
	n := 0
	for res := range results {
		n++
		total.ticks += res.ticks
		total.ops += res.ops
		total.committed += res.committed
		total.crashes += res.crashes
		total.partitions += res.partitions
		total.routed += res.routed
		total.wakes += res.wakes
	}
	if n == 0 {
		return
	}
	t.Logf("%d seeds of %d hosts x %d groups in %v: per seed %d ticks, %d operations, %d entries committed (all groups), %d host crashes, %d host partitions, %d messages routed, %d quiet groups woken by their host",
		n, hosts, groups, time.Since(start).Round(time.Millisecond), total.ticks/n, total.ops/n, total.committed/n, total.crashes/n, total.partitions/n, total.routed/n, total.wakes/n)
}

// TestSimHost runs the multi-group simulation over several seeds: 3 hosts
// x 8 groups by default. A failure prints the seed and the command that
// replays it.
func TestSimHost(t *testing.T) {
	first, last := uint64(1), uint64(*simHostSeeds)
	if *simHostSeed != 0 {
		first, last = *simHostSeed, *simHostSeed
	}
	runSimHostSeeds(t, first, last, *simHostHosts, *simHostGroups)
}

// TestSimHostLarge runs a few seeds of 5 hosts x 50 groups, in the plain
// build and without -short only.
func TestSimHostLarge(t *testing.T) {
	if !simHostLarge || testing.Short() || *simHostSeed != 0 {
		t.Skip("the large shape runs in the plain build without -short")
	}
	runSimHostSeeds(t, 1, 2, 5, 50)
}

// TestSimHostReplays runs a seed twice: every group's trace must match.
func TestSimHostReplays(t *testing.T) {
	opt := simHostDefaultOptions(7, 3, 4)
	opt.ticks, opt.ops = 600, 50
	a, b := runSimHost(opt, t.TempDir()), runSimHost(opt, t.TempDir())
	if a.err != nil {
		t.Fatal(a.err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("two runs, two results:\n%v\n%v", a, b)
	}
}

// simHostMisrouteBudget is how many seeds the router bug may take to be
// caught, at simHostMisrouteRate. Most misrouted appends are refused
// harmlessly (the groups' terms and logs differ), and some carry entries
// byte for byte like the target's own (the bootstrap entry, no-ops of the
// same index and term), so a seed needs a few to do harm: at 5 % seed 6
// is caught (at 1 %, seed 11).
const (
	simHostMisrouteBudget = 20
	simHostMisrouteRate   = 0.05
)

// TestSimHostCatchesMisroute plants a router bug — now and then an append
// of group g goes to group g+1 on the same host — and requires that a
// group's checkers catch it within the budget, counting from seed 1; the
// same seeds with a correct router pass.
func TestSimHostCatchesMisroute(t *testing.T) {
	for seed := uint64(1); seed <= simHostMisrouteBudget; seed++ {
		opt := simHostDefaultOptions(seed, 3, 4)
		opt.misroute = simHostMisrouteRate
		res := runSimHost(opt, t.TempDir())
		if res.err == nil {
			continue
		}
		t.Logf("caught by seed %d (%d of %d messages misrouted): %.400s", seed, res.misrouted, res.routed, res.err)
		for s := uint64(1); s <= seed; s++ {
			opt := simHostDefaultOptions(s, 3, 4)
			if res := runSimHost(opt, t.TempDir()); res.err != nil {
				t.Fatalf("with a correct router: %v", res.err)
			}
		}
		return
	}
	t.Fatalf("the misrouting router survived %d seeds", simHostMisrouteBudget)
}
