package rafttest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// short is the timeout of clusters whose helpers are expected to fail.
const short = 300 * time.Millisecond

// newFakeCluster starts a cluster tied to a fakeTB.
func newFakeCluster(t *testing.T, n int, opts ...rafttest.Option) (*fakeTB, *rafttest.Cluster) {
	t.Helper()
	f := newFakeTB(t)
	var c *rafttest.Cluster
	requireOK(t, f, func() { c = rafttest.New(f, n, newKV, opts...) })
	return f, c
}

// requireFatalSoon is requireFatal with c's timeout shortened to short while
// fn runs: the setup waits patiently, the expected failure comes quickly.
func requireFatalSoon(t *testing.T, f *fakeTB, c *rafttest.Cluster, fn func(), want ...string) {
	t.Helper()
	defer rafttest.SetTimeout(c, short)()
	requireFatal(t, f, fn, want...)
}

// splitAll cuts every server off from every other.
func splitAll(c *rafttest.Cluster) {
	var groups [][]*rafttest.Server
	for _, s := range c.Servers() {
		groups = append(groups, []*rafttest.Server{s})
	}
	c.Partition(groups...)
}

func TestNewFailsOnBadArguments(t *testing.T) {
	f := newFakeTB(t)
	requireFatal(t, f, func() { rafttest.New(f, 0, newKV) }, "0 servers")
	requireFatal(t, f, func() { rafttest.New(f, 3, nil) }, "nil FSM factory")
	requireFatal(t, f, func() { rafttest.New(f, 3, newKV, rafttest.WithTimeout(0)) }, "timeout")
	requireFatal(t, f, func() {
		rafttest.New(f, 3, newKV, rafttest.WithConfig(func(c *raft.Config) { c.ElectionTimeout = c.HeartbeatInterval }))
	}, "ElectionTimeout")
}

func TestWaitForFails(t *testing.T) {
	f := newFakeTB(t)
	requireFatal(t, f, func() { rafttest.WaitFor(f, 20*time.Millisecond, "pigs to fly", func() bool { return false }) },
		"timed out after 20ms waiting for pigs to fly")
	requireOK(t, f, func() { rafttest.WaitFor(f, time.Second, "true", func() bool { return true }) })
}

func TestLeaderFailsWithoutALeader(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	splitAll(c) // with PreVote, nobody can win an election
	requireFatalSoon(t, f, c, func() { c.Leader() }, "timed out after 300ms waiting for one leader that s1, s2, s3 follow", "s1: ")
	requireFatalSoon(t, f, c, func() { c.WaitLeader(c.Servers()[:2]...) }, "one leader that s1, s2 follow")
	c.Heal()
	requireOK(t, f, func() { c.Leader() })
}

func TestWaitLeaderFailsOnACrashedServer(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	s := c.Servers()[0]
	requireOK(t, f, func() { c.Crash(s) })
	requireFatal(t, f, func() { c.WaitLeader(c.Servers()...) }, "s1 is crashed")
	requireOK(t, f, func() { c.WaitLeader() }) // the live ones
}

func TestApplyFailsWithoutALeader(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	splitAll(c)
	requireFatalSoon(t, f, c, func() { c.Apply([]byte("a=1")) }, `Apply "a=1": no leader answered within 300ms`)
}

func TestApplyFollowsTheLeader(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	var index uint64
	requireOK(t, f, func() {
		var resp any
		resp, index = c.Apply([]byte("a=1"))
		if resp != 1 {
			t.Errorf("response %v, want 1", resp)
		}
		old := c.Leader()
		c.Crash(old)
		c.Apply([]byte("b=2"))
		c.Restart(old)
		c.WaitApplied(index + 1)
	})
	if index == 0 {
		t.Fatal("Apply returned index 0")
	}
}

func TestWaitAppliedFails(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	requireOK(t, f, func() { c.Apply([]byte("a=1")) })
	requireFatalSoon(t, f, c, func() { c.WaitApplied(1000) }, "s1, s2, s3 to apply index 1000", "applied")
}

func TestRequireFSMsAgreeFails(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	var l *rafttest.Server
	requireOK(t, f, func() { l = c.Leader() })
	lagging := c.Others(l)[0]
	c.Partition([]*rafttest.Server{lagging}, c.Others(lagging))
	requireOK(t, f, func() { c.Apply([]byte("a=1")) })
	requireFatalSoon(t, f, c, func() { c.RequireFSMsAgree(kvEqual) }, "the FSMs of s1, s2, s3 did not agree within 300ms",
		"not every server applied the same index")
	c.Heal()
	requireOK(t, f, func() { c.RequireFSMsAgree(kvEqual) })
	// The same index, different state.
	requireFatalSoon(t, f, c, func() { c.RequireFSMsAgree(func(a, b raft.FSM) bool { return false }) }, "the FSMs of s1 and s2 differ")
	requireFatal(t, f, func() { c.RequireFSMsAgree(nil) }, "nil equal")
	if len(c.FSMs()) != 3 {
		t.Fatalf("FSMs: %d, want 3", len(c.FSMs()))
	}
}

func TestCrashAndRestartFailOnWrongState(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	_, other := newFakeCluster(t, 1)
	s := c.Servers()[1]
	requireFatal(t, f, func() { c.Restart(s) }, "Restart: s2 is running")
	requireOK(t, f, func() { c.Crash(s) })
	if !s.Crashed() || s.Raft() != nil {
		t.Fatal("s2 is not crashed after Crash")
	}
	requireFatal(t, f, func() { c.Crash(s) }, "Crash: s2 is crashed")
	requireFatal(t, f, func() { c.Crash(other.Servers()[0]) }, "not a server of this cluster")
	requireOK(t, f, func() { c.Restart(s) })
	requireFatal(t, f, func() { c.RestartWith(s, newKV()) }, "s2 is running")
}

// Only what the durable stores synced survives a crash: here, everything
// committed, through a full-cluster crash and restart.
func TestDurableStoresSurviveAFullCrash(t *testing.T) {
	c := rafttest.New(t, 3, newKV, rafttest.WithDurableStores())
	for _, cmd := range []string{"a=1", "b=2", "c=3"} {
		c.Apply([]byte(cmd))
	}
	c.RequireFSMsAgree(kvEqual)
	for _, s := range c.Servers() {
		c.Crash(s)
	}
	for _, s := range c.Servers() {
		c.Restart(s)
	}
	_, index := c.Apply([]byte("d=4"))
	c.WaitApplied(index)
	c.RequireFSMsAgree(kvEqual)
	for _, k := range []string{"a", "b", "c", "d"} {
		if c.Servers()[0].FSM().(*kv).Get(k) == "" {
			t.Errorf("%s lost in the crash", k)
		}
	}
}

func TestPartitionFailsOnBadGroups(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	s := c.Servers()
	requireFatal(t, f, func() { c.Partition(s[:2], s[1:]) }, "s2 is in groups 0 and 1")
	requireFatal(t, f, func() { c.Partition(s[:1], []*rafttest.Server{nil}) }, "not a server of this cluster")
}

// Heal has no condition to fail on; it undoes Partition, Cut and SetLossy.
func TestHealUndoesFaults(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	splitAll(c)
	c.Cut(c.Servers()[0], c.Servers()[1])
	c.SetLossy(1)
	c.Heal()
	requireOK(t, f, func() {
		c.Apply([]byte("a=1"))
		c.RequireFSMsAgree(kvEqual)
	})
}

func TestCutFailsOnBadLinks(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	s := c.Servers()
	requireFatal(t, f, func() { c.Cut(s[0], s[0]) }, "Cut: s1 to itself")
	requireFatal(t, f, func() { c.Cut(nil, s[0]) }, "not a server of this cluster")
}

// A follower cut off from the leader one way cannot apply; after Heal it
// catches up.
func TestCutStopsOneLink(t *testing.T) {
	f, c := newFakeCluster(t, 3) // PreVote and leader stickiness keep the leader in place
	var l *rafttest.Server
	requireOK(t, f, func() { l = c.Leader() })
	cut := c.Others(l)[0]
	c.Cut(l, cut)
	var index uint64
	requireOK(t, f, func() { _, index = c.Apply([]byte("a=1")) })
	requireFatalSoon(t, f, c, func() { c.WaitApplied(index) }, "to apply index")
	if r := cut.Raft(); r.AppliedIndex() >= index {
		t.Fatalf("%s applied %d across a cut link", cut.ID, r.AppliedIndex())
	}
	c.Heal()
	requireOK(t, f, func() { c.WaitApplied(index) })
}

func TestSetLossyFailsOnBadRate(t *testing.T) {
	f, c := newFakeCluster(t, 3)
	requireFatal(t, f, func() { c.SetLossy(1.5) }, "SetLossy(1.5)")
	requireFatal(t, f, func() { c.SetLossy(-1) }, "SetLossy(-1)")
	requireOK(t, f, func() { c.SetLossy(0.3) })
}

func TestSeedIsLoggedOnFailure(t *testing.T) {
	f, _ := newFakeCluster(t, 1, rafttest.WithSeed(4242))
	f.Errorf("the test failed")
	f.finish()
	_, _, logs := f.snapshot()
	if !strings.Contains(strings.Join(logs, "\n"), "rafttest.WithSeed(4242)") {
		t.Fatalf("seed not logged: %q", logs)
	}

	f, c := newFakeCluster(t, 1)
	f.finish()
	if _, _, logs := f.snapshot(); len(logs) != 0 {
		t.Fatalf("a passing test logged %q", logs)
	}
	if c.Seed() == 0 {
		t.Fatal("no default seed")
	}
	_, c2 := newFakeCluster(t, 1)
	if c2.Seed() != c.Seed() {
		t.Fatalf("default seeds %d and %d differ within one test", c.Seed(), c2.Seed())
	}
}

// leakyFSM starts a goroutine on every Apply that outlives the cluster.
type leakyFSM struct {
	raft.FSM
	stop chan struct{}
}

func (l *leakyFSM) Apply(e *raft.Log) any {
	go func() { <-l.stop }()
	return l.FSM.Apply(e)
}

func TestLeakCheckFails(t *testing.T) {
	defer rafttest.SetLeakSettle(100 * time.Millisecond)()
	stop := make(chan struct{})
	defer close(stop)
	f := newFakeTB(t)
	var c *rafttest.Cluster
	requireOK(t, f, func() {
		c = rafttest.New(f, 1, func() raft.FSM { return &leakyFSM{FSM: newKV(), stop: stop} })
		c.Apply([]byte("a=1"))
	})
	f.finish()
	_, errs, _ := f.snapshot()
	if len(errs) != 1 || !strings.Contains(errs[0], "goroutine(s) still running after the cluster shut down") ||
		!strings.Contains(errs[0], "leakyFSM") {
		t.Fatalf("errors %q, want one naming the leaked goroutine", errs)
	}
}

// The cluster fails a test that leaves a server stopped by a storage error
// without crashing it; Crash accepts such a server and logs the error.
func TestShutdownReportsAStoppedServer(t *testing.T) {
	for _, crash := range []bool{false, true} {
		f, c := newFakeCluster(t, 1)
		var l *rafttest.Server
		requireOK(t, f, func() { l = c.Leader() })
		l.LogStore().(*storeinmem.Store).FailWhen(func(storeinmem.Op, int) error { return errors.New("disk on fire") })
		l.Raft().Apply(context.Background(), []byte("a=1")) // fails the store
		requireOK(t, f, func() {
			rafttest.WaitFor(f, 10*time.Second, "the server to stop", func() bool { return l.Raft().State() == raft.Shutdown })
		})
		if crash {
			requireOK(t, f, func() { c.Crash(l) })
		}
		f.finish()
		_, errs, logs := f.snapshot()
		if crash {
			if len(errs) != 0 || !strings.Contains(strings.Join(logs, "\n"), "s1 had stopped: ") {
				t.Fatalf("Crash: errors %q, logs %q", errs, logs)
			}
		} else if len(errs) != 1 || !strings.Contains(errs[0], "s1 had stopped with an error") || !strings.Contains(errs[0], "disk on fire") {
			t.Fatalf("errors %q, want one naming the stopped server", errs)
		}
	}
}
