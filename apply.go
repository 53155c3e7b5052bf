package raft

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// applyBatch is committed entries for the FSM and the futures waiting on
// some of them, both in index order.
type applyBatch struct {
	entries []Log
	futures []*future
	// op, when set, runs on the applier in place of entries: taking or
	// restoring a snapshot, in order with applies.
	op func()
	// committedAt is when the loop learned the entries are committed, for
	// the apply latency; zero when metrics are off.
	committedAt time.Time
}

// applier applies committed entries to the FSM on a goroutine of its own,
// so a slow FSM never delays heartbeats or replication.
type applier struct {
	fsm    FSM
	notify func() // tells the event loop that applied moved

	queue   *workQueue[applyBatch]
	applied atomic.Uint64

	// changedCh is closed (and replaced) whenever applied moves, so that
	// any number of WaitApplied callers can wait on it with a context.
	mu        sync.Mutex
	changedCh chan struct{}

	// Reused by applyEntries: the FSM's commands, their positions in the
	// batch, and the batch's session steps.
	cmds  []*Log
	cmdAt []int
	steps []indexedStep

	// sessions is the client session table (session.go), as of applied.
	sessions *sessionTable

	metrics *raftMetrics

	// The term and configuration as of applied, for snapshots taken at
	// this point (applier goroutine only).
	lastTerm  uint64
	conf      Configuration
	confIndex uint64
}

func newApplier(fsm FSM, applied uint64, sessions *sessionTable, notify func()) *applier {
	a := &applier{fsm: fsm, notify: notify, queue: newWorkQueue[applyBatch](), changedCh: make(chan struct{}), sessions: sessions}
	a.applied.Store(applied)
	return a
}

// changed returns a channel closed the next time applied moves.
func (a *applier) changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changedCh
}

func (a *applier) submit(b applyBatch) { a.queue.push(b) }

// close stops the applier; futures of batches not yet applied fail with
// ErrRaftShutdown.
func (a *applier) close() { a.queue.close() }

func (a *applier) run() {
	for {
		queue, open := a.queue.takeAll()
		if !open {
			a.stop(queue)
			return
		}
		a.process(queue)
	}
}

// runOnce is run for an applier on a Host's pool: it applies what is
// queued and reports whether the applier is still open.
func (a *applier) runOnce() bool {
	queue, open := a.queue.take()
	if !open {
		a.stop(queue)
		return false
	}
	if len(queue) > 0 {
		a.process(queue)
	}
	return true
}

func (a *applier) process(queue []applyBatch) {
	for _, b := range queue {
		a.apply(b)
	}
	a.mu.Lock()
	close(a.changedCh)
	a.changedCh = make(chan struct{})
	a.mu.Unlock()
	a.notify()
}

// stop fails the futures of the batches left when the applier closed.
func (a *applier) stop(queue []applyBatch) {
	for _, b := range queue {
		for _, f := range b.futures {
			f.respond(0, nil, ErrRaftShutdown)
		}
	}
}

// apply applies one batch: commands go to the FSM (in one ApplyBatch call
// when it is a BatchingFSM), session entries to the session table (and the
// commands it lets through to the FSM), other entries only complete their
// futures.
func (a *applier) apply(b applyBatch) {
	if b.op != nil {
		b.op()
		return
	}
	a.track(b.entries)
	results := a.applyEntries(b.entries)
	// Published before futures complete: a caller whose Apply returned sees
	// AppliedIndex at or past its entry.
	a.applied.Store(b.entries[len(b.entries)-1].Index)
	a.metrics.applied(len(b.entries), b.committedAt)
	first := b.entries[0].Index
	for _, f := range b.futures {
		if f.log.Index < first {
			// A forwarded proposal answered after a snapshot covered
			// its index: which entry took that place is unknown.
			f.respond(0, nil, ErrLeadershipLost)
			continue
		}
		i := f.log.Index - first
		if b.entries[i].Term != f.log.Term {
			// Another leader's entry took the future's place in the log.
			f.respond(0, nil, ErrLeadershipLost)
			continue
		}
		f.respond(f.log.Index, results[i].resp, results[i].err)
	}
}

// applyResult is what an entry's future gets.
type applyResult struct {
	resp any
	err  error
}

// applyEntries applies a batch in log order and returns a result per
// entry. Session entries go through the table in two passes around the
// FSM call (see sessionTable.begin): the table's decisions never depend on
// the FSM, so one ApplyBatch call still covers every command of the batch.
func (a *applier) applyEntries(entries []Log) []applyResult {
	results := make([]applyResult, len(entries))
	a.cmds, a.cmdAt, a.steps = a.cmds[:0], a.cmdAt[:0], a.steps[:0]
	for i := range entries {
		e := &entries[i]
		switch e.Type {
		case LogCommand:
			a.cmds, a.cmdAt = append(a.cmds, e), append(a.cmdAt, i)
		case LogSession:
			st := a.sessions.begin(e.Index, e.Data)
			a.steps = append(a.steps, indexedStep{at: i, step: st})
			if st.kind == stepApply {
				a.cmds = append(a.cmds, &Log{Index: e.Index, Term: e.Term, Type: LogCommand, Data: st.cmd})
				a.cmdAt = append(a.cmdAt, i)
			}
		}
	}
	a.applyCommands(results)
	for _, s := range a.steps {
		r := &results[s.at]
		r.resp, r.err = a.sessions.finish(s.step, r.resp)
		a.metrics.sessionEntry(sessionResultOf(s.step, r.err))
	}
	if len(a.steps) > 0 {
		a.metrics.sessionCount(len(a.sessions.sessions))
	}
	clear(a.cmds)
	clear(a.steps)
	return results
}

// indexedStep is a session step and the position of its entry in a batch.
type indexedStep struct {
	at   int
	step sessionStep
}

// applyCommands has the FSM apply a.cmds and stores each response in the
// result of its entry.
func (a *applier) applyCommands(results []applyResult) {
	if len(a.cmds) == 0 {
		return
	}
	if bf, ok := a.fsm.(BatchingFSM); ok {
		out := bf.ApplyBatch(a.cmds)
		for j := range min(len(out), len(a.cmds)) {
			results[a.cmdAt[j]].resp = out[j]
		}
		return
	}
	for j, l := range a.cmds {
		results[a.cmdAt[j]].resp = a.fsm.Apply(l)
	}
}

// sessionResultOf names what a session step did, for metrics.
func sessionResultOf(st sessionStep, err error) sessionResult {
	switch {
	case st.kind == stepApply:
		return sessionApplied
	case st.kind == stepCached:
		return sessionDuplicate
	case errors.Is(err, ErrSessionStale):
		return sessionStale
	case err != nil:
		return sessionExpired
	case st.result != nil:
		return sessionRegistered
	default:
		return sessionClosed
	}
}
