package raft_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/stretchr/testify/require"
)

// Full-stack disk-stall tests: real goroutines in a synctest bubble, so
// that time is virtual (the bounds below are exact, whatever the machine's
// load) and a write blocked on a channel counts as durably blocked.

const (
	stallET      = 100 * time.Millisecond // rafttest's election timeout
	stallTimeout = 300 * time.Millisecond
)

// logRecorder keeps the records of every server's logger.
type logRecorder struct {
	mu      sync.Mutex
	records []logLine
}

type logLine struct {
	server raft.ServerID
	level  slog.Level
	msg    string
}

func (r *logRecorder) has(id raft.ServerID, level slog.Level, prefix string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.records {
		if l.server == id && l.level == level && strings.HasPrefix(l.msg, prefix) {
			return true
		}
	}
	return false
}

type recordHandler struct {
	rec *logRecorder
	id  raft.ServerID
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	h.rec.records = append(h.rec.records, logLine{server: h.id, level: r.Level, msg: r.Message})
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// newStallCluster starts 3 servers with a 300ms stall timeout whose logs
// go to rec.
func newStallCluster(t *testing.T, rec *logRecorder) *cluster {
	return newCluster(t, 3, 15, func(c *raft.Config) {
		c.DiskStallTimeout = stallTimeout
		c.Logger = slog.New(recordHandler{rec: rec, id: c.LocalID})
	})
}

// sawDiskStalled reports whether an observation in ch, drained, reported
// DiskStalled == want.
func sawDiskStalled(ch <-chan raft.Observation, want bool) bool {
	saw := false
	for {
		select {
		case o := <-ch:
			if o.DiskStalled == want {
				saw = true
			}
		default:
			return saw
		}
	}
}

// throughout fails the test if cond does not hold at every check over d
// of (virtual) time.
func throughout(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
		require.True(t, cond(), what)
	}
}

func stats(s *rafttest.Server) map[string]string { return s.Raft().Stats() }

// releaseAndRecover ends s's disk stall and checks that a leader is
// elected and that s reports the stall over: Stats, its observer obs and
// an Info log.
func releaseAndRecover(t *testing.T, c *cluster, s *rafttest.Server, release func(), obs <-chan raft.Observation, rec *logRecorder) {
	t.Helper()
	release()
	c.WaitLeader(c.Live()...)
	rafttest.WaitFor(t, 2*stallET, "the stall reported over", func() bool { return stats(s)["disk_stalled"] == "false" })
	require.True(t, sawDiskStalled(obs, false), "observers hear the stall is over")
	require.True(t, rec.has(s.ID, slog.LevelInfo, "disk stall over"))
	require.Empty(t, stats(s)["disk_stalled_since"])
}

// A leader whose disk hangs steps aside: within the stall timeout and a
// few election timeouts the others elect a leader, which takes writes;
// the stalled server reports the stall (Stats, observer, a Warn log) and
// does not campaign — with its new leader crashed too, no leader is
// possible and it stays a follower — until its disk works again; then it
// reports the recovery, a leader is elected and every server catches up.
func TestDiskStallLeaderStepsAside(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &logRecorder{}
		c := newStallCluster(t, rec)
		c.apply("a")
		old := c.Leader()
		obs := make(chan raft.Observation, 4096)
		defer old.Raft().RegisterObserver(obs)()
		release := old.LogStore().(*storeinmem.Store).Stall()
		defer release() // before the cluster shuts down

		start := time.Now()
		stuck := old.Raft().Apply(context.Background(), []byte("stuck")) // its write hangs
		nl := c.WaitLeader(c.Others(old)...)
		took := time.Since(start)
		t.Logf("new leader %s after %v", nl.ID, took)
		require.Less(t, took, stallTimeout+5*stallET, "a new leader within the stall timeout and a few election timeouts")
		require.ErrorIs(t, stuck.Error(), raft.ErrLeadershipLost, "the stalled leader gave its proposal up")
		require.NotEqual(t, raft.Leader, old.Raft().State())

		st := stats(old)
		require.Equal(t, "true", st["disk_stalled"])
		since, err := time.Parse(time.RFC3339Nano, st["disk_stalled_since"])
		require.NoError(t, err)
		require.False(t, since.Before(start), "the stalled write began after the stall started")
		stalledFor, err := time.ParseDuration(st["disk_stalled_for"])
		require.NoError(t, err)
		require.GreaterOrEqual(t, stalledFor, stallTimeout)
		require.True(t, sawDiskStalled(obs, true), "observers hear of the stall")
		require.True(t, rec.has(old.ID, slog.LevelWarn, "disk stalled"))
		require.Equal(t, "false", stats(nl)["disk_stalled"])

		c.apply("b") // through the new leader
		require.Contains(t, commands(nl), "b")

		// With the new leader gone, only the stalled server could help
		// elect one; it does not campaign, and its vote cannot leave
		// before it is durable.
		c.Crash(nl)
		throughout(t, 10*stallET, "the stalled server stays a follower", func() bool {
			return old.Raft().State() == raft.Follower
		})

		releaseAndRecover(t, c, old, release, obs, rec)

		c.Restart(nl)
		c.apply("c")
		cmds := c.waitConverged()
		for _, cmd := range []string{"a", "b", "c"} {
			require.Equal(t, 1, count(cmds, cmd), "%q applied once everywhere: %v", cmd, cmds)
		}
	})
}

// A follower whose disk hangs: the cluster keeps committing without it,
// it reports the stall and never becomes leader — with the leader crashed,
// no leader can be elected without its vote, and it does not campaign —
// and once its disk works it catches up.
func TestDiskStallFollowerNeverLeads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &logRecorder{}
		c := newStallCluster(t, rec)
		c.apply("a")
		l := c.Leader()
		f := c.Others(l)[0]
		obs := make(chan raft.Observation, 4096)
		defer f.Raft().RegisterObserver(obs)()
		release := f.LogStore().(*storeinmem.Store).Stall()
		defer release()

		start := time.Now()
		for i := 0; i < 20; i++ {
			c.apply("w" + string(rune('a'+i)))
		}
		require.Equal(t, l.Raft(), c.CurrentLeader(), "the leader keeps leading")
		rafttest.WaitFor(t, stallTimeout+2*stallET, "the follower's stall reported", func() bool {
			return stats(f)["disk_stalled"] == "true"
		})
		require.GreaterOrEqual(t, time.Since(start), stallTimeout)
		require.True(t, sawDiskStalled(obs, true))
		require.True(t, rec.has(f.ID, slog.LevelWarn, "disk stalled"))
		for i := 20; i < 30; i++ {
			c.apply("w" + string(rune('a'+i)))
		}

		c.Crash(l)
		throughout(t, 10*stallET, "the stalled follower stays a follower", func() bool {
			return f.Raft().State() == raft.Follower
		})

		releaseAndRecover(t, c, f, release, obs, rec)
		c.Restart(l)
		c.apply("z")
		cmds := c.waitConverged()
		require.Len(t, cmds, 32, "every command applied once everywhere: %v", cmds)
	})
}

// stuckSnaps wraps every server's SnapshotStore; the sinks it creates for
// the armed server block in Write until release is closed.
type stuckSnaps struct {
	mu      sync.Mutex
	armed   raft.ServerID
	once    sync.Once
	entered chan struct{} // closed when a Write blocks
	release chan struct{}
}

func (s *stuckSnaps) arm(id raft.ServerID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = id
}

type stuckSnapStore struct {
	raft.SnapshotStore
	id    raft.ServerID
	stuck *stuckSnaps
}

func (s *stuckSnapStore) Create(index, term uint64, conf raft.Configuration, confIndex uint64) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(index, term, conf, confIndex)
	s.stuck.mu.Lock()
	armed := s.stuck.armed == s.id
	s.stuck.mu.Unlock()
	if err != nil || !armed {
		return sink, err
	}
	return &stuckSink{SnapshotSink: sink, stuck: s.stuck}, nil
}

type stuckSink struct {
	raft.SnapshotSink
	stuck *stuckSnaps
}

func (k *stuckSink) Write(p []byte) (int, error) {
	k.stuck.once.Do(func() { close(k.stuck.entered) })
	<-k.stuck.release
	return k.SnapshotSink.Write(p)
}

// A snapshot whose SnapshotStore write hangs does not hold the leader up:
// no SnapshotStore or FSMSnapshot call runs on the event loop, so the
// leader keeps heartbeating (no follower times out, the term stays) and
// committing. A goroutine blocked inside a user's store cannot be stopped:
// Shutdown waits for it (as documented), and returns once it is released.
func TestStuckSnapshotDoesNotBlockTheLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := &stuckSnaps{entered: make(chan struct{}), release: make(chan struct{})}
		c := &cluster{rafttest.New(t, 3, newTestFSM, rafttest.WithSeed(16),
			rafttest.WithSnapshotStoreWrapper(func(id raft.ServerID, s raft.SnapshotStore) raft.SnapshotStore {
				return &stuckSnapStore{SnapshotStore: s, id: id, stuck: stuck}
			})), t}
		c.apply("a")
		l := c.Leader()
		stuck.arm(l.ID)
		snap := l.Raft().Snapshot(context.Background())
		snapDone := make(chan error, 1)
		go func() { snapDone <- snap.Error() }()
		<-stuck.entered
		term := stats(l)["term"]

		for i := 0; i < 50; i++ {
			c.apply("x" + strconv.Itoa(i))
		}
		throughout(t, 10*stallET, "the leader keeps leading its term, followed by every server", func() bool {
			for _, s := range c.Servers() {
				if _, id := s.Raft().Leader(); id != l.ID || stats(s)["term"] != term {
					return false
				}
			}
			return l.Raft().State() == raft.Leader
		})
		require.Len(t, commands(l), 51)
		select {
		case err := <-snapDone:
			t.Fatalf("the snapshot finished (%v) while its store was stuck", err)
		default:
		}

		done := make(chan error, 1)
		go func() { done <- l.Raft().Shutdown() }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned (%v) while Persist was stuck in the store", err)
		default:
		}
		close(stuck.release)
		require.NoError(t, <-done)
		require.ErrorIs(t, <-snapDone, raft.ErrRaftShutdown)
	})
}
