package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RaftState is a server's role, as the public API reports it.
type RaftState uint32

const (
	// Follower replicates the leader's log; every server starts as one.
	Follower RaftState = iota
	// Candidate is campaigning for leadership (including the PreVote stage).
	Candidate
	// Leader accepts commands and replicates them.
	Leader
	// Shutdown means the server has stopped.
	Shutdown
)

// String returns the state's name.
func (s RaftState) String() string {
	switch s {
	case Follower:
		return "Follower"
	case Candidate:
		return "Candidate"
	case Leader:
		return "Leader"
	case Shutdown:
		return "Shutdown"
	default:
		return "RaftState(" + strconv.Itoa(int(s)) + ")"
	}
}

// Raft is one server of a cluster. Its methods are safe for concurrent use.
//
// All protocol state is owned by one goroutine, the event loop; public
// methods hand it requests. Log writes and FSM applies run on a goroutine
// each (the persister and the applier), so neither a slow disk nor a slow
// FSM delays heartbeats.
type Raft struct {
	conf   Config
	logger *slog.Logger
	trans  Transport
	stable StableStore
	tick   time.Duration

	// Owned by the event loop.
	core         *core
	inflight     []*future                  // proposals not yet handed to the applier, by index
	reads        map[uint64]*future         // VerifyLeader and ReadIndex requests the core holds, by request ID
	forwards     map[uint64][]*future       // proposals forwarded to the leader, by request ID
	lastReq      uint64                     // the last request ID given out (reads and forwards)
	refusedNewer uint64                     // messages refused for entries newer than this build (loop.go)
	addrs        map[ServerID]ServerAddress // learned from messages, beside the configuration
	member       memberWaits                // membership_api.go: changes and transfers under way
	lastPub      published
	stall        diskWatch // stall_driver.go: whether the persister's writes stalled

	metrics *raftMetrics // metrics.go; nil when Config.Metrics is

	// hosted is set when the server is a group on a Host (host.go), whose
	// pools run its loop, persister, applier and snapshot receiver.
	hosted *hostedGroup
	// limits is the group's part in its Host's limits (host_limits.go).
	limits *groupLimits

	persister *persister
	applier   *applier
	snapDriver

	applyCh       chan *future
	opCh          chan func()
	persistNotify chan struct{}
	applyNotify   chan struct{}

	persistMu   sync.Mutex
	persistedAt [2]uint64    // (index, term) last made durable
	loadResults []loadResult // reads of evicted entries done, not yet taken
	loadNotify  chan struct{}

	pubMu sync.RWMutex
	pub   published
	// lastContact is when a message from the current leader last arrived
	// (Unix nanoseconds; 0 before the first).
	lastContact atomic.Int64

	obsMu     sync.Mutex
	observers map[*observer]struct{}
	leaderCh  chan bool

	shutdownOnce sync.Once
	shutdownCh   chan struct{}
	shutdownErr  error // set before shutdownCh closes
	wg           sync.WaitGroup
}

// published is the state public getters read without asking the loop.
type published struct {
	state      RaftState
	term       uint64
	leaderID   ServerID
	leaderAddr ServerAddress
	lastIndex  uint64
	commit     uint64
	// diskStalled: the write under way since stalledSince has stalled.
	diskStalled  bool
	stalledSince time.Time
	// logBytes and pendingBytes are the log's entries in memory and the
	// part of them not yet applied (MaxLogCacheBytes, MaxPendingBytes).
	logBytes, pendingBytes uint64
	snapshotIndex          uint64
	otherVoters            int // voters of the latest configuration other than this server
}

// NewRaft starts a server on the given stores and transport. The stores
// must hold state written by BootstrapCluster or an earlier run; a server
// with empty stores waits as a follower until a leader adds it. The FSM is
// restored from the newest snapshot, and committed log entries after it are
// applied as the server learns they are committed.
//
// The caller keeps ownership of the stores and the transport: Shutdown does
// not close them.
func NewRaft(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport) (*Raft, error) {
	r, err := newRaft(conf, fsm, logs, stable, snaps, trans)
	if err != nil {
		return nil, err
	}
	r.wg.Add(5)
	go func() { defer r.wg.Done(); r.runSnapshotTicker() }()
	go func() { defer r.wg.Done(); r.receiver.run() }()
	go func() { defer r.wg.Done(); r.persister.run() }()
	go func() { defer r.wg.Done(); r.applier.run() }()
	go func() { defer r.wg.Done(); r.run() }()
	return r, nil
}

// newRaft builds a server from its stores, ready to start: on goroutines
// of its own (NewRaft) or on a Host's pools (Host.StartGroup).
func newRaft(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport) (*Raft, error) {
	if err := ValidateConfig(conf); err != nil {
		return nil, err
	}
	if fsm == nil || logs == nil || stable == nil || snaps == nil || trans == nil {
		return nil, errors.New("raft: NewRaft needs an FSM, a LogStore, a StableStore, a SnapshotStore and a Transport")
	}
	hs, err := loadHardState(stable)
	if err != nil {
		return nil, err
	}
	snap, sessions, err := restoreNewestSnapshot(conf.Logger, fsm, snaps, logs)
	if err != nil {
		return nil, err
	}
	startLog, lastOnDisk, err := loadLog(logs, snap.Index, orDefault(conf.MaxLogCacheBytes, defaultLogCacheBytes))
	if err != nil {
		return nil, err
	}
	cc, tick := conf.coreConfig(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	r := &Raft{
		conf:     *conf,
		logger:   conf.Logger,
		trans:    trans,
		stable:   stable,
		tick:     tick,
		addrs:    map[ServerID]ServerAddress{},
		reads:    map[uint64]*future{},
		forwards: map[uint64][]*future{},
		// Request IDs start at the boot time so that a restarted server
		// does not reuse its forwarded proposals' IDs (forward.go).
		lastReq:       uint64(time.Now().UnixNano()),
		applyCh:       make(chan *future, 4*conf.MaxAppendEntries),
		opCh:          make(chan func()),
		persistNotify: make(chan struct{}, 1),
		applyNotify:   make(chan struct{}, 1),
		loadNotify:    make(chan struct{}, 1),
		observers:     map[*observer]struct{}{},
		leaderCh:      make(chan bool, 1),
		shutdownCh:    make(chan struct{}),
		metrics:       newRaftMetrics(conf.Metrics),
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	r.logger = r.logger.With("server", conf.LocalID)
	base := confEntry{index: snap.ConfigurationIndex, conf: snap.Configuration}
	r.core = newCoreFromLog(cc, hs, snap.Index, snap.Term, base, startLog)
	r.metrics.startCommit(r.core.log.committed)
	r.persister = newPersister(logs, lastOnDisk, r.sendNow, r.persistedTo, r.fatal, r.loadsDone)
	r.persister.stable, r.persister.metrics = stable, r.metrics
	r.applier = newApplier(fsm, snap.Index, sessions, func() { r.notify(r.applyNotify) })
	r.applier.metrics = r.metrics
	r.publish()

	r.initSnapshots(snaps, snap)
	return r, nil
}

// loadLog reads the entries after snapIndex and checks that they form a
// log keel can trust: contiguous, terms never decreasing, configurations
// readable. It keeps the newest cacheBytes of them in memory, and the
// terms and configurations of the rest. It also returns the store's last
// index.
func loadLog(logs LogStore, snapIndex, cacheBytes uint64) (startLog, uint64, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return startLog{}, 0, fmt.Errorf("raft: read first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return startLog{}, 0, fmt.Errorf("raft: read last log index: %w", err)
	}
	if last <= snapIndex {
		return startLog{base: snapIndex}, last, nil
	}
	if first > snapIndex+1 {
		return startLog{}, 0, fmt.Errorf("%w: log starts at index %d but the newest snapshot ends at %d", ErrCorruptState, first, snapIndex)
	}
	b := newStartLogBuilder(snapIndex, cacheBytes)
	var prevTerm uint64
	for i := snapIndex + 1; i <= last; i++ {
		e, err := readStoredEntry(logs, i, prevTerm)
		if err != nil {
			return startLog{}, 0, err
		}
		prevTerm = e.Term
		b.add(e)
	}
	return b.result(), last, nil
}

// readStoredEntry reads entry i of logs, the one after an entry of term
// prevTerm, and checks it is one keel can trust: its index, a term that
// does not go back, and validateEntry. A newer build's entry is
// ErrUnsupportedVersion, anything else wrong ErrCorruptState.
func readStoredEntry(logs LogStore, i, prevTerm uint64) (Log, error) {
	var e Log
	if err := logs.GetLog(i, &e); err != nil {
		return Log{}, fmt.Errorf("raft: read log entry %d: %w", i, err)
	}
	if e.Index != i {
		return Log{}, fmt.Errorf("%w: log entry %d has index %d", ErrCorruptState, i, e.Index)
	}
	if e.Term < prevTerm {
		return Log{}, fmt.Errorf("%w: log entry %d has term %d below the previous entry's %d", ErrCorruptState, i, e.Term, prevTerm)
	}
	if err := validateEntry(&e); errors.Is(err, ErrUnsupportedVersion) {
		return Log{}, fmt.Errorf("raft: log entry %d: %w", i, err)
	} else if err != nil {
		return Log{}, fmt.Errorf("%w: log entry %d: %v", ErrCorruptState, i, err)
	}
	return e, nil
}

// validateEntry checks what the core and the applier rely on: a known
// type, a readable configuration in configuration entries, and a
// well-formed session operation in session entries.
func validateEntry(e *Log) error {
	switch e.Type {
	case LogCommand, LogNoop:
		return nil
	case LogConfiguration:
		_, err := decodeConfiguration(e.Data)
		return err
	case LogSession:
		_, err := decodeSessionEntry(e.Data)
		return err
	default:
		if e.Type > lastLogType {
			// A newer build's entry: refuse it rather than apply or
			// replicate what this build cannot interpret.
			return fmt.Errorf("%w: entry type %d, this build knows types up to %d (%v)", ErrUnsupportedVersion, e.Type, lastLogType, lastLogType)
		}
		return fmt.Errorf("unknown entry type %d", e.Type)
	}
}

// Apply proposes a command. The future's Error waits until the command is
// applied on this server, leadership is lost, ctx ends or the server shuts
// down; its Response is this server's FSM's.
//
// On a follower the command is forwarded to the leader over the transport
// (unless Config.ForwardingDisabled): the leader appends it, and the
// follower's future completes once the follower itself has applied it, so
// a read of this server's FSM after Apply returns sees the command. With
// forwarding off, or no leader known, it fails at once with a
// *NotLeaderError naming the leader.
//
// ErrNotLeader, ErrLeadershipTransferInProgress and ErrRestoreInProgress
// mean the command was not appended. Any other error leaves the outcome
// unknown: the command may still commit. Clients that retry need commands
// that are idempotent.
func (r *Raft) Apply(ctx context.Context, cmd []byte) ApplyFuture {
	return r.propose(ctx, Log{Type: LogCommand, Data: cmd})
}

// Barrier returns a future that completes once every entry committed before
// it has been applied to the FSM on this server. On a follower it is
// forwarded to the leader like Apply.
func (r *Raft) Barrier(ctx context.Context) Future {
	return r.propose(ctx, Log{Type: LogNoop})
}

func (r *Raft) propose(ctx context.Context, l Log) *future {
	f := newFuture(ctx, r.shutdownCh)
	f.log = l
	f.start = r.metrics.now()
	select {
	case r.applyCh <- f:
		r.wakeLoop()
	case <-ctx.Done():
		f.respond(0, nil, ctx.Err())
	case <-r.shutdownCh:
		f.respond(0, nil, r.shutdownError())
	}
	return f
}

// VerifyLeader confirms that this server is still the leader: a quorum has
// answered a heartbeat sent after the call. Concurrent calls share one
// round.
func (r *Raft) VerifyLeader(ctx context.Context) Future {
	f := newFuture(ctx, r.shutdownCh)
	if err := r.do(ctx, func() { r.requestRead(f, readVerify) }); err != nil {
		f.respond(0, nil, err)
	}
	return f
}

// ReadIndex returns an index such that, once this server has applied it
// (see WaitApplied), its FSM reflects every write committed before the call:
// a read of the FSM after that is linearizable. It needs no log write: the
// leader records its commit index, confirms with a round of heartbeats that
// it still leads (concurrent calls share a round), and returns. A new
// leader answers only once an entry of its own term has committed. On a
// follower it fails with a *NotLeaderError: Read(ctx, Linearizable) is the
// form that works on any server and waits for the apply too.
func (r *Raft) ReadIndex(ctx context.Context) (uint64, error) {
	f := newFuture(ctx, r.shutdownCh)
	if err := r.do(ctx, func() { r.requestRead(f, readIndex) }); err != nil {
		return 0, err
	}
	if err := f.Error(); err != nil {
		return 0, err
	}
	return f.index, nil
}

// requestRead hands a read request of the given kind to the core, on the
// event loop; flush answers it.
func (r *Raft) requestRead(f *future, kind readKind) {
	r.lastReq++
	if err := r.core.requestRead(r.lastReq, kind); err != nil {
		f.respond(0, nil, r.notLeader())
		return
	}
	r.reads[r.lastReq] = f
}

// ReadMode is the consistency a Read asks for.
type ReadMode uint8

const (
	// Linearizable reads see every write acknowledged before Read was
	// called, on any server: the leader confirms with a round of
	// heartbeats that it still leads (ReadIndex, concurrent reads share a
	// round) and a follower asks the leader for that read index (a
	// follower read), then waits until its FSM has applied it. It assumes
	// nothing about clocks. On a follower it fails with
	// ErrFollowerReadFailed when the leader does not answer within an
	// election timeout or changes, and with a *NotLeaderError when no
	// leader is known.
	Linearizable ReadMode = iota
	// Lease reads are served by the leader alone, without a round trip,
	// while its lease holds: for (electionTicks-1)*(1-ClockDrift)-1 ticks
	// after a quorum last confirmed it (see Config.ClockDrift); outside
	// the lease they cost a heartbeat round like Linearizable. They are
	// linearizable only if no server's clock rate differs from another's
	// by more than ClockDrift, the leader's event loop is not stalled for
	// long (a stall makes it miss ticks, which stretches the lease), and
	// every voter runs CheckQuorum (whose
	// leader stickiness stops an election while the lease lasts): weaker
	// than Linearizable. With CheckQuorum off a Lease read is a
	// Linearizable one. Only the leader serves them; elsewhere they fail
	// with a *NotLeaderError.
	Lease
	// Stale reads return at once with this server's applied index, on any
	// server: the FSM may lag the cluster by any amount. LastContact tells
	// how long ago a follower last heard from a leader, which bounds the
	// lag in time while the follower keeps up.
	Stale
)

// String returns the mode's name.
func (m ReadMode) String() string {
	switch m {
	case Linearizable:
		return "Linearizable"
	case Lease:
		return "Lease"
	case Stale:
		return "Stale"
	default:
		return "ReadMode(" + strconv.Itoa(int(m)) + ")"
	}
}

// Read prepares a read of this server's FSM at the given consistency and
// returns the index it reflects: when Read returns without error the FSM
// has applied at least that index, and the caller reads the FSM (with its
// own synchronisation against Apply). See ReadMode for what each mode
// guarantees and assumes. ctx bounds the wait.
func (r *Raft) Read(ctx context.Context, mode ReadMode) (uint64, error) {
	var kind readKind
	switch mode {
	case Linearizable:
		kind = readAny
	case Lease:
		kind = readLease
	case Stale:
		r.metrics.staleRead()
		return r.AppliedIndex(), nil
	default:
		return 0, fmt.Errorf("raft: unknown read mode %v", mode)
	}
	f := newFuture(ctx, r.shutdownCh)
	if err := r.do(ctx, func() { r.requestRead(f, kind) }); err != nil {
		return 0, err
	}
	if err := f.Error(); err != nil {
		return 0, err
	}
	if err := r.WaitApplied(ctx, f.index); err != nil {
		return 0, err
	}
	return f.index, nil
}

// WaitApplied waits until this server's FSM has applied index, ctx ends or
// the server shuts down.
func (r *Raft) WaitApplied(ctx context.Context, index uint64) error {
	for {
		changed := r.applier.changed()
		if r.applier.applied.Load() >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.shutdownCh:
			return r.shutdownError()
		}
	}
}

// do runs fn on the event loop and waits until it has run.
func (r *Raft) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case r.opCh <- func() { fn(); close(done) }:
		r.wakeLoop()
	case <-ctx.Done():
		return ctx.Err()
	case <-r.shutdownCh:
		return r.shutdownError()
	}
	select {
	case <-done:
		return nil
	case <-r.shutdownCh:
		return r.shutdownError()
	}
}

// State returns the server's current role.
func (r *Raft) State() RaftState {
	r.pubMu.RLock()
	defer r.pubMu.RUnlock()
	return r.pub.state
}

// Leader returns the address and ID of the current leader, or empty
// values when none is known.
func (r *Raft) Leader() (ServerAddress, ServerID) {
	r.pubMu.RLock()
	defer r.pubMu.RUnlock()
	return r.pub.leaderAddr, r.pub.leaderID
}

// LastIndex returns the index of the last entry in this server's log.
func (r *Raft) LastIndex() uint64 {
	r.pubMu.RLock()
	defer r.pubMu.RUnlock()
	return r.pub.lastIndex
}

// LastContact returns when this server last heard from the leader it
// follows, or the zero time if it never has. With AppliedIndex it bounds how
// stale a read of this server's FSM can be. A leader reports the current
// time: its own state is as fresh as the cluster's.
func (r *Raft) LastContact() time.Time {
	if r.State() == Leader {
		return time.Now()
	}
	ns := r.lastContact.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// AppliedIndex returns the index of the last entry applied to the FSM.
func (r *Raft) AppliedIndex() uint64 { return r.applier.applied.Load() }

// GetConfiguration returns the latest configuration in this server's log
// (which, during a change, may not be committed yet, and may be joint). See
// GetConfigurations for the committed one too.
func (r *Raft) GetConfiguration(ctx context.Context) (Configuration, error) {
	var c Configuration
	err := r.do(ctx, func() { c = r.core.confs.latest().conf.Clone() })
	return c, err
}

// Stats returns a snapshot of the server's state, for operators; the keys
// a hashicorp/raft user knows mean the same here. Keys are stable; values
// are for humans. The figures are those Config.Metrics' gauges report (the
// loop publishes them once for both), so the two never disagree.
func (r *Raft) Stats() map[string]string {
	r.pubMu.RLock()
	p := r.pub
	r.pubMu.RUnlock()
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	applied := r.AppliedIndex()
	return map[string]string{
		"state":          p.state.String(),
		"term":           u(p.term),
		"leader_id":      string(p.leaderID),
		"leader_addr":    string(p.leaderAddr),
		"last_log_index": u(p.lastIndex),
		"commit_index":   u(p.commit),
		"applied_index":  u(applied),
		"fsm_pending":    u(p.commit - min(applied, p.commit)),
		"last_contact":   lastContactString(r.LastContact()),
		"num_peers":      strconv.Itoa(p.otherVoters),

		"last_snapshot_index": u(p.snapshotIndex),
		// The log's entries in memory, and those of them not yet applied.
		"log_memory_bytes":  u(p.logBytes),
		"log_pending_bytes": u(p.pendingBytes),

		"disk_stalled":       strconv.FormatBool(p.diskStalled),
		"disk_stalled_since": stalledSinceString(p),
		"disk_stalled_for":   stalledForString(p),
	}
}

func lastContactString(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Millisecond).String()
}

// Shutdown stops the server and waits until every goroutine it started has
// exited. Operations under way fail with ErrRaftShutdown. It is safe to
// call more than once; it returns the storage error that stopped the
// server, if one did. It must not be called from the FSM's methods, which
// run on one of the goroutines it waits for. Nor can it interrupt a call
// into a store that never returns (a LogStore or StableStore write whose
// disk hangs, a SnapshotStore or FSMSnapshot.Persist stuck on one): it
// waits for that call to return.
func (r *Raft) Shutdown() error {
	r.close(nil)
	r.wg.Wait()
	if errors.Is(r.shutdownErr, ErrRaftShutdown) && r.shutdownErr != ErrRaftShutdown {
		return r.shutdownErr
	}
	return nil
}

// close stops every goroutine; err is the reason when a failure stops the
// server.
func (r *Raft) close(err error) {
	r.shutdownOnce.Do(func() {
		r.shutdownErr = ErrRaftShutdown
		if err != nil {
			r.shutdownErr = fmt.Errorf("%w: %w", ErrRaftShutdown, err)
		}
		close(r.shutdownCh)
		r.persister.close()
		r.applier.close()
		r.closeSnapshots()
		r.wakeLoop()
	})
}

func (r *Raft) shutdownError() error {
	<-r.shutdownCh
	return r.shutdownErr
}

// fatal stops the server after a storage failure: it must not go on as if
// data it could not write were durable.
func (r *Raft) fatal(err error) {
	r.logger.Error("stopping after storage failure", "err", err)
	r.close(err)
}

// notify tells the event loop about work through ch, which holds at most
// one notification.
func (r *Raft) notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
	r.wakeLoop()
}

// wakeLoop makes a hosted group's event loop run; a loop of its own
// selects on the channels instead.
func (r *Raft) wakeLoop() {
	if r.hosted != nil {
		r.hosted.loop.wake()
	}
}
