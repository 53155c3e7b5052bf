package raft_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/keelraft/raft/storage/multiwal"
	"github.com/keelraft/raft/transport/tcp"
)

// memHostNet connects HostTransports in memory. Every message goes
// through EncodeGroupMessage and DecodeGroupMessage, so a group tag that
// is lost or garbled shows up; a host can be cut off.
type memHostNet struct {
	mu    sync.Mutex
	hosts map[raft.ServerAddress]*memHostTransport
	cut   map[raft.ServerAddress]bool
}

type memHostTransport struct {
	net  *memHostNet
	addr raft.ServerAddress
	ch   chan raft.GroupMessage
}

func newMemHostNet() *memHostNet {
	return &memHostNet{hosts: map[raft.ServerAddress]*memHostTransport{}, cut: map[raft.ServerAddress]bool{}}
}

func (n *memHostNet) transport(addr raft.ServerAddress) *memHostTransport {
	t := &memHostTransport{net: n, addr: addr, ch: make(chan raft.GroupMessage, 1<<14)}
	n.mu.Lock()
	n.hosts[addr] = t
	n.mu.Unlock()
	return t
}

func (n *memHostNet) isolate(addr raft.ServerAddress, cut bool) {
	n.mu.Lock()
	n.cut[addr] = cut
	n.mu.Unlock()
}

func (t *memHostTransport) Send(target raft.ServerAddress, g raft.GroupID, m *raft.Message) error {
	b, err := raft.EncodeGroupMessage(g, m)
	if err != nil {
		return err
	}
	t.net.mu.Lock()
	to, cut := t.net.hosts[target], t.net.cut[t.addr] || t.net.cut[target]
	t.net.mu.Unlock()
	if to == nil || cut {
		return nil
	}
	gm, err := raft.DecodeGroupMessage(b)
	if err != nil {
		return err
	}
	select {
	case to.ch <- gm:
	default: // full: dropped, Raft retransmits
	}
	return nil
}
func (t *memHostTransport) Consumer() <-chan raft.GroupMessage { return t.ch }
func (t *memHostTransport) LocalAddr() raft.ServerAddress      { return t.addr }
func (t *memHostTransport) Close() error                       { return nil }

// hostCluster is hosts that each run a replica of every group.
type hostCluster struct {
	t     *testing.T
	net   *memHostNet
	ids   []raft.ServerID
	hosts []*raft.Host
	fsms  []map[raft.GroupID]*testFSM
}

func hostConf(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatInterval = 20 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	return c
}

func newHostCluster(t *testing.T, nHosts int, hc func(*raft.HostConfig)) *hostCluster {
	c := &hostCluster{t: t, net: newMemHostNet()}
	for i := range nHosts {
		id := raft.ServerID(fmt.Sprintf("h%d", i+1))
		c.ids = append(c.ids, id)
		conf := raft.HostConfig{Transport: c.net.transport(raft.ServerAddress(id)), HeartbeatInterval: 20 * time.Millisecond}
		if hc != nil {
			hc(&conf)
		}
		h, err := raft.NewHost(conf)
		require.NoError(t, err)
		c.hosts = append(c.hosts, h)
		c.fsms = append(c.fsms, map[raft.GroupID]*testFSM{})
	}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			require.NoError(t, h.Close())
		}
	})
	return c
}

// start bootstraps group g on the hosts at the given positions and starts it.
func (c *hostCluster) start(g raft.GroupID, on ...int) { c.startOf(g, on, on) }

// startOf starts group g, whose voters are the hosts at members, on the
// hosts at on.
func (c *hostCluster) startOf(g raft.GroupID, members, on []int) {
	var conf raft.Configuration
	for _, i := range members {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: c.ids[i], Address: raft.ServerAddress(c.ids[i])})
	}
	for _, i := range on {
		logs, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		rc := hostConf(c.ids[i])
		require.NoError(c.t, raft.BootstrapCluster(rc, logs, logs, snaps, conf))
		fsm := &testFSM{}
		_, err := c.hosts[i].StartGroup(g, rc, fsm, logs, logs, snaps)
		require.NoError(c.t, err)
		c.fsms[i][g] = fsm
	}
}

// leader waits for group g to have one leader among the hosts not cut off.
func (c *hostCluster) leader(g raft.GroupID, except int) *raft.Raft {
	var l *raft.Raft
	require.Eventually(c.t, func() bool {
		l = nil
		for i, h := range c.hosts {
			if r := h.Group(g); i != except && r != nil && r.State() == raft.Leader {
				l = r
			}
		}
		return l != nil
	}, 10*time.Second, 5*time.Millisecond, "group %d elects no leader", g)
	return l
}

func TestHostRunsManyGroups(t *testing.T) {
	const groups, cmds = 40, 5
	c := newHostCluster(t, 3, nil)
	base := runtime.NumGoroutine()
	for g := raft.GroupID(1); g <= groups; g++ {
		c.start(g, 0, 1, 2)
	}
	// Every replica of every group applies its own group's commands, in
	// order, and no other group's: a message routed to the wrong group
	// would show here.
	hist := make([]groupHistory, groups)
	var wg sync.WaitGroup
	for g := raft.GroupID(1); g <= groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rafts := func() []*raft.Raft {
				return []*raft.Raft{c.hosts[0].Group(g), c.hosts[1].Group(g), c.hosts[2].Group(g)}
			}
			var issued []string
			acked := map[string]bool{}
			for i := range cmds {
				cmd := fmt.Sprintf("g%d-%d", g, i)
				issued = append(issued, cmd)
				acked[cmd] = applyOnce(t, rafts, cmd)
			}
			hist[g-1] = groupHistory{issued, acked}
		}()
	}
	wg.Wait()
	for g := raft.GroupID(1); g <= groups; g++ {
		requireSameHistory(t, fmt.Sprintf("group %d", g), []*testFSM{c.fsms[0][g], c.fsms[1][g], c.fsms[2][g]}, hist[g-1].issued, hist[g-1].acked)
	}
	// The goroutines do not grow with the groups: the writers are gone,
	// and 120 groups on goroutines of their own would have added 600.
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+2 }, 5*time.Second, 10*time.Millisecond,
		"goroutines: %d with %d groups, %d with none", runtime.NumGoroutine(), 3*groups, base)
	for _, h := range c.hosts {
		require.Equal(t, groups, h.Stats().Groups)
	}
}

func TestHostSurvivesAnIsolatedHost(t *testing.T) {
	const groups = 10
	c := newHostCluster(t, 3, nil)
	for g := raft.GroupID(1); g <= groups; g++ {
		c.start(g, 0, 1, 2)
	}
	for g := raft.GroupID(1); g <= groups; g++ {
		c.leader(g, -1)
	}
	c.net.isolate(raft.ServerAddress(c.ids[0]), true)
	for g := raft.GroupID(1); g <= groups; g++ {
		require.Eventually(t, func() bool {
			return c.leader(g, 0).Apply(context.Background(), []byte("during")).Error() == nil
		}, 10*time.Second, time.Millisecond)
	}
	c.net.isolate(raft.ServerAddress(c.ids[0]), false)
	for g := raft.GroupID(1); g <= groups; g++ {
		require.Eventually(t, func() bool { return count(c.fsms[0][g].commands(), "during") == 1 }, 10*time.Second, 5*time.Millisecond, "group %d", g)
	}
}

func TestHostStopRemoveAndUnknownGroups(t *testing.T) {
	var unknown sync.Map
	c := newHostCluster(t, 3, func(hc *raft.HostConfig) {
		hc.UnknownGroup = func(g raft.GroupID, m *raft.Message) { unknown.Store(g, true) }
	})
	c.start(1, 0, 1, 2)
	c.start(2, 0, 1, 2)
	// Group 3's configuration names all three hosts, but it runs on two:
	// the third hears of it through the hook.
	c.startOf(3, []int{0, 1, 2}, []int{0, 1})
	l := c.leader(1, -1)
	require.NoError(t, l.Apply(context.Background(), []byte("x")).Error())

	h3 := c.hosts[2]
	_, err := h3.StartGroup(1, hostConf(c.ids[2]), &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrGroupExists)
	_, err = h3.StartGroup(9, &raft.Config{LocalID: "h3", HeartbeatInterval: time.Second}, &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrInvalidConfig)

	require.NoError(t, h3.RemoveGroup(2))
	require.Nil(t, h3.Group(2))
	require.Equal(t, []raft.GroupID{2}, h3.Removed())
	_, err = h3.StartGroup(2, hostConf(c.ids[2]), &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrGroupRemoved)
	require.NoError(t, h3.StopGroup(1))
	require.ErrorIs(t, h3.StopGroup(1), raft.ErrUnknownGroup)
	require.Equal(t, []raft.GroupID(nil), nonEmpty(h3.Groups()))

	// Group 2's leader keeps sending to h3: dropped as removed, never
	// passed to the hook. Group 1's messages, now for a stopped group, are.
	require.Eventually(t, func() bool {
		_, saw1 := unknown.Load(raft.GroupID(1))
		_, saw3 := unknown.Load(raft.GroupID(3))
		return saw1 && saw3 && h3.Stats().RemovedDropped > 0
	}, 10*time.Second, 5*time.Millisecond, "stats %+v", h3.Stats())
	_, saw2 := unknown.Load(raft.GroupID(2))
	require.False(t, saw2, "a removed group's message reached the hook")

	// A restarted host keeps the tombstone it is given.
	h, err := raft.NewHost(raft.HostConfig{Transport: c.net.transport("h9"), Removed: h3.Removed()})
	require.NoError(t, err)
	_, err = h.StartGroup(2, raft.DefaultConfig(), &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrGroupRemoved)
	require.NoError(t, h.Close())
	require.ErrorIs(t, h.StopGroup(1), raft.ErrHostClosed)
}

// applyOnce applies cmd on whichever of rafts leads, retrying only while
// the command surely was not appended. It reports whether cmd was
// acknowledged; false means its outcome is unknown (it may commit).
func applyOnce(t *testing.T, rafts func() []*raft.Raft, cmd string) bool {
	deadline := time.After(20 * time.Second)
	retry := time.NewTicker(time.Millisecond) // a new leader is looked for at this pace
	defer retry.Stop()
	for {
		for _, r := range rafts() {
			if r == nil || r.State() != raft.Leader {
				continue
			}
			err := r.Apply(context.Background(), []byte(cmd)).Error()
			switch {
			case err == nil:
				return true
			case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			default:
				return false
			}
		}
		select {
		case <-retry.C:
		case <-deadline:
			t.Errorf("%s: no leader took it", cmd)
			return false
		}
	}
}

// groupHistory is what a group's client issued and which were acknowledged.
type groupHistory struct {
	issued []string
	acked  map[string]bool
}

// requireSameHistory waits until every FSM holds the same commands, and
// checks that each acknowledged command is there exactly once, in the
// order issued, and no command twice.
func requireSameHistory(t *testing.T, what string, fsms []*testFSM, issued []string, acked map[string]bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		first := fmt.Sprint(fsms[0].commands())
		for _, f := range fsms[1:] {
			if fmt.Sprint(f.commands()) != first {
				return false
			}
		}
		for _, c := range issued {
			if acked[c] && count(fsms[0].commands(), c) != 1 {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "%s: replicas disagree or miss an acknowledged command", what)
	got := fsms[0].commands()
	seen := map[string]bool{}
	for _, c := range got {
		require.False(t, seen[c], "%s: %s applied twice: %v", what, c, got)
		seen[c] = true
	}
	var order []string
	for _, c := range got {
		if acked[c] {
			order = append(order, c)
		}
	}
	var want []string
	for _, c := range issued {
		if acked[c] {
			want = append(want, c)
		}
	}
	require.Equal(t, want, order, what)
}

func nonEmpty(ids []raft.GroupID) []raft.GroupID {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// TestHostGroupCatchesUpBySnapshot runs the snapshot parts of a hosted
// group: the threshold check on the host's ticks, and InstallSnapshot
// received by the receiver task; then the group goes on writing. With
// in-memory stores, and with multiwal's, whose writes (compactions and
// the log reset of an installed snapshot among them) go through the
// persist rounds' staged views.
func TestHostGroupCatchesUpBySnapshot(t *testing.T) {
	t.Run("inmem", func(t *testing.T) {
		testHostGroupCatchesUpBySnapshot(t, func(int) logStable { return storeinmem.NewStore() })
	})
	t.Run("multiwal", func(t *testing.T) {
		testHostGroupCatchesUpBySnapshot(t, func(int) logStable {
			w, err := multiwal.Open(t.TempDir(), multiwal.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, w.Close()) }) // after the hosts' Close: registered before it
			g, err := w.Group(5)
			require.NoError(t, err)
			return g
		})
	})
}

// logStable is a group's log and stable store in one.
type logStable interface {
	raft.LogStore
	raft.StableStore
}

func testHostGroupCatchesUpBySnapshot(t *testing.T, newStore func(host int) logStable) {
	logs := []logStable{newStore(0), newStore(1), newStore(2)}
	c := newHostCluster(t, 3, nil)
	var conf raft.Configuration
	for _, id := range c.ids {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	type stores struct {
		logs  logStable
		snaps *storeinmem.SnapshotStore
	}
	st := make([]stores, 3)
	groupConf := func(i int) *raft.Config {
		rc := hostConf(c.ids[i])
		rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = 10, 50*time.Millisecond, 2
		return rc
	}
	for i := range c.hosts {
		st[i] = stores{logs[i], storeinmem.NewSnapshotStore()}
		require.NoError(t, raft.BootstrapCluster(groupConf(i), st[i].logs, st[i].logs, st[i].snaps, conf))
	}
	start := func(i int) {
		fsm := &testFSM{}
		_, err := c.hosts[i].StartGroup(5, groupConf(i), fsm, st[i].logs, st[i].logs, st[i].snaps)
		require.NoError(t, err)
		c.fsms[i][5] = fsm
	}
	for i := range c.hosts {
		start(i)
	}
	l := c.leader(5, -1)
	lagger := 0
	for i, h := range c.hosts {
		if h.Group(5) != l {
			lagger = i
		}
	}
	require.NoError(t, c.hosts[lagger].StopGroup(5))
	var want []string
	for i := range 40 {
		cmd := fmt.Sprintf("c%d", i)
		want = append(want, cmd)
		require.NoError(t, l.Apply(context.Background(), []byte(cmd)).Error())
	}
	// The leader snapshots on the host's ticks and compacts its log past
	// what the stopped replica holds...
	lead := 0
	for i, h := range c.hosts {
		if h.Group(5) == l {
			lead = i
		}
	}
	held, err := st[lagger].logs.LastIndex()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		first, err := st[lead].logs.FirstIndex()
		return err == nil && first > held+1
	}, 10*time.Second, 5*time.Millisecond, "the leader never compacted past index %d", held)
	// ... so the replica, restarted, catches up by InstallSnapshot.
	start(lagger)
	require.Eventually(t, func() bool {
		list, err := st[lagger].snaps.List()
		return err == nil && len(list) > 0 && list[0].Index > held
	}, 10*time.Second, 5*time.Millisecond, "no snapshot installed")
	require.Eventually(t, func() bool { return fmt.Sprint(c.fsms[lagger][5].commands()) == fmt.Sprint(want) },
		10*time.Second, 5*time.Millisecond, "lagger has %v", c.fsms[lagger][5].commands())
	first, err := st[lagger].logs.FirstIndex()
	require.NoError(t, err)
	require.True(t, first == 0 || first > held, "the lagger's log still starts at %d, below its snapshot", first)
	// The group goes on, the lagger's log continuing from the snapshot.
	l = c.leader(5, -1)
	for i := range 5 {
		cmd := fmt.Sprintf("d%d", i)
		want = append(want, cmd)
		require.NoError(t, l.Apply(context.Background(), []byte(cmd)).Error())
	}
	require.Eventually(t, func() bool { return fmt.Sprint(c.fsms[lagger][5].commands()) == fmt.Sprint(want) },
		10*time.Second, 5*time.Millisecond, "lagger has %v", c.fsms[lagger][5].commands())
	last, err := st[lagger].logs.LastIndex()
	require.NoError(t, err)
	require.Greater(t, last, held, "the lagger's log did not go on past the snapshot")
}

// TestHostOverTCP runs groups on three hosts that share one TCP
// HostTransport each: one set of connections per pair of hosts, batched
// frames of many groups' messages.
func TestHostOverTCP(t *testing.T) {
	const groups = 20
	var hosts []*raft.Host
	var addrs []raft.ServerAddress
	var trans []*tcp.HostTransport
	for range 3 {
		tr, err := tcp.NewHost("127.0.0.1:0", tcp.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		h, err := raft.NewHost(raft.HostConfig{Transport: tr, HeartbeatInterval: 20 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, h.Close()) }) // before the transport's: cleanups run last first
		hosts, addrs, trans = append(hosts, h), append(addrs, tr.LocalAddr()), append(trans, tr)
	}
	var conf raft.Configuration
	for i, a := range addrs {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("h%d", i+1)), Address: a})
	}
	fsms := make([][]*testFSM, 3)
	for g := raft.GroupID(1); g <= groups; g++ {
		for i, h := range hosts {
			logs, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
			rc := hostConf(conf.Servers[i].ID)
			require.NoError(t, raft.BootstrapCluster(rc, logs, logs, snaps, conf))
			fsm := &testFSM{}
			_, err := h.StartGroup(g, rc, fsm, logs, logs, snaps)
			require.NoError(t, err)
			fsms[i] = append(fsms[i], fsm)
		}
	}
	hist := make([]groupHistory, groups)
	var wg sync.WaitGroup
	for g := raft.GroupID(1); g <= groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rafts := func() []*raft.Raft { return []*raft.Raft{hosts[0].Group(g), hosts[1].Group(g), hosts[2].Group(g)} }
			var issued []string
			acked := map[string]bool{}
			for i := range 3 {
				cmd := fmt.Sprintf("g%d-%d", g, i)
				issued = append(issued, cmd)
				acked[cmd] = applyOnce(t, rafts, cmd)
			}
			hist[g-1] = groupHistory{issued, acked}
		}()
	}
	wg.Wait()
	for g := range groups {
		requireSameHistory(t, fmt.Sprintf("group %d", g+1), []*testFSM{fsms[0][g], fsms[1][g], fsms[2][g]}, hist[g].issued, hist[g].acked)
	}
	for _, tr := range trans {
		st := tr.Stats()
		require.Greater(t, st.Sent, st.Frames, "no batching: %+v", st)
	}
}

// TestHostGroupStopsAloneOnStorageFailure: a group whose log write fails
// stops (fail-stop, as a server on goroutines of its own does), its
// futures fail, and the host's other groups go on.
func TestHostGroupStopsAloneOnStorageFailure(t *testing.T) {
	c := newHostCluster(t, 3, nil)
	var conf raft.Configuration
	for _, id := range c.ids {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	broken := storeinmem.NewStore()
	for g := raft.GroupID(1); g <= 2; g++ {
		for i, h := range c.hosts {
			logs, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
			if g == 1 && i == 0 {
				logs = broken
			}
			rc := hostConf(c.ids[i])
			require.NoError(t, raft.BootstrapCluster(rc, logs, logs, snaps, conf))
			fsm := &testFSM{}
			_, err := h.StartGroup(g, rc, fsm, logs, logs, snaps)
			require.NoError(t, err)
			c.fsms[i][g] = fsm
		}
	}
	c.leader(1, -1)
	c.leader(2, -1)
	diskErr := errors.New("disk on fire")
	broken.FailWhen(func(op storeinmem.Op, n int) error { return diskErr })
	r := c.hosts[0].Group(1)
	require.Eventually(t, func() bool {
		c.leader(1, -1).Apply(context.Background(), []byte("x")) // a write reaches every replica
		return r.State() == raft.Shutdown
	}, 10*time.Second, 10*time.Millisecond, "the group with the failed disk did not stop")
	require.ErrorIs(t, r.Apply(context.Background(), []byte("y")).Error(), raft.ErrRaftShutdown)
	require.ErrorIs(t, c.hosts[0].StopGroup(1), diskErr)
	// Group 2 on the same host, and group 1 on the others, go on.
	require.True(t, applyOnce(t, func() []*raft.Raft {
		return []*raft.Raft{c.hosts[0].Group(2), c.hosts[1].Group(2), c.hosts[2].Group(2)}
	}, "after"))
	require.True(t, applyOnce(t, func() []*raft.Raft { return []*raft.Raft{c.hosts[1].Group(1), c.hosts[2].Group(1)} }, "after"))
	require.Eventually(t, func() bool { return count(c.fsms[0][2].commands(), "after") == 1 }, 10*time.Second, 5*time.Millisecond)
}

func TestNewHostRefusesBadConfig(t *testing.T) {
	_, err := raft.NewHost(raft.HostConfig{})
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	tr := newMemHostNet().transport("x")
	_, err = raft.NewHost(raft.HostConfig{Transport: tr, HeartbeatInterval: time.Millisecond})
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	_, err = raft.NewHost(raft.HostConfig{Transport: tr, StepWorkers: -1})
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	h, err := raft.NewHost(raft.HostConfig{Transport: tr})
	require.NoError(t, err)
	_, err = h.StartGroup(0, raft.DefaultConfig(), &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	_, err = h.StartGroup(1, nil, &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrInvalidConfig)
	// A refused start leaves no reservation behind: the ID can be started.
	ok := raft.DefaultConfig()
	ok.LocalID = "x"
	_, err = h.StartGroup(1, ok, &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.NoError(t, err)
	require.Equal(t, []raft.GroupID{1}, h.Groups())
	require.NoError(t, h.Close())
	_, err = h.StartGroup(1, raft.DefaultConfig(), &testFSM{}, storeinmem.NewStore(), storeinmem.NewStore(), storeinmem.NewSnapshotStore())
	require.ErrorIs(t, err, raft.ErrHostClosed)
}
