package raft_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// Client sessions on whole clusters: the scenarios of DESIGN.md (2, 3, 4)
// with a client that times out and retries the same (session, seq) on the
// next leader, retries after the table came back from a snapshot
// (InstallSnapshot, restart, Restore), expiry, and the API's checks.

// sessionFSM records the commands it applies and answers each with
// "<cmd>#<n>", n counting its commands: the same on every server. Commands
// named "bytes:…", "err:…" and "nil:…" answer a []byte, an error and nil.
// A test can hold a command on one server's FSM.
type sessionFSM struct {
	testFSM // applied, under its mu; Snapshot, Restore and commands
	types   []raft.LogType
	indexes []uint64
	holds   map[string]*fsmHold
}

type fsmHold struct {
	entered, release chan struct{}
}

func newSessionFSM() raft.FSM { return &sessionFSM{} }

func (f *sessionFSM) Apply(l *raft.Log) any {
	cmd := string(l.Data)
	f.mu.Lock()
	h := f.holds[cmd]
	delete(f.holds, cmd)
	f.mu.Unlock()
	if h != nil {
		close(h.entered)
		<-h.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, cmd)
	f.types = append(f.types, l.Type)
	f.indexes = append(f.indexes, l.Index)
	resp := fmt.Sprintf("%s#%d", cmd, len(f.applied))
	switch {
	case strings.HasPrefix(cmd, "bytes:"):
		return []byte(resp)
	case strings.HasPrefix(cmd, "err:"):
		return errors.New(resp)
	case strings.HasPrefix(cmd, "nil:"):
		return nil
	}
	return resp
}

// hold makes the FSM block when it applies cmd, until release is called.
func (f *sessionFSM) hold(cmd string) (entered <-chan struct{}, release func()) {
	h := &fsmHold{entered: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	if f.holds == nil {
		f.holds = map[string]*fsmHold{}
	}
	f.holds[cmd] = h
	f.mu.Unlock()
	var once sync.Once
	return h.entered, func() { once.Do(func() { close(h.release) }) }
}

type sessCluster struct {
	*rafttest.Cluster
	t *testing.T
}

func newSessCluster(t *testing.T, n int, seed uint64, opts ...rafttest.Option) *sessCluster {
	t.Helper()
	return &sessCluster{rafttest.New(t, n, newSessionFSM, append([]rafttest.Option{rafttest.WithSeed(seed)}, opts...)...), t}
}

func sfsm(s *rafttest.Server) *sessionFSM { return s.FSM().(*sessionFSM) }

// waitConverged waits until every live server applied the same commands.
func (c *sessCluster) waitConverged() []string {
	c.t.Helper()
	c.RequireFSMsAgree(func(a, b raft.FSM) bool {
		return fmt.Sprint(a.(*sessionFSM).commands()) == fmt.Sprint(b.(*sessionFSM).commands())
	})
	return sfsm(c.Live()[0]).commands()
}

// register registers a session on the leader.
func (c *sessCluster) register(ttl time.Duration) uint64 {
	c.t.Helper()
	var id uint64
	c.retry("RegisterSession", func(ctx context.Context, r *raft.Raft) error {
		var err error
		id, err = r.RegisterSession(ctx, ttl)
		return err
	})
	return id
}

// apply sends (session, seq, cmd) to whoever leads, as a client would:
// an unknown outcome (timeout, leadership lost, no leader) is retried
// with the same seq; the answer or a session error is returned.
func (c *sessCluster) apply(session, seq uint64, cmd string) (any, error) {
	c.t.Helper()
	var resp any
	err := c.retry("ApplySession", func(ctx context.Context, r *raft.Raft) error {
		f := r.ApplySession(ctx, session, seq, []byte(cmd))
		err := f.Error()
		resp = f.Response()
		return err
	})
	return resp, err
}

// retry calls op on the current leader until it returns nil or a session
// error; any other error fails the test.
func (c *sessCluster) retry(what string, op func(ctx context.Context, r *raft.Raft) error) error {
	c.t.Helper()
	err := c.OnLeader(what, op)
	if err != nil && !errors.Is(err, raft.ErrSessionExpired) && !errors.Is(err, raft.ErrSessionStale) {
		c.t.Fatalf("%s: %v", what, err)
	}
	return err
}

// applyOn sends one attempt to one server, with a short timeout.
func applyOn(s *rafttest.Server, session, seq uint64, cmd string, timeout time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	f := s.Raft().ApplySession(ctx, session, seq, []byte(cmd))
	err := f.Error()
	return f.Response(), err
}

// requireOnce checks that every live server applied cmd exactly once.
func (c *sessCluster) requireOnce(cmd string) {
	c.t.Helper()
	cmds := c.waitConverged()
	require.Equal(c.t, 1, count(cmds, cmd), "%q applied once: %v", cmd, cmds)
}

// Scenario 2: the write reached only the leader, which is cut off. The
// client times out and retries the same (session, seq) on the new leader:
// applied there, the old leader's copy discarded, and a second retry gets
// the cached answer.
func TestSessionScenario2RetryOnNewLeader(t *testing.T) {
	c := newSessCluster(t, 3, 31)
	s := c.register(time.Minute)
	resp, err := c.apply(s, 1, "a")
	require.NoError(t, err)
	require.Equal(t, "a#1", resp)

	old := c.Leader()
	c.Network().Isolate(old.Addr)
	_, err = applyOn(old, s, 2, "b", 300*time.Millisecond)
	require.Error(t, err, "a write that reached only the leader does not commit")
	c.WaitLeader(c.Others(old)...)
	resp, err = c.apply(s, 2, "b")
	require.NoError(t, err)
	require.Equal(t, "b#2", resp)

	c.Network().Rejoin(old.Addr)
	require.Equal(t, []string{"a", "b"}, c.waitConverged())
	resp, err = c.apply(s, 2, "b")
	require.NoError(t, err)
	require.Equal(t, "b#2", resp, "a second retry: the cached answer")
	_, err = c.apply(s, 1, "a")
	require.ErrorIs(t, err, raft.ErrSessionStale)
	c.requireOnce("b")
}

// Scenario 3: the leader replicated the write to one follower of four and
// died. The next leader may finish it or discard it; the retry of the same
// (session, seq) makes it applied exactly once either way, and answers what
// the FSM answered.
func TestSessionScenario3ReplicatedToMinority(t *testing.T) {
	for seed := uint64(32); seed < 35; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSessCluster(t, 5, seed)
			s := c.register(time.Minute)
			_, err := c.apply(s, 1, "a")
			require.NoError(t, err)
			old := c.Leader()
			others := c.Others(old)
			for _, nd := range others[1:] {
				c.Cut(old, nd)
			}
			_, err = applyOn(old, s, 2, "b", 200*time.Millisecond)
			require.Error(t, err)
			c.Crash(old)
			c.Heal()
			resp, err := c.apply(s, 2, "b")
			require.NoError(t, err)
			require.Equal(t, "b#2", resp)
			c.requireOnce("b")
			c.Restart(old)
			c.requireOnce("b")
		})
	}
}

// Scenario 4: the write committed and the leader began applying it, but
// the client timed out, and the leader died. The new leader holds the
// entry (election restriction) and commits it; the client's retry is
// de-duplicated: the FSM does not apply it again, and the retry answers
// what the first apply answered.
func TestSessionScenario4CommittedClientTimedOut(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) { testSessionScenario4(t, durable) })
	}
}

func testSessionScenario4(t *testing.T, durable bool) {
	var opts []rafttest.Option
	if durable {
		opts = append(opts, rafttest.WithDurableStores())
	}
	{
		c := newSessCluster(t, 3, 35, opts...)
		s := c.register(time.Minute)
		_, err := c.apply(s, 1, "a")
		require.NoError(t, err)

		old := c.Leader()
		entered, release := sfsm(old).hold("b")
		defer release()
		f := old.Raft().ApplySession(context.Background(), s, 2, []byte("b"))
		<-entered // committed: the leader applies it
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		select {
		case <-ctx.Done(): // the client gives up
		case <-done(f):
			t.Fatal("the held command answered")
		}
		c.Network().Isolate(old.Addr)
		release()
		c.Crash(old)

		resp, err := c.apply(s, 2, "b")
		require.NoError(t, err)
		require.Equal(t, "b#2", resp, "the retry gets the first apply's answer")
		c.requireOnce("b")
		c.Network().Rejoin(old.Addr)
		c.Restart(old)
		c.requireOnce("b")
		resp, err = c.apply(s, 3, "c")
		require.NoError(t, err)
		require.Equal(t, "c#3", resp)
	}
}

func done(f raft.Future) <-chan struct{} {
	ch := make(chan struct{})
	go func() { f.Error(); close(ch) }()
	return ch
}

// A lagging server catches up through InstallSnapshot, which carries the
// session table, and then leads: a retry of a command the snapshot covers
// gets its cached answer there, an older one is stale, a newer one applies.
func TestSessionRetryAfterInstallSnapshot(t *testing.T) {
	c := newSessCluster(t, 3, 36, rafttest.WithConfig(snapConfig))
	l := c.Leader()
	lag := c.Others(l)[0]
	c.Crash(lag)
	s := c.register(time.Minute)
	_, err := c.apply(s, 1, "a")
	require.NoError(t, err)
	want, err := c.apply(s, 2, "b")
	require.NoError(t, err)
	for i := range 300 {
		c.Apply([]byte(fmt.Sprintf("plain%d", i)))
	}
	rafttest.WaitFor(t, c.Timeout(), "the leader compacts its log past the session's entries", func() bool {
		first, err := l.LogStore().FirstIndex()
		return err == nil && first > 200
	})
	c.Restart(lag)
	c.WaitApplied(l.Raft().LastIndex())
	metas, err := lag.SnapshotStore().List()
	require.NoError(t, err)
	require.NotEmpty(t, metas, "%s caught up through a snapshot", lag)
	require.NoError(t, l.Raft().LeadershipTransferToServer(context.Background(), lag.ID, lag.Addr).Error())
	require.Equal(t, lag, c.Leader())

	resp, err := applyOn(lag, s, 2, "b", time.Second)
	require.NoError(t, err)
	require.Equal(t, want, resp, "the retry after the install gets the cached answer")
	_, err = applyOn(lag, s, 1, "a", time.Second)
	require.ErrorIs(t, err, raft.ErrSessionStale)
	resp, err = applyOn(lag, s, 3, "c", time.Second)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resp.(string), "c#"), "c applied: %v", resp)
	c.requireOnce("b")
}

// Every response kind survives a full-cluster restart from snapshots (the
// log compacted, so the table must come from the snapshot): the retry
// after the restart answers what the retry before it answered.
func TestSessionRetryAfterRestartFromSnapshot(t *testing.T) {
	c := newSessCluster(t, 3, 37, rafttest.WithDurableStores(), rafttest.WithConfig(func(cf *raft.Config) {
		cf.SnapshotThreshold = 1 << 40
		cf.TrailingLogs = 0
	}))
	cmds := []string{"str", "bytes:x", "err:x", "nil:x"}
	ids := make([]uint64, len(cmds))
	before := make([]any, len(cmds))
	for i, cmd := range cmds {
		ids[i] = c.register(time.Hour)
		_, err := c.apply(ids[i], 7, cmd)
		require.NoError(t, err)
		resp, err := c.apply(ids[i], 7, cmd) // a retry before the restart
		require.NoError(t, err)
		before[i] = resp
	}
	require.Equal(t, []any{"str#1", []byte("bytes:x#2"), errors.New("err:x#3"), nil}, before)
	c.WaitApplied(c.Leader().Raft().LastIndex())
	for _, s := range c.Servers() {
		require.NoError(t, s.Raft().Snapshot(context.Background()).Error(), s.ID)
		rafttest.WaitFor(t, c.Timeout(), fmt.Sprintf("%s compacts its log past every register", s), func() bool {
			first, err := s.LogStore().FirstIndex()
			return err == nil && (first == 0 || first > ids[len(ids)-1])
		})
	}
	for _, s := range c.Servers() {
		c.Crash(s)
	}
	for _, s := range c.Servers() {
		c.Restart(s)
	}
	for i, cmd := range cmds {
		resp, err := c.apply(ids[i], 7, cmd)
		require.NoError(t, err)
		require.Equal(t, before[i], resp, "%s: the retry after the restart", cmd)
		require.Equal(t, fmt.Sprintf("%T", before[i]), fmt.Sprintf("%T", resp))
	}
	require.Equal(t, cmds, c.waitConverged())
}

// Restore brings back the snapshot's sessions with its FSM state: a retry
// of a command the snapshot covers is answered from the cache, a command
// after it applies again (the restored FSM never saw it), and a session
// registered after the snapshot is gone.
func TestSessionRestoreUserSnapshot(t *testing.T) {
	c := newSessCluster(t, 3, 38)
	s := c.register(time.Hour)
	_, err := c.apply(s, 1, "a")
	require.NoError(t, err)
	l := c.Leader()
	f := l.Raft().Snapshot(context.Background())
	require.NoError(t, f.Error())
	_, rc, err := f.Open()
	require.NoError(t, err)
	backup, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)

	_, err = c.apply(s, 2, "b")
	require.NoError(t, err)
	later := c.register(time.Hour)
	require.NoError(t, l.Raft().Restore(context.Background(), nil, bytes.NewReader(backup)))
	require.Equal(t, []string{"a"}, c.waitConverged())

	resp, err := c.apply(s, 1, "a")
	require.NoError(t, err)
	require.Equal(t, "a#1", resp)
	resp, err = c.apply(s, 2, "b")
	require.NoError(t, err)
	require.Equal(t, "b#2", resp)
	_, err = c.apply(later, 1, "x")
	require.ErrorIs(t, err, raft.ErrSessionExpired)
	require.Equal(t, []string{"a", "b"}, c.waitConverged())
}

// A session expires once its TTL of log time passes without a command;
// log time moves with every session entry (here another session's
// register), on every server alike. Closing ends a session at once.
func TestSessionExpiryAndClose(t *testing.T) {
	// Every leader stamps session entries with this clock, which the test
	// moves by hand.
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := newSessCluster(t, 3, 39, rafttest.WithConfig(func(cfg *raft.Config) {
		raft.SetSessionClock(cfg, func() time.Time { return time.Unix(0, clock.Load()) })
	}))
	short := c.register(time.Minute)
	_, err := c.apply(short, 1, "a")
	require.NoError(t, err)
	clock.Add(int64(time.Minute))
	c.register(time.Hour) // log time exactly short's TTL after its last command: still live
	_, err = c.apply(short, 1, "a")
	require.NoError(t, err, "a retry within the TTL gets the cached answer and counts as activity")
	clock.Add(int64(time.Minute + time.Nanosecond))
	c.register(time.Hour) // moves log time past short's TTL
	_, err = c.apply(short, 2, "b")
	require.ErrorIs(t, err, raft.ErrSessionExpired)
	_, err = c.apply(short, 1, "a")
	require.ErrorIs(t, err, raft.ErrSessionExpired, "even a retry")

	s := c.register(time.Hour)
	_, err = c.apply(s, 1, "c")
	require.NoError(t, err)
	require.NoError(t, c.Leader().Raft().CloseSession(context.Background(), s))
	_, err = c.apply(s, 1, "c")
	require.ErrorIs(t, err, raft.ErrSessionExpired)
	require.ErrorIs(t, c.Leader().Raft().CloseSession(context.Background(), s), raft.ErrSessionExpired)
	require.Equal(t, []string{"a", "c"}, c.waitConverged())
}

// The FSM sees a session command as a LogCommand whose Data is the
// command, at the index of the session entry, and never sees registers or
// closes. Arguments are checked; followers name the leader.
func TestSessionAPI(t *testing.T) {
	c := newSessCluster(t, 3, 40)
	l := c.Leader()
	s, err := l.Raft().RegisterSession(context.Background(), time.Minute)
	require.NoError(t, err)
	f := l.Raft().ApplySession(context.Background(), s, 1, []byte("a"))
	require.NoError(t, f.Error())
	require.Greater(t, f.Index(), s)
	require.NoError(t, l.Raft().CloseSession(context.Background(), s))
	c.waitConverged()
	for _, nd := range c.Servers() {
		fsm := sfsm(nd)
		fsm.mu.Lock()
		require.Equal(t, []raft.LogType{raft.LogCommand}, fsm.types, nd.ID)
		require.Equal(t, []uint64{f.Index()}, fsm.indexes, nd.ID)
		fsm.mu.Unlock()
	}

	_, err = l.Raft().RegisterSession(context.Background(), 0)
	require.ErrorContains(t, err, "TTL")
	require.ErrorContains(t, l.Raft().ApplySession(context.Background(), 0, 1, nil).Error(), "session 0")
	require.ErrorContains(t, l.Raft().ApplySession(context.Background(), s, 0, nil).Error(), "sequence number 0")
	require.ErrorContains(t, l.Raft().CloseSession(context.Background(), 0), "session 0")
	// On a follower the calls are forwarded to the leader.
	follower := c.Others(l)[0]
	s2, err := follower.Raft().RegisterSession(context.Background(), time.Minute)
	require.NoError(t, err)
	require.NoError(t, follower.Raft().ApplySession(context.Background(), s2, 1, []byte("f")).Error())
	require.NoError(t, follower.Raft().CloseSession(context.Background(), s2))
	require.ErrorIs(t, follower.Raft().ApplySession(context.Background(), s2, 2, nil).Error(), raft.ErrSessionExpired)
}

// Restore of a snapshot from a longer log (another cluster's, say) keeps
// the sessions whose IDs the restoring cluster can no longer give out, and
// drops the others: session IDs are register indexes, and this cluster
// will register new sessions at those indexes.
func TestSessionRestoreFromLongerLog(t *testing.T) {
	a := newSessCluster(t, 1, 41)
	early := a.register(time.Hour)
	resp, err := a.apply(early, 1, "a")
	require.NoError(t, err)
	for i := range 30 {
		a.Apply([]byte(fmt.Sprintf("plain%d", i)))
	}
	late := a.register(time.Hour)
	_, err = a.apply(late, 1, "b")
	require.NoError(t, err)
	f := a.Leader().Raft().Snapshot(context.Background())
	require.NoError(t, f.Error())
	_, rc, err := f.Open()
	require.NoError(t, err)
	backup, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)

	b := newSessCluster(t, 1, 42)
	var meta raft.SnapshotMeta
	require.NoError(t, b.Leader().Raft().Restore(context.Background(), &meta, bytes.NewReader(backup)))
	require.Greater(t, meta.Index, early)
	require.Less(t, meta.Index, late)
	again, err := b.apply(early, 1, "a")
	require.NoError(t, err)
	require.Equal(t, resp, again, "a session the restoring cluster cannot give out again is kept")
	_, err = b.apply(late, 2, "c")
	require.ErrorIs(t, err, raft.ErrSessionExpired, "a session ID at or above the restore index is dropped")
}
