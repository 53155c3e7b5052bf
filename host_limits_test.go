package raft_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
)

// fsmGate holds the applies of the FSMs that share it while held: a slow
// FSM whose slowness the test decides.
type fsmGate struct {
	mu sync.Mutex
	ch chan struct{} // non-nil while held
}

func (g *fsmGate) hold() {
	g.mu.Lock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	g.mu.Unlock()
}

func (g *fsmGate) open() {
	g.mu.Lock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	g.mu.Unlock()
}

func (g *fsmGate) wait() {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

type gatedFSM struct {
	*testFSM
	gate *fsmGate
}

func (f gatedFSM) Apply(l *raft.Log) any {
	f.gate.wait()
	return f.testFSM.Apply(l)
}

// ackHolder wraps a host's transport: while held, the followers'
// acknowledgements of appends are parked instead of sent, so that what
// leaders send stays in flight; release sends them on.
type ackHolder struct {
	raft.HostTransport
	mu     sync.Mutex
	held   bool
	parked []func()
}

func (a *ackHolder) Send(target raft.ServerAddress, g raft.GroupID, m *raft.Message) error {
	a.mu.Lock()
	if a.held && m.Type == raft.MsgAppendResp {
		a.parked = append(a.parked, func() { _ = a.HostTransport.Send(target, g, m) })
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	return a.HostTransport.Send(target, g, m)
}

func (a *ackHolder) hold() {
	a.mu.Lock()
	a.held = true
	a.mu.Unlock()
}

func (a *ackHolder) release() {
	a.mu.Lock()
	a.held = false
	parked := a.parked
	a.parked = nil
	a.mu.Unlock()
	for _, send := range parked {
		send()
	}
}

// startGroupWith bootstraps group g on every host of c and starts it with
// FSMs behind gate (nil: none) and the config conf gives each.
func startGroupWith(c *hostCluster, g raft.GroupID, gate *fsmGate, conf func(*raft.Config)) {
	var members raft.Configuration
	for _, id := range c.ids {
		members.Servers = append(members.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	for i := range c.hosts {
		logs, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		rc := hostConf(c.ids[i])
		if conf != nil {
			conf(rc)
		}
		require.NoError(c.t, raft.BootstrapCluster(rc, logs, logs, snaps, members))
		fsm := &testFSM{}
		var f raft.FSM = fsm
		if gate != nil {
			f = gatedFSM{fsm, gate}
		}
		_, err := c.hosts[i].StartGroup(g, rc, f, logs, logs, snaps)
		require.NoError(c.t, err)
		c.fsms[i][g] = fsm
	}
}

// peakSampler records the highest value of a host statistic while it
// runs.
type peakSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func samplePeak(hosts []*raft.Host, value func(raft.HostStats) uint64) *peakSampler {
	p := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			for _, h := range hosts {
				if v := value(h.Stats()); v > p.peak.Load() {
					p.peak.Store(v)
				}
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) finish() uint64 {
	close(p.stop)
	<-p.done
	return p.peak.Load()
}

// proposal is one command issued and how it ended.
type proposal struct {
	g   raft.GroupID
	cmd string
	err error
}

// proposeAll issues n commands of size bytes to the leader of each group
// (or, with viaFollower, to a follower, which forwards them) without
// waiting, and returns a function that waits for them all (with a
// deadline) and returns how they ended.
// refused, when set, counts the proposals refused with
// ErrProposalQueueFull as they are.
func proposeAll(t *testing.T, c *hostCluster, groups []raft.GroupID, n, size int, tag string, viaFollower bool, refused *atomic.Int32) func() []proposal {
	var wg sync.WaitGroup
	out := make([]proposal, 0, len(groups)*n)
	var mu sync.Mutex
	for _, g := range groups {
		l := c.leader(g, -1)
		if viaFollower {
			for _, h := range c.hosts {
				if r := h.Group(g); r != nil && r != l {
					l = r
				}
			}
		}
		for i := range n {
			cmd := fmt.Sprintf("%s-g%d-c%d-", tag, g, i)
			cmd += strings.Repeat("x", size-len(cmd))
			f := l.Apply(context.Background(), []byte(cmd))
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := f.Error()
				if refused != nil && errors.Is(err, raft.ErrProposalQueueFull) {
					refused.Add(1)
				}
				mu.Lock()
				out = append(out, proposal{g, cmd, err})
				mu.Unlock()
			}()
		}
	}
	return func() []proposal {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("proposals did not finish")
		}
		return out
	}
}

// requireAppliedOnce waits until every replica holds each acknowledged
// command, and checks that no command is there twice and none of those
// refused (must) is there at all.
func requireAppliedOnce(t *testing.T, c *hostCluster, props []proposal, mustNot func(error) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		for i := range c.hosts {
			for g, fsm := range c.fsms[i] {
				have := map[string]int{}
				for _, cmd := range fsm.commands() {
					have[cmd]++
				}
				for _, p := range props {
					if p.g != g {
						continue
					}
					switch {
					case p.err == nil && have[p.cmd] != 1, have[p.cmd] > 1, mustNot(p.err) && have[p.cmd] != 0:
						return false
					}
				}
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "an acknowledged command is missing, or a command is applied twice or despite its refusal")
}

// requireHostTotalsZero waits for every host's pending and in-flight
// bytes to go back to zero: the accounting leaks nothing.
func requireHostTotalsZero(t *testing.T, c *hostCluster) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for {
		var stats []raft.HostStats
		zero := true
		for _, h := range c.hosts {
			s := h.Stats()
			stats = append(stats, s)
			zero = zero && s.PendingBytes == 0 && s.InflightBytes == 0
		}
		if zero {
			return
		}
		select {
		case <-tk.C:
		case <-deadline:
			t.Fatalf("host totals stay above zero: %+v", stats)
		}
	}
}

func groupIDs(n int) []raft.GroupID {
	ids := make([]raft.GroupID, n)
	for i := range ids {
		ids[i] = raft.GroupID(i + 1)
	}
	return ids
}

// TestHostLimitPendingBytes: many groups whose FSMs are held, proposed to
// beyond a small HostConfig.MaxPendingBytes. The host's total never passes
// the limit (each group's own limit, 32 MiB, is far away), proposals past
// it fail at once with ErrProposalQueueFull and ErrHostLimit, every
// accepted one is applied once the FSMs go on, and the totals return to
// zero — also after leadership moves while proposals are pending.
func TestHostLimitPendingBytes(t *testing.T) {
	const limit = 16 << 10
	c := newHostCluster(t, 3, func(hc *raft.HostConfig) { hc.MaxPendingBytes = limit })
	gate := &fsmGate{}
	t.Cleanup(gate.open) // before the hosts close: an applier waits on it
	groups := groupIDs(12)
	for _, g := range groups {
		startGroupWith(c, g, gate, nil)
	}
	for _, g := range groups {
		c.leader(g, -1)
	}
	requireHostTotalsZero(t, c) // the leaders' no-ops are applied

	gate.hold()
	peak := samplePeak(c.hosts, func(s raft.HostStats) uint64 { return s.PendingBytes })
	wait := proposeAll(t, c, groups, 60, 512, "a", false, nil)
	// Held FSMs apply nothing: the host's total climbs to its limit and
	// the rest of the proposals are refused.
	waitPendingNear(t, c.hosts, limit-600)
	gate.open()
	props := wait()
	require.LessOrEqual(t, peak.finish(), uint64(limit), "a host's pending bytes passed HostConfig.MaxPendingBytes")
	accepted, refused := 0, 0
	for _, p := range props {
		switch {
		case p.err == nil:
			accepted++
		case errors.Is(p.err, raft.ErrProposalQueueFull):
			require.ErrorIs(t, p.err, raft.ErrHostLimit)
			require.Contains(t, p.err.Error(), "HostConfig.MaxPendingBytes 16384")
			refused++
		default:
			t.Fatalf("%s: unexpected error %v", p.cmd, p.err)
		}
	}
	t.Logf("accepted %d, refused %d of %d", accepted, refused, len(props))
	require.Positive(t, refused)
	require.GreaterOrEqual(t, accepted, limit/(512+64)) // at least one host's worth
	isRefused := func(err error) bool { return errors.Is(err, raft.ErrProposalQueueFull) }
	requireAppliedOnce(t, c, props, isRefused)
	requireHostTotalsZero(t, c)

	// Leadership moves while proposals are pending: the old leaders'
	// shares leave the totals, the new leaders' come in, and all end at
	// zero.
	gate.hold()
	wait = proposeAll(t, c, groups, 20, 512, "b", false, nil)
	var transfers []raft.Future
	for _, g := range groups[:6] {
		transfers = append(transfers, c.leader(g, -1).LeadershipTransfer(context.Background()))
	}
	for _, f := range transfers {
		_ = f.Error() // may time out behind the held FSMs; the totals must not care
	}
	gate.open()
	props = append(props, wait()...)
	for _, p := range props {
		if p.err != nil && !isRefused(p.err) && !errors.Is(p.err, raft.ErrLeadershipLost) && !errors.Is(p.err, raft.ErrNotLeader) &&
			!errors.Is(p.err, raft.ErrLeadershipTransferInProgress) {
			t.Fatalf("%s: unexpected error %v", p.cmd, p.err)
		}
	}
	requireAppliedOnce(t, c, props, isRefused)
	requireHostTotalsZero(t, c)

	// Proposals forwarded by followers count against the leader's host
	// too: those past its limit are refused (the follower sees
	// ErrProposalQueueFull).
	gate.hold()
	peak = samplePeak(c.hosts, func(s raft.HostStats) uint64 { return s.PendingBytes })
	var fwdRefused atomic.Int32
	wait = proposeAll(t, c, groups, 30, 512, "f", true, &fwdRefused)
	// A forwarded batch is admitted whole or not at all, so a host may
	// stop short of its limit by more than one entry: wait for the first
	// refusal instead.
	require.Eventually(t, func() bool { return fwdRefused.Load() > 0 }, 10*time.Second, time.Millisecond, "no forwarded proposal was refused")
	gate.open()
	forwarded := wait()
	require.LessOrEqual(t, peak.finish(), uint64(limit), "forwarded proposals took a host past HostConfig.MaxPendingBytes")
	refused = 0
	for _, p := range forwarded {
		switch {
		case isRefused(p.err):
			refused++
		case p.err != nil && !errors.Is(p.err, raft.ErrLeadershipLost) && !errors.Is(p.err, raft.ErrNotLeader):
			t.Fatalf("%s: unexpected error %v", p.cmd, p.err)
		}
	}
	require.Positive(t, refused, "no forwarded proposal was refused")
	props = append(props, forwarded...)
	requireAppliedOnce(t, c, props, isRefused)
	requireHostTotalsZero(t, c)

	// A group stopped with proposals pending takes its share along.
	gate.hold()
	l := c.leader(groups[0], -1)
	var lh *raft.Host
	for _, h := range c.hosts {
		if h.Group(groups[0]) == l {
			lh = h
		}
	}
	f := l.Apply(context.Background(), []byte("stopped"))
	require.Eventually(t, func() bool { return lh.Stats().PendingBytes > 0 }, 5*time.Second, time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- lh.StopGroup(groups[0]) }()
	gate.open()
	require.NoError(t, <-stopped)
	_ = f.Error()
	require.Eventually(t, func() bool { return lh.Stats().PendingBytes == 0 }, 10*time.Second, time.Millisecond)
}

// TestHostLimitInflightBytes: followers' acknowledgements are held, so
// what leaders send stays in flight. The host's in-flight total never
// passes HostConfig.MaxInflightBytes by more than one append per step
// worker (without the limit, every leader streams its whole backlog);
// once acknowledgements flow again every command commits, and the totals
// return to zero.
func TestHostLimitInflightBytes(t *testing.T) {
	const (
		limit      = 16 << 10
		cmdSize    = 1 << 10
		perAppend  = 4
		stepWorker = 2
	)
	holders := map[raft.ServerAddress]*ackHolder{}
	c := newHostCluster(t, 3, func(hc *raft.HostConfig) {
		a := &ackHolder{HostTransport: hc.Transport}
		holders[hc.Transport.LocalAddr()] = a
		hc.Transport, hc.MaxInflightBytes, hc.StepWorkers = a, limit, stepWorker
	})
	t.Cleanup(func() {
		for _, a := range holders {
			a.release()
		}
	})
	groups := groupIDs(12)
	for _, g := range groups {
		startGroupWith(c, g, nil, func(rc *raft.Config) { rc.MaxAppendEntries = perAppend })
	}
	for _, g := range groups {
		c.leader(g, -1)
	}
	requireHostTotalsZero(t, c)

	for _, a := range holders {
		a.hold()
	}
	peak := samplePeak(c.hosts, func(s raft.HostStats) uint64 { return s.InflightBytes })
	wait := proposeAll(t, c, groups, 40, cmdSize, "a", false, nil)
	// Every leader has appended its commands; without the limit they are
	// all on their way to the followers by now.
	require.Eventually(t, func() bool {
		for _, g := range groups {
			l := c.leader(g, -1)
			if l.LastIndex() < 42 { // the bootstrap's entry, the no-op, 40 commands
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "the leaders did not append the commands")
	// The limit is what holds them back: a host reached it.
	require.Eventually(t, func() bool { return peak.peak.Load() >= limit/2 },
		5*time.Second, time.Millisecond, "no host put half its in-flight limit in flight")
	highest := peak.finish()
	for _, a := range holders {
		a.release()
	}
	props := wait()
	t.Logf("in-flight peak %d bytes, limit %d", highest, limit)
	require.LessOrEqual(t, highest, uint64(limit+stepWorker*perAppend*cmdSize), "a host's in-flight bytes passed HostConfig.MaxInflightBytes by more than an append per step worker")
	for _, p := range props {
		require.NoError(t, p.err, p.cmd)
	}
	requireAppliedOnce(t, c, props, func(error) bool { return false })
	requireHostTotalsZero(t, c)
}

// sendCountingSnaps counts, for a host, the snapshots open for reading at once
// (a leader's sender holds one open for its whole transfer).
type sendCountingSnaps struct {
	*storeinmem.SnapshotStore
	open, peak *atomic.Int64
}

func (s sendCountingSnaps) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	n := s.open.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return meta, &countedReader{ReadCloser: rc, open: s.open}, nil
}

type countedReader struct {
	io.ReadCloser
	open *atomic.Int64
	once sync.Once
}

func (r *countedReader) Close() error {
	r.once.Do(func() { r.open.Add(-1) })
	return r.ReadCloser.Close()
}

// snapshotLaggers runs groups on hosts 0 and 1 (so they lead), with host
// 2's replicas down while the leaders write and compact past them, then
// starts host 2's: each needs a snapshot. It returns, per leader host, the
// peak of snapshots open for sending, and host 2's snapshot stores.
type snapshotLaggers struct {
	c      *hostCluster
	groups []raft.GroupID
	open   [2]atomic.Int64
	peak   [2]atomic.Int64
	lag    map[raft.GroupID]*storeinmem.Store
	lagSn  map[raft.GroupID]*storeinmem.SnapshotStore
	conf   func(i int) *raft.Config
}

func newSnapshotLaggers(t *testing.T, hc func(*raft.HostConfig), groups []raft.GroupID, cmds, size int) *snapshotLaggers {
	s := &snapshotLaggers{c: newHostCluster(t, 3, hc), groups: groups,
		lag: map[raft.GroupID]*storeinmem.Store{}, lagSn: map[raft.GroupID]*storeinmem.SnapshotStore{}}
	c := s.c
	s.conf = func(i int) *raft.Config {
		rc := hostConf(c.ids[i])
		rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = 10, 50*time.Millisecond, 2
		rc.SnapshotChunkSize = 8 << 10
		return rc
	}
	var members raft.Configuration
	for _, id := range c.ids {
		members.Servers = append(members.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	for _, g := range groups {
		for i := range c.hosts {
			logs, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
			require.NoError(t, raft.BootstrapCluster(s.conf(i), logs, logs, snaps, members))
			if i == 2 {
				s.lag[g], s.lagSn[g] = logs, snaps
				continue
			}
			fsm := &testFSM{}
			_, err := c.hosts[i].StartGroup(g, s.conf(i), fsm, logs, logs, sendCountingSnaps{snaps, &s.open[i], &s.peak[i]})
			require.NoError(t, err)
			c.fsms[i][g] = fsm
		}
	}
	for _, g := range groups {
		l := c.leader(g, -1)
		for i := range cmds {
			cmd := fmt.Sprintf("g%d-c%d-", g, i)
			cmd += strings.Repeat("x", size-len(cmd))
			require.NoError(t, l.Apply(context.Background(), []byte(cmd)).Error())
		}
	}
	// The leaders snapshot on the host's ticks and compact past what host
	// 2's replicas hold (the bootstrap's one entry).
	require.Eventually(t, func() bool {
		for _, g := range groups {
			if l := c.leader(g, -1); l.Stats()["last_snapshot_index"] == "0" {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "a leader took no snapshot")
	s.peak[0].Store(s.open[0].Load())
	s.peak[1].Store(s.open[1].Load())
	return s
}

// startLaggers starts host 2's replicas.
func (s *snapshotLaggers) startLaggers(t *testing.T) {
	for _, g := range s.groups {
		fsm := &testFSM{}
		_, err := s.c.hosts[2].StartGroup(g, s.conf(2), fsm, s.lag[g], s.lag[g], s.lagSn[g])
		require.NoError(t, err)
		s.c.fsms[2][g] = fsm
	}
}

// caughtUp waits for every lagger to install a snapshot and hold its
// group's commands.
func (s *snapshotLaggers) caughtUp(t *testing.T) {
	require.Eventually(t, func() bool {
		for _, g := range s.groups {
			list, err := s.lagSn[g].List()
			if err != nil || len(list) == 0 {
				return false
			}
			if fmt.Sprint(s.c.fsms[2][g].commands()) != fmt.Sprint(s.c.fsms[0][g].commands()) {
				return false
			}
		}
		return true
	}, 30*time.Second, 5*time.Millisecond, "a lagger did not catch up by snapshot")
}

// TestHostLimitSnapshotSends: more followers need a snapshot than
// MaxSnapshotSends lets a host send at once. No leader host ever has more
// than that many transfers reading their snapshots, the others wait (seen
// in HostStats), and every follower catches up.
func TestHostLimitSnapshotSends(t *testing.T) {
	const sends = 1
	s := newSnapshotLaggers(t, func(hc *raft.HostConfig) {
		// Slow transfers (a rate shared by the host's sends), so that
		// unbounded ones would overlap.
		hc.MaxSnapshotSends, hc.SnapshotSendRate = sends, 256<<10
	}, groupIDs(6), 30, 1<<10)
	var waited, overRunning atomic.Bool
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(100 * time.Microsecond)
		defer tk.Stop()
		for {
			for _, h := range s.c.hosts[:2] {
				st := h.Stats()
				waited.CompareAndSwap(false, st.SnapshotSendsWaiting > 0)
				overRunning.CompareAndSwap(false, st.SnapshotSendsRunning > sends)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	s.startLaggers(t)
	s.caughtUp(t)
	close(stop)
	<-sampled
	t.Logf("peak sends open: host 0 %d, host 1 %d", s.peak[0].Load(), s.peak[1].Load())
	for i := range 2 {
		require.LessOrEqual(t, s.peak[i].Load(), int64(sends), "host %d had more snapshot transfers at once than MaxSnapshotSends", i)
	}
	require.False(t, overRunning.Load(), "HostStats showed more snapshot sends running than MaxSnapshotSends")
	require.True(t, waited.Load(), "no transfer ever waited for its turn")
	require.Eventually(t, func() bool {
		for _, h := range s.c.hosts {
			if st := h.Stats(); st.SnapshotSendsRunning != 0 || st.SnapshotSendsWaiting != 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "snapshot sends still counted after every follower caught up")
}

// TestHostLimitSnapshotSendRate: one follower catches up by a snapshot of
// known size from a host with SnapshotSendRate; the transfer takes at
// least as long as the rate demands (less a burst), within a margin.
func TestHostLimitSnapshotSendRate(t *testing.T) {
	const rate = 128 << 10
	s := newSnapshotLaggers(t, func(hc *raft.HostConfig) { hc.SnapshotSendRate = rate }, groupIDs(1), 48, 4<<10)
	start := time.Now()
	s.startLaggers(t)
	s.caughtUp(t)
	elapsed := time.Since(start)
	list, err := s.lagSn[1].List()
	require.NoError(t, err)
	size := list[0].Size
	// The burst (a tenth of a second's worth) goes at once; the rest at
	// the rate. Allow a fifth less for timer slack.
	want := time.Duration(float64(size-rate/10) / rate * float64(time.Second))
	require.Greater(t, size, int64(rate), "the snapshot is too small to measure the rate")
	t.Logf("snapshot of %d bytes took %v; at %d bytes/s it takes at least %v", size, elapsed, rate, want)
	require.GreaterOrEqual(t, elapsed, want*4/5, "the transfer went faster than SnapshotSendRate")
}

// TestHostLimitSnapshotSendsStopOnClose: a transfer slowed by the rate and
// one waiting for its turn both stop at once when the host closes
// (TestMain's goleak checks that their goroutines are gone).
func TestHostLimitSnapshotSendsStopOnClose(t *testing.T) {
	s := newSnapshotLaggers(t, func(hc *raft.HostConfig) {
		hc.MaxSnapshotSends, hc.SnapshotSendRate = 1, 1<<10 // a transfer takes minutes
	}, groupIDs(4), 30, 1<<10)
	s.startLaggers(t)
	require.Eventually(t, func() bool {
		for _, h := range s.c.hosts[:2] {
			if st := h.Stats(); st.SnapshotSendsRunning == 1 && st.SnapshotSendsWaiting > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "no host had a transfer running and one waiting")
	start := time.Now()
	for _, h := range s.c.hosts {
		require.NoError(t, h.Close())
	}
	require.Less(t, time.Since(start), 5*time.Second, "closing waited for snapshot transfers")
}

func TestNewHostRefusesNegativeSnapshotSends(t *testing.T) {
	_, err := raft.NewHost(raft.HostConfig{Transport: newMemHostNet().transport("a"), MaxSnapshotSends: -1})
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	require.Contains(t, err.Error(), "MaxSnapshotSends")
}

// waitPendingNear waits until some host holds more than near pending bytes.
func waitPendingNear(t *testing.T, hosts []*raft.Host, near uint64) {
	require.Eventually(t, func() bool {
		for _, h := range hosts {
			if s := h.Stats(); s.PendingBytes > near {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "no host reached its pending limit")
}
