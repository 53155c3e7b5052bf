package rafttest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/filesnap"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/keelraft/raft/storage/wal"
	transinmem "github.com/keelraft/raft/transport/inmem"
)

// DefaultTimeout is how long a helper waits for its condition unless
// WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Option configures a Cluster.
type Option func(*options)

type options struct {
	config    func(*raft.Config)
	seed      uint64
	seeded    bool
	durable   bool
	timeout   time.Duration
	wrapSnaps func(raft.ServerID, raft.SnapshotStore) raft.SnapshotStore
	wrapTrans func(raft.ServerID, raft.Transport) raft.Transport
}

// WithConfig lets f adjust every server's configuration after the kit's
// defaults are set: raft.DefaultConfig with LocalID set, HeartbeatInterval
// 10ms, ElectionTimeout 100ms (fast, yet robust under -race on two cores)
// and PromotionStableTime 50ms.
func WithConfig(f func(*raft.Config)) Option { return func(o *options) { o.config = f } }

// WithSeed seeds the in-memory network's random fault choices. The default
// seed is a hash of the test's name.
func WithSeed(seed uint64) Option { return func(o *options) { o.seed, o.seeded = seed, true } }

// WithDurableStores runs every server on the durable stores in t.TempDir():
// storage/wal's log and stable store and storage/filesnap's snapshot store.
// A crash then keeps exactly what those stores synced to disk.
func WithDurableStores() Option { return func(o *options) { o.durable = true } }

// WithSnapshotStoreWrapper makes every server use wrap(id, store) in place
// of its snapshot store, each time the stores are opened: to count, slow
// down or fail what keel writes and reads.
func WithSnapshotStoreWrapper(wrap func(id raft.ServerID, store raft.SnapshotStore) raft.SnapshotStore) Option {
	return func(o *options) { o.wrapSnaps = wrap }
}

// WithTransportWrapper makes every server use wrap(id, t) in place of its
// in-memory transport, each time it starts: to count, delay or fail what
// keel sends (the Network's faults act on every server alike).
func WithTransportWrapper(wrap func(id raft.ServerID, t raft.Transport) raft.Transport) Option {
	return func(o *options) { o.wrapTrans = wrap }
}

// WithTimeout sets how long each helper waits for its condition before it
// fails the test (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Cluster is N keel servers in one process on the in-memory transport.
// Create it with New.
type Cluster struct {
	t       testing.TB
	opts    options
	net     *transinmem.Network
	smu     sync.Mutex // guards servers, which AddServer appends to
	servers []*Server
	newFSM  func() raft.FSM
	leaks   *leakCheck
}

// Server is one server of a Cluster. ID and Addr never change; the Raft,
// the FSM and the stores are replaced when the server restarts.
type Server struct {
	ID   raft.ServerID
	Addr raft.ServerAddress

	c   *Cluster
	dir string // durable stores

	mu       sync.Mutex
	raft     *raft.Raft // nil while crashed
	fsm      raft.FSM
	trans    *transinmem.Transport
	logs     raft.LogStore
	stable   raft.StableStore
	snaps    raft.SnapshotStore
	mem      *storeinmem.Store
	memSnaps *storeinmem.SnapshotStore
	wal      *wal.Log
	walStab  *wal.Stable
}

// Raft returns the running server, or nil while it is crashed.
func (s *Server) Raft() *raft.Raft {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raft
}

// FSM returns the server's state machine: the one of its current run (a
// restart makes a new one), or of its last run while it is crashed.
func (s *Server) FSM() raft.FSM {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fsm
}

// LogStore returns the server's current log store: a *storage/inmem.Store
// (use its FailWhen to inject faults) or, with WithDurableStores, a
// *storage/wal.Log.
func (s *Server) LogStore() raft.LogStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs
}

// StableStore returns the server's current stable store: the same
// *storage/inmem.Store as LogStore, or a *storage/wal.Stable.
func (s *Server) StableStore() raft.StableStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stable
}

// SnapshotStore returns the server's current snapshot store.
func (s *Server) SnapshotStore() raft.SnapshotStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snaps
}

// Crashed reports whether the server is crashed (see Cluster.Crash).
func (s *Server) Crashed() bool { return s.Raft() == nil }

// String returns the server's ID.
func (s *Server) String() string { return string(s.ID) }

// New bootstraps and starts an n-server cluster whose servers are named s1,
// s2, …, sn (their addresses are their IDs), each with an FSM from newFSM.
// It returns once every server is running; it does not wait for a leader
// (see Leader). The cluster shuts down when the test ends (t.Cleanup), after
// which New's goroutine-leak check runs; if the test failed, the seed is
// logged.
func New(t testing.TB, n int, newFSM func() raft.FSM, opts ...Option) *Cluster {
	t.Helper()
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.seeded {
		h := fnv.New64a()
		h.Write([]byte(t.Name()))
		o.seed = h.Sum64()
	}
	switch {
	case n < 1:
		t.Fatalf("rafttest.New: %d servers, want at least 1", n)
	case newFSM == nil:
		t.Fatalf("rafttest.New: nil FSM factory")
	case o.timeout <= 0:
		t.Fatalf("rafttest.New: timeout %v, want more than 0", o.timeout)
	}
	c := &Cluster{t: t, opts: o, net: transinmem.NewNetwork(o.seed), newFSM: newFSM}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rafttest: the cluster's seed was %d (rerun with rafttest.WithSeed(%d))", o.seed, o.seed)
		}
	})
	if err := raft.ValidateConfig(c.config("s1")); err != nil {
		c.net.Close()
		t.Fatalf("rafttest.New: %v", err)
	}
	var conf raft.Configuration
	for i := 0; i < n; i++ {
		id := raft.ServerID(fmt.Sprintf("s%d", i+1))
		s := &Server{ID: id, Addr: raft.ServerAddress(id), c: c}
		if o.durable {
			s.dir = filepath.Join(t.TempDir(), string(id))
		}
		c.servers = append(c.servers, s)
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: s.Addr})
	}
	// Registered after t.TempDir, so it runs before the directories go.
	c.leaks = startLeakCheck()
	t.Cleanup(c.shutdown)
	for _, s := range c.servers {
		c.openStores(s)
		if err := raft.BootstrapCluster(c.config(s.ID), s.logs, s.stable, s.snaps, conf); err != nil {
			t.Fatalf("rafttest.New: bootstrap %s: %v", s.ID, err)
		}
		c.start(s, newFSM())
	}
	return c
}

// config returns the configuration of server id.
func (c *Cluster) config(id raft.ServerID) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = id
	conf.HeartbeatInterval = 10 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.PromotionStableTime = 50 * time.Millisecond
	if c.opts.config != nil {
		c.opts.config(conf)
	}
	return conf
}

// openStores opens s's stores: fresh in-memory ones, what survived a crash
// of the in-memory ones, or the durable ones in its directory.
func (c *Cluster) openStores(s *Server) {
	c.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.opts.durable {
		if s.mem == nil {
			s.mem, s.memSnaps = storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		}
		s.logs, s.stable, s.snaps = s.mem, s.mem, s.memSnaps
		c.wrapSnaps(s)
		return
	}
	var err error
	if s.wal, err = wal.Open(filepath.Join(s.dir, "log"), wal.Options{SegmentSize: 1 << 20}); err != nil {
		c.t.Fatalf("rafttest: %s: open log: %v", s.ID, err)
	}
	if s.walStab, err = wal.OpenStable(filepath.Join(s.dir, "stable")); err != nil {
		s.wal.Close()
		c.t.Fatalf("rafttest: %s: open stable store: %v", s.ID, err)
	}
	snaps, err := filesnap.New(filepath.Join(s.dir, "snapshots"), filesnap.Options{})
	if err != nil {
		s.wal.Close()
		s.walStab.Close()
		c.t.Fatalf("rafttest: %s: open snapshot store: %v", s.ID, err)
	}
	s.logs, s.stable, s.snaps = s.wal, s.walStab, snaps
	c.wrapSnaps(s)
}

func (c *Cluster) wrapSnaps(s *Server) {
	if c.opts.wrapSnaps != nil {
		s.snaps = c.opts.wrapSnaps(s.ID, s.snaps)
	}
}

// closeStores closes s's durable stores, or keeps only the durable state of
// its in-memory ones. It returns the first error.
func (c *Cluster) closeStores(s *Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.opts.durable {
		s.mem, s.memSnaps = s.mem.Crash(), s.memSnaps.Crash()
		return nil
	}
	return errors.Join(s.wal.Close(), s.walStab.Close())
}

// start starts s with fsm on its open stores.
func (c *Cluster) start(s *Server, fsm raft.FSM) {
	c.t.Helper()
	trans, err := c.net.NewTransport(s.Addr)
	if err != nil {
		c.t.Fatalf("rafttest: %s: transport: %v", s.ID, err)
	}
	var rt raft.Transport = trans
	if c.opts.wrapTrans != nil {
		rt = c.opts.wrapTrans(s.ID, trans)
	}
	s.mu.Lock()
	r, err := raft.NewRaft(c.config(s.ID), fsm, s.logs, s.stable, s.snaps, rt)
	if err == nil {
		s.raft, s.fsm, s.trans = r, fsm, trans
	}
	s.mu.Unlock()
	if err != nil {
		trans.Close()
		c.t.Fatalf("rafttest: %s: start: %v", s.ID, err)
	}
}

func (c *Cluster) shutdown() {
	for _, s := range c.Servers() {
		r := s.Raft()
		if r == nil {
			continue
		}
		if err := r.Shutdown(); err != nil {
			c.t.Errorf("rafttest: %s had stopped with an error: %v (Crash it in the test if that is expected)", s.ID, err)
		}
		s.trans.Close()
		s.mu.Lock()
		s.raft = nil
		s.mu.Unlock()
		if c.opts.durable {
			if err := c.closeStores(s); err != nil {
				c.t.Errorf("rafttest: %s: closing stores: %v", s.ID, err)
			}
		}
	}
	c.net.Close()
	if err := c.leaks.finish(); err != nil {
		c.t.Errorf("rafttest: %v", err)
	}
}

// Servers returns every server, crashed or not, in ID order.
func (c *Cluster) Servers() []*Server {
	c.smu.Lock()
	defer c.smu.Unlock()
	return append([]*Server(nil), c.servers...)
}

// Live returns the servers that are not crashed.
func (c *Cluster) Live() []*Server {
	var out []*Server
	for _, s := range c.Servers() {
		if !s.Crashed() {
			out = append(out, s)
		}
	}
	return out
}

// Others returns every server except the given ones, crashed or not.
func (c *Cluster) Others(except ...*Server) []*Server {
	var out []*Server
	for _, s := range c.Servers() {
		if !containsServer(except, s) {
			out = append(out, s)
		}
	}
	return out
}

func containsServer(list []*Server, s *Server) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Network returns the in-memory network, for the faults the Cluster has no
// helper for (Isolate, Rejoin, SetDelay, SetReorderRate, Stats, …).
func (c *Cluster) Network() *transinmem.Network { return c.net }

// Seed returns the seed of the network's random fault choices.
func (c *Cluster) Seed() uint64 { return c.opts.seed }

// Timeout returns how long helpers wait for their conditions.
func (c *Cluster) Timeout() time.Duration { return c.opts.timeout }

// FSMs returns the FSMs of the live servers, in ID order.
func (c *Cluster) FSMs() []raft.FSM {
	var out []raft.FSM
	for _, s := range c.Live() {
		out = append(out, s.FSM())
	}
	return out
}

// WaitFor polls cond every few milliseconds until it returns true, and fails
// the test with "timed out after <timeout> waiting for <what>" if it has not
// by the deadline.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("rafttest: timed out after %v waiting for %s", timeout, what)
	}
}

// poll reports whether cond held before timeout passed.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// waitFor is WaitFor with the cluster's timeout and, on failure, the state of
// the given servers.
func (c *Cluster) waitFor(what string, servers []*Server, cond func() bool) {
	c.t.Helper()
	if !poll(c.opts.timeout, cond) {
		c.t.Fatalf("rafttest: timed out after %v waiting for %s\n%s", c.opts.timeout, what, describe(servers))
	}
}

// describe lists the servers' state, one line each.
func describe(servers []*Server) string {
	var b strings.Builder
	for _, s := range servers {
		r := s.Raft()
		if r == nil {
			fmt.Fprintf(&b, "\t%s: crashed\n", s.ID)
			continue
		}
		st := r.Stats()
		fmt.Fprintf(&b, "\t%s: %s term %s, leader %q, last index %s, commit %s, applied %s\n", s.ID,
			st["state"], st["term"], st["leader_id"], st["last_log_index"], st["commit_index"], st["applied_index"])
	}
	return b.String()
}

func ids(servers []*Server) string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = string(s.ID)
	}
	return strings.Join(out, ", ")
}

// check fails the test unless every server is one of this cluster's and,
// if live, is not crashed.
func (c *Cluster) check(what string, live bool, servers ...*Server) {
	c.t.Helper()
	for _, s := range servers {
		switch {
		case s == nil || s.c != c:
			c.t.Fatalf("rafttest: %s: %v is not a server of this cluster", what, s)
		case live && s.Crashed():
			c.t.Fatalf("rafttest: %s: %s is crashed", what, s.ID)
		}
	}
}

// Leader waits until exactly one live server is leader and every live server
// follows it, and returns it. See WaitLeader.
func (c *Cluster) Leader() *Server {
	c.t.Helper()
	return c.WaitLeader()
}

// WaitLeader waits until exactly one of the given servers (by default, every
// live server) is leader and all of them know it as their leader, and
// returns it. Pass the majority side of a partition to wait for its leader.
func (c *Cluster) WaitLeader(among ...*Server) *Server {
	c.t.Helper()
	if len(among) == 0 {
		among = c.Live()
		if len(among) == 0 {
			c.t.Fatalf("rafttest: WaitLeader: every server is crashed")
		}
	}
	c.check("WaitLeader", true, among...)
	var leader *Server
	c.waitFor("one leader that "+ids(among)+" follow", among, func() bool {
		leader = nil
		for _, s := range among {
			r := s.Raft()
			if r == nil {
				return false
			}
			if r.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = s
			}
		}
		if leader == nil {
			return false
		}
		for _, s := range among {
			if _, id := s.Raft().Leader(); id != leader.ID {
				return false
			}
		}
		return true
	})
	return leader
}

// Apply applies cmd on the leader and returns the FSM's response and the
// command's log index once the leader has applied it. It finds the leader
// itself (the live server that leads in the highest term, so it works on the
// majority side of a partition) and retries when leadership changes; see the
// package documentation about commands applied twice.
func (c *Cluster) Apply(cmd []byte) (resp any, index uint64) {
	c.t.Helper()
	err := c.OnLeader(fmt.Sprintf("Apply %q", cmd), func(ctx context.Context, r *raft.Raft) error {
		f := r.Apply(ctx, cmd)
		err := f.Error()
		resp, index = f.Response(), f.Index()
		return err
	})
	if err != nil {
		c.t.Fatalf("rafttest: Apply %q: %v", cmd, err)
	}
	return resp, index
}

// OnLeader calls op on the current leader (as Apply finds it) until op
// returns nil or an error other than the ones a leader change causes
// (ErrNotLeader, ErrLeadershipLost, ErrLeadershipTransferInProgress,
// ErrRaftShutdown, the attempt's deadline), and returns that. Each attempt
// gets a context with a deadline of ten election timeouts (at least 1s).
// It fails the test if no leader answered within the cluster's timeout.
func (c *Cluster) OnLeader(what string, op func(ctx context.Context, r *raft.Raft) error) error {
	c.t.Helper()
	attempt := max(time.Second, 10*c.config("s1").ElectionTimeout)
	deadline := time.Now().Add(c.opts.timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		var l *raft.Raft
		if !poll(time.Until(deadline), func() bool { l = c.CurrentLeader(); return l != nil }) {
			break
		}
		ctx, cancel := context.WithDeadline(context.Background(), minTime(deadline, time.Now().Add(attempt)))
		err := op(ctx, l)
		cancel()
		if err == nil || !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) &&
			!errors.Is(err, raft.ErrLeadershipTransferInProgress) &&
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, raft.ErrRaftShutdown) {
			return err
		}
		lastErr = err
	}
	c.t.Fatalf("rafttest: %s: no leader answered within %v (last error: %v)\n%s", what, c.opts.timeout, lastErr, describe(c.Servers()))
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// CurrentLeader returns the Raft of the live server that leads in the
// highest term, or nil.
func (c *Cluster) CurrentLeader() *raft.Raft {
	var best *raft.Raft
	var bestTerm uint64
	for _, s := range c.Live() {
		r := s.Raft()
		if r == nil || r.State() != raft.Leader {
			continue
		}
		term, _ := strconv.ParseUint(r.Stats()["term"], 10, 64)
		if best == nil || term > bestTerm {
			best, bestTerm = r, term
		}
	}
	return best
}

// WaitApplied waits until every live server has applied index (or a later
// one) to its FSM.
func (c *Cluster) WaitApplied(index uint64) {
	c.t.Helper()
	live := c.Live()
	c.waitFor(fmt.Sprintf("%s to apply index %d", ids(live), index), live, func() bool {
		for _, s := range live {
			r := s.Raft()
			if r == nil || r.AppliedIndex() < index {
				return false
			}
		}
		return true
	})
}

// RequireFSMsAgree waits until every live server has applied the same index
// and equal reports, for each server's FSM, that it equals the first live
// server's. equal runs while the servers keep applying, so it must read the
// FSMs under their own locks.
func (c *Cluster) RequireFSMsAgree(equal func(a, b raft.FSM) bool) {
	c.t.Helper()
	if equal == nil {
		c.t.Fatalf("rafttest: RequireFSMsAgree: nil equal function")
	}
	live := c.Live()
	if len(live) == 0 {
		c.t.Fatalf("rafttest: RequireFSMsAgree: every server is crashed")
	}
	var differ string
	ok := poll(c.opts.timeout, func() bool {
		differ = ""
		first := live[0].Raft()
		if first == nil {
			return false
		}
		applied := first.AppliedIndex()
		for _, s := range live[1:] {
			r := s.Raft()
			if r == nil || r.AppliedIndex() != applied {
				differ = "not every server applied the same index"
				return false
			}
		}
		for _, s := range live[1:] {
			if !equal(live[0].FSM(), s.FSM()) {
				differ = fmt.Sprintf("the FSMs of %s and %s differ", live[0].ID, s.ID)
				return false
			}
		}
		return true
	})
	if !ok {
		c.t.Fatalf("rafttest: the FSMs of %s did not agree within %v: %s\n%s", ids(live), c.opts.timeout, differ, describe(live))
	}
}

// Crash stops s abruptly, keeping only what its stores had made durable: the
// synced state of the durable stores, and every completed write of the
// in-memory ones. Its transport closes, so messages in flight to it are
// lost. If s had already stopped itself after a storage failure, the error
// is logged, not failed: call s.Raft().Shutdown() first to check it.
func (c *Cluster) Crash(s *Server) {
	c.t.Helper()
	c.check("Crash", true, s)
	r := s.Raft()
	if err := r.Shutdown(); err != nil {
		c.t.Logf("rafttest: Crash: %s had stopped: %v", s.ID, err)
	}
	s.trans.Close()
	s.mu.Lock()
	s.raft = nil
	s.mu.Unlock()
	if err := c.closeStores(s); err != nil {
		c.t.Fatalf("rafttest: Crash: %s: closing stores: %v", s.ID, err)
	}
}

// Restart restarts a crashed server on what its stores kept, with a new FSM
// from the cluster's factory (keel restores it from the latest snapshot and
// the log).
func (c *Cluster) Restart(s *Server) {
	c.t.Helper()
	c.RestartWith(s, c.newFSM())
}

// RestartWith restarts a crashed server with the given FSM, for instance one
// that blocks or fails.
func (c *Cluster) RestartWith(s *Server, fsm raft.FSM) {
	c.t.Helper()
	c.check("Restart", false, s)
	if !s.Crashed() {
		c.t.Fatalf("rafttest: Restart: %s is running; Crash it first", s.ID)
	}
	c.openStores(s)
	c.start(s, fsm)
}

// Partition splits the network into groups: afterwards only servers in the
// same group can talk. A server in no group is cut off from everyone. It
// replaces any earlier partition; Heal undoes it.
func (c *Cluster) Partition(groups ...[]*Server) {
	c.t.Helper()
	seen := map[*Server]int{}
	addrs := make([][]raft.ServerAddress, len(groups))
	for i, g := range groups {
		c.check("Partition", false, g...)
		for _, s := range g {
			if j, ok := seen[s]; ok && j != i {
				c.t.Fatalf("rafttest: Partition: %s is in groups %d and %d", s.ID, j, i)
			}
			seen[s] = i
			addrs[i] = append(addrs[i], s.Addr)
		}
	}
	c.net.Partition(addrs...)
}

// Heal removes partitions, cuts and isolation, and makes the network
// lossless again.
func (c *Cluster) Heal() { c.net.Heal() }

// Cut drops every message from one server to another (one way); Heal
// restores the link.
func (c *Cluster) Cut(from, to *Server) {
	c.t.Helper()
	c.check("Cut", false, from, to)
	if from == to {
		c.t.Fatalf("rafttest: Cut: %s to itself", from.ID)
	}
	c.net.Cut(from.Addr, to.Addr)
}

// SetLossy makes the network drop each message with probability p (0 ≤ p ≤
// 1), as chosen by the seeded source; SetLossy(0) or Heal ends it.
func (c *Cluster) SetLossy(p float64) {
	c.t.Helper()
	if err := c.net.SetDropRate(p); err != nil {
		c.t.Fatalf("rafttest: SetLossy(%v): %v", p, err)
	}
}
