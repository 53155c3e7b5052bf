package raft

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of a Host's group operations.
var (
	// ErrHostClosed is returned by a Host's methods after Close.
	ErrHostClosed = errors.New("raft: host closed")
	// ErrGroupExists is returned by StartGroup for a group that runs.
	ErrGroupExists = errors.New("raft: group already runs on this host")
	// ErrGroupRemoved is returned by StartGroup for a group removed with
	// RemoveGroup (or listed in HostConfig.Removed).
	ErrGroupRemoved = errors.New("raft: group was removed from this host")
	// ErrUnknownGroup is returned for a group that does not run here.
	ErrUnknownGroup = errors.New("raft: no such group on this host")
)

// HostConfig configures a Host. Zero fields take the defaults.
type HostConfig struct {
	// Transport carries every group's messages. The caller owns it: Close
	// does not close it.
	Transport HostTransport
	// HeartbeatInterval is the one every group started on the host must
	// have (Config.HeartbeatInterval): the host's one ticker ticks for all
	// of them. Default: DefaultConfig's.
	HeartbeatInterval time.Duration
	// StepWorkers run the groups' event loops; a group always runs on the
	// same one (by group ID). Default: GOMAXPROCS.
	StepWorkers int
	// PersistWorkers write the groups' logs and received snapshots. A
	// worker writes its groups (by group ID) in rounds: every group ready
	// on it, and when their stores are a SharedLogStore (storage/multiwal)
	// all of them with one write and one fsync. Fewer workers make bigger
	// rounds; two let one round fill while the other's fsync runs. A
	// round blocks its worker until it is durable, so with a store of its
	// own per group (not shared) raise it, for instance to 16: a worker's
	// groups then fsync one after another. Default: 2.
	PersistWorkers int
	// ApplyWorkers apply committed entries to the groups' FSMs, each
	// group's in order. A slow FSM holds up the groups that share its
	// worker. Default: 2×GOMAXPROCS.
	ApplyWorkers int
	// InboxSize is how many received messages a group holds before it
	// drops more (Raft retransmits). Default: 256.
	InboxSize int
	// UnknownGroup, when set, is called with each message for a group that
	// neither runs here nor was removed: a hook to start groups on demand
	// (a new replica the leader is sending to). It runs on the host's
	// receive goroutine and must not block: start the group elsewhere.
	UnknownGroup func(g GroupID, m *Message)
	// Removed lists groups removed before (Host.Removed, saved by the
	// application): their messages are dropped and StartGroup refuses them.
	Removed []GroupID
	// Logger receives the host's logs; nil discards them.
	Logger *slog.Logger
	// DisableQuiescence keeps idle groups ticking and heartbeating. By
	// default a group idle for an election timeout goes quiet: it is not
	// ticked, sends no heartbeats of its own, and the host watches its
	// leader and quorum with one message per peer host and heartbeat
	// interval instead (see Host). A group goes quiet only where all its
	// hosts allow it: a follower on a host with this set refuses.
	DisableQuiescence bool

	// MaxPendingBytes bounds the sum, over the groups this host leads, of
	// the commands appended and not yet applied (each group's measure for
	// Config.MaxPendingBytes: data plus 64 bytes an entry). A proposal
	// that would pass it fails at once with an error wrapping both
	// ErrProposalQueueFull and ErrHostLimit, naming the numbers (a
	// follower that forwarded it gets ErrProposalQueueFull); nothing
	// accepted before is lost. One command is admitted when the host holds
	// nothing pending, so none is refused for its size alone. 0, the
	// default, sets no host-wide bound (each group keeps its own). The
	// sum can pass it by the entries a leader appends on its own (its
	// no-op at election, configuration changes).
	MaxPendingBytes uint64
	// MaxInflightBytes bounds the sum, over the host's groups, of the
	// entry bytes sent to followers and not yet acknowledged (each
	// group's measure for Config.MaxInflightBytes). At the bound leaders
	// send no appends (probes included), only heartbeats, votes, answers
	// and snapshots, until acknowledgements bring the sum back under. It
	// can pass the bound by at most one append per step worker (an append
	// is never split). 0, the default, sets no host-wide bound.
	MaxInflightBytes uint64
	// MaxSnapshotSends bounds how many snapshot transfers (this host's
	// leaders sending to followers) run at once; more wait their turn, on
	// their own goroutines, and a follower waiting for one is sent
	// heartbeats meanwhile. Default: 4.
	MaxSnapshotSends int
	// SnapshotSendRate bounds the bytes a second all the host's snapshot
	// transfers send together, with a burst of a tenth of a second's
	// worth. 0, the default, is unlimited.
	SnapshotSendRate uint64
}

// Host runs many Raft groups in one process on a fixed number of
// goroutines, whatever the number of groups: one ticker, one receive
// goroutine, and pools of step, persist and apply workers (HostConfig).
// Each group is a *Raft with the whole API of one started by NewRaft; its
// event loop, log writes and applies run as tasks on the pools instead of
// on goroutines of its own. Goroutines beyond the pools (and the
// transport's) exist only while a group takes a snapshot or sends one.
//
// The groups share the HostTransport, and can share a log store that
// combines their writes (storage/multiwal). Every replica of a group must
// have the same GroupID on every host.
type Host struct {
	conf   HostConfig
	logger *slog.Logger
	tick   time.Duration

	steps, persists, applies *pool
	// persistParts are the persist workers' groups, one per worker, each
	// written in rounds (persist_round.go).
	persistParts []*persistPartition

	mu      sync.RWMutex
	groups  map[GroupID]*Raft // nil while the group starts
	ticking map[GroupID]*Raft // the running groups that are not quiet
	removed map[GroupID]bool
	closed  bool

	inboxDropped, unknown, removedDropped atomic.Uint64

	// quiet watches the quiet groups (quiet.go); quietMu is never held
	// with mu.
	quietMu sync.Mutex
	quiet   *quietTracker

	done chan struct{}
	wg   sync.WaitGroup

	limits *hostLimits // host_limits.go
}

// hostedGroup is a Raft's part in its Host.
type hostedGroup struct {
	host  *Host
	id    GroupID
	inbox chan *Message
	// tickDue is set by the host's ticker and taken by the event loop; a
	// loop that falls behind misses ticks, as one on a time.Ticker does.
	tickDue atomic.Bool
	loop    *task
	// snapTicks counts down to the next SnapshotThreshold check (event
	// loop only).
	snapTicks int
	// quiet mirrors the core's quiesced (event loop only; the ticker
	// skips the group while it is out of Host.ticking); wakeDue is the
	// host's request to wake it (a wakeReason), taken by the event loop.
	quiet   bool
	wakeDue atomic.Uint32
}

// HostStats counts what a Host dropped, and shows where it stands against
// its host-wide limits.
type HostStats struct {
	Groups         int    // groups running
	InboxDropped   uint64 // messages dropped because their group's inbox was full
	UnknownGroup   uint64 // messages for a group not running here (passed to UnknownGroup when set)
	RemovedDropped uint64 // messages for a removed group, dropped
	Quiet          int    // groups quiet here: idle, not ticked (HostConfig.DisableQuiescence)

	// The host-wide limits' current values (HostConfig).
	PendingBytes         uint64 // bytes of proposals the host's leaders have not applied yet
	InflightBytes        uint64 // entry bytes sent to followers and not yet acknowledged
	SnapshotSendsRunning int    // snapshot transfers sending
	SnapshotSendsWaiting int    // snapshot transfers waiting for their turn
}

// NewHost starts a host's goroutines.
func NewHost(conf HostConfig) (*Host, error) {
	if conf.Transport == nil {
		return nil, fmt.Errorf("%w: HostConfig.Transport is nil", ErrInvalidConfig)
	}
	def := DefaultConfig()
	procs := runtime.GOMAXPROCS(0)
	conf.HeartbeatInterval = cmp.Or(conf.HeartbeatInterval, def.HeartbeatInterval)
	conf.StepWorkers = cmp.Or(conf.StepWorkers, procs)
	conf.PersistWorkers = cmp.Or(conf.PersistWorkers, 2)
	conf.ApplyWorkers = cmp.Or(conf.ApplyWorkers, 2*procs)
	conf.InboxSize = cmp.Or(conf.InboxSize, 256)
	conf.MaxSnapshotSends = cmp.Or(conf.MaxSnapshotSends, defaultMaxSnapshotSends)
	switch {
	case conf.HeartbeatInterval < heartbeatTicks*time.Millisecond:
		return nil, fmt.Errorf("%w: HostConfig.HeartbeatInterval is %v, want at least %v", ErrInvalidConfig, conf.HeartbeatInterval, heartbeatTicks*time.Millisecond)
	case conf.StepWorkers < 0 || conf.PersistWorkers < 0 || conf.ApplyWorkers < 0 || conf.InboxSize < 0:
		return nil, fmt.Errorf("%w: HostConfig has a negative size (StepWorkers %d, PersistWorkers %d, ApplyWorkers %d, InboxSize %d)",
			ErrInvalidConfig, conf.StepWorkers, conf.PersistWorkers, conf.ApplyWorkers, conf.InboxSize)
	case conf.MaxSnapshotSends < 0:
		return nil, fmt.Errorf("%w: HostConfig.MaxSnapshotSends is %d, want at least 1 (0 for the default)", ErrInvalidConfig, conf.MaxSnapshotSends)
	}
	h := &Host{
		conf: conf, logger: conf.Logger, tick: conf.HeartbeatInterval / heartbeatTicks,
		groups: map[GroupID]*Raft{}, ticking: map[GroupID]*Raft{}, removed: map[GroupID]bool{}, done: make(chan struct{}),
		quiet: newQuietTracker(), limits: newHostLimits(&conf),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	for _, g := range conf.Removed {
		h.removed[g] = true
	}
	h.steps, h.persists, h.applies = newPool(conf.StepWorkers), newPool(conf.PersistWorkers), newPool(conf.ApplyWorkers)
	for _, w := range h.persists.workers {
		h.persistParts = append(h.persistParts, newPersistPartition(w))
	}
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.runTicker() }()
	go func() { defer h.wg.Done(); h.receive() }()
	return h, nil
}

// StartGroup starts group id on this host from its stores, as NewRaft
// starts a server, and returns it. conf.HeartbeatInterval must be the
// host's. Shutdown on the returned Raft stops it as StopGroup does, except
// that the host keeps its ID until StopGroup or RemoveGroup.
func (h *Host) StartGroup(id GroupID, conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore) (*Raft, error) {
	if id == 0 || id == hostGroup {
		return nil, fmt.Errorf("%w: group ID %d is reserved", ErrInvalidConfig, id)
	}
	if conf != nil && conf.HeartbeatInterval != h.conf.HeartbeatInterval {
		return nil, fmt.Errorf("%w: group %d: HeartbeatInterval is %v, the host ticks for %v", ErrInvalidConfig, id, conf.HeartbeatInterval, h.conf.HeartbeatInterval)
	}
	h.mu.Lock()
	switch _, runs := h.groups[id]; {
	case h.closed:
		h.mu.Unlock()
		return nil, ErrHostClosed
	case runs:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: group %d", ErrGroupExists, id)
	case h.removed[id]:
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: group %d", ErrGroupRemoved, id)
	}
	h.groups[id] = nil // reserved while the stores load
	h.mu.Unlock()

	hg := &hostedGroup{host: h, id: id, inbox: make(chan *Message, h.conf.InboxSize)}
	r, err := newRaft(conf, fsm, logs, stable, snaps, &groupTransport{h: h, g: id, inbox: hg.inbox})
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil || h.closed {
		delete(h.groups, id)
		if err == nil {
			err = ErrHostClosed
		}
		return nil, fmt.Errorf("raft: start group %d: %w", id, err)
	}
	r.hosted = hg
	r.logger = r.logger.With("group", id)
	if !h.conf.DisableQuiescence {
		r.core.cfg.quiesceTicks = r.core.cfg.electionTicks
	}
	r.opCh = make(chan func(), 64) // senders wake the loop after they send
	key := uint64(id)
	r.limits = &groupLimits{h: h.limits}
	hg.loop = newTask(h.steps.worker(key), r.hostRunOnce, r.wg.Done) // hostRunOnce: runOnce and the host's limits
	apply := newTask(h.applies.worker(key), r.applier.runOnce, r.wg.Done)
	recv := newTask(h.persists.worker(key+1), r.receiver.runOnce, r.wg.Done)
	h.persistParts[key%uint64(len(h.persistParts))].attach(r.persister, r.wg.Done)
	r.persister.stageStores(logs, stable)
	r.applier.queue.wake, r.receiver.queue.wake = apply.wake, recv.wake
	r.wg.Add(4)
	hg.snapTicks = r.snapshotCheckTicks()
	h.groups[id] = r
	h.ticking[id] = r
	hg.loop.wake()
	return r, nil
}

// snapshotCheckTicks draws the ticks until a hosted group next checks
// SnapshotThreshold: [SnapshotInterval, 2*SnapshotInterval), as the ticker
// of a server on goroutines of its own does.
func (r *Raft) snapshotCheckTicks() int {
	n := max(1, int(r.conf.SnapshotInterval/r.tick))
	return n + rand.IntN(n)
}

// hostSnapshotTick stands in, on a Host, for runSnapshotTicker.
func (r *Raft) hostSnapshotTick() {
	if r.hosted.snapTicks--; r.hosted.snapTicks > 0 {
		return
	}
	r.hosted.snapTicks = r.snapshotCheckTicks()
	r.maybeAutoSnapshot()
}

// Group returns the group running as id, or nil.
func (h *Host) Group(id GroupID) *Raft {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.groups[id]
}

// Groups returns the IDs of the groups running, in order.
func (h *Host) Groups() []GroupID {
	h.mu.RLock()
	ids := make([]GroupID, 0, len(h.groups))
	for id, r := range h.groups {
		if r != nil {
			ids = append(ids, id)
		}
	}
	h.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// StopGroup shuts group id down (see Raft.Shutdown) and forgets it; it
// can be started again. It returns the error that stopped the group, if
// one did.
func (h *Host) StopGroup(id GroupID) error {
	r, err := h.take(id, false)
	if err != nil {
		return err
	}
	return r.Shutdown()
}

// RemoveGroup stops group id for good: from now on its messages are
// dropped (so a stale leader's append cannot make UnknownGroup recreate
// it) and StartGroup refuses it. Deleting its stores is the caller's
// part. The tombstone lasts as long as the host: save Removed and pass it
// in HostConfig.Removed after a restart.
func (h *Host) RemoveGroup(id GroupID) error {
	r, err := h.take(id, true)
	if err != nil {
		return err
	}
	if r == nil {
		return nil
	}
	return r.Shutdown()
}

func (h *Host) take(id GroupID, remove bool) (*Raft, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrHostClosed
	}
	r, runs := h.groups[id]
	if runs && r == nil {
		return nil, fmt.Errorf("%w: group %d is starting", ErrUnknownGroup, id)
	}
	if remove {
		h.removed[id] = true
	} else if !runs {
		return nil, fmt.Errorf("%w: group %d", ErrUnknownGroup, id)
	}
	delete(h.groups, id)
	delete(h.ticking, id)
	return r, nil
}

// Removed returns the groups removed from this host, in order.
func (h *Host) Removed() []GroupID {
	h.mu.RLock()
	ids := make([]GroupID, 0, len(h.removed))
	for id := range h.removed {
		ids = append(ids, id)
	}
	h.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// Stats returns the host's counters.
func (h *Host) Stats() HostStats {
	h.mu.RLock()
	n := 0
	for _, r := range h.groups {
		if r != nil {
			n++
		}
	}
	h.mu.RUnlock()
	h.quietMu.Lock()
	quiet := len(h.quiet.groups)
	h.quietMu.Unlock()
	s := HostStats{Groups: n, InboxDropped: h.inboxDropped.Load(), UnknownGroup: h.unknown.Load(), RemovedDropped: h.removedDropped.Load(), Quiet: quiet}
	h.limits.limitStats(&s)
	return s
}

// Close shuts every group down, then stops the host's goroutines; it
// returns the errors that stopped groups. It does not close the
// transport or any store.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	groups := h.groups
	h.groups, h.ticking = map[GroupID]*Raft{}, map[GroupID]*Raft{}
	h.mu.Unlock()
	var errs []error
	for id, r := range groups {
		if r == nil {
			continue // its StartGroup sees closed and gives up
		}
		if err := r.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("group %d: %w", id, err))
		}
	}
	close(h.done)
	h.wg.Wait()
	h.steps.close()
	h.persists.close()
	h.applies.close()
	return errors.Join(errs...)
}

func (h *Host) runTicker() {
	t := time.NewTicker(h.tick)
	defer t.Stop()
	for ticks := 1; ; ticks++ {
		select {
		case <-h.done:
			return
		case <-t.C:
			h.mu.RLock()
			for _, r := range h.ticking {
				r.hosted.tickDue.Store(true)
				r.hosted.loop.wake()
			}
			h.mu.RUnlock()
			h.quietMu.Lock()
			h.quiet.now++
			h.quietMu.Unlock()
			if ticks%heartbeatTicks == 0 {
				h.watchQuiet()
			}
		}
	}
}

func (h *Host) receive() {
	in := h.conf.Transport.Consumer()
	for {
		select {
		case <-h.done:
			return
		case gm := <-in:
			h.deliver(gm)
		}
	}
}

// deliver hands a received message to its group. The simulator's hosts
// (sim_host_test.go) route as it does, and plant a router that delivers
// to the wrong group to show the checkers catch it.
func (h *Host) deliver(gm GroupMessage) {
	if gm.Group == hostGroup {
		h.hostMessage(gm.Msg)
		return
	}
	h.mu.RLock()
	r, runs := h.groups[gm.Group]
	removed := h.removed[gm.Group]
	h.mu.RUnlock()
	switch {
	case r != nil:
		select {
		case r.hosted.inbox <- gm.Msg:
			r.hosted.loop.wake()
		default:
			h.inboxDropped.Add(1)
		}
	case runs: // starting: the sender retries
	case removed:
		h.removedDropped.Add(1)
	default:
		h.unknown.Add(1)
		if h.conf.UnknownGroup != nil {
			h.conf.UnknownGroup(gm.Group, gm.Msg)
		}
	}
}

// groupTransport is a hosted group's Transport: sends go out on the
// host's transport tagged with the group, and messages arrive through the
// host's receive goroutine.
type groupTransport struct {
	h     *Host
	g     GroupID
	inbox chan *Message
}

func (t *groupTransport) Send(target ServerAddress, m *Message) error {
	return t.h.conf.Transport.Send(target, t.g, m)
}
func (t *groupTransport) Consumer() <-chan *Message { return t.inbox }
func (t *groupTransport) LocalAddr() ServerAddress  { return t.h.conf.Transport.LocalAddr() }
func (t *groupTransport) Close() error              { return nil }
