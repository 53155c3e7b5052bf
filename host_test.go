package raft_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
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
	var wg sync.WaitGroup
	for g := raft.GroupID(1); g <= groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cmds {
				for {
					l := c.leader(g, -1)
					if l.Apply(context.Background(), fmt.Appendf(nil, "g%d-%d", g, i)).Error() == nil {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	// Every replica of every group applies its own group's commands, in
	// order, and no other group's: a message routed to the wrong group
	// would show here.
	for g := raft.GroupID(1); g <= groups; g++ {
		var want []string
		for i := range cmds {
			want = append(want, fmt.Sprintf("g%d-%d", g, i))
		}
		for h := range c.hosts {
			require.Eventually(t, func() bool { return fmt.Sprint(c.fsms[h][g].commands()) == fmt.Sprint(want) },
				5*time.Second, 5*time.Millisecond, "host %d group %d: %v", h, g, c.fsms[h][g].commands())
		}
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

func nonEmpty(ids []raft.GroupID) []raft.GroupID {
	if len(ids) == 0 {
		return nil
	}
	return ids
}
