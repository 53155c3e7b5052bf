package raft

import (
	"sync"
	"sync/atomic"
)

// applyBatch is committed entries for the FSM and the futures waiting on
// some of them, both in index order.
type applyBatch struct {
	entries []Log
	futures []*future
	// op, when set, runs on the applier in place of entries: taking or
	// restoring a snapshot, in order with applies.
	op func()
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

	cmds []*Log // reused ApplyBatch argument

	// The term and configuration as of applied, for snapshots taken at
	// this point (applier goroutine only).
	lastTerm  uint64
	conf      Configuration
	confIndex uint64
}

func newApplier(fsm FSM, applied uint64, notify func()) *applier {
	a := &applier{fsm: fsm, notify: notify, queue: newWorkQueue[applyBatch](), changedCh: make(chan struct{})}
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
			for _, b := range queue {
				for _, f := range b.futures {
					f.respond(0, nil, ErrRaftShutdown)
				}
			}
			return
		}
		for _, b := range queue {
			a.apply(b)
		}
		a.mu.Lock()
		close(a.changedCh)
		a.changedCh = make(chan struct{})
		a.mu.Unlock()
		a.notify()
	}
}

// apply applies one batch: commands go to the FSM (in one ApplyBatch call
// when it is a BatchingFSM), other entries only complete their futures.
func (a *applier) apply(b applyBatch) {
	if b.op != nil {
		b.op()
		return
	}
	a.track(b.entries)
	responses := a.applyCommands(b.entries)
	// Published before futures complete: a caller whose Apply returned sees
	// AppliedIndex at or past its entry.
	a.applied.Store(b.entries[len(b.entries)-1].Index)
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
		f.respond(f.log.Index, responses[i], nil)
	}
}

// applyCommands applies the LogCommand entries and returns a response per
// entry (nil for other types).
func (a *applier) applyCommands(entries []Log) []any {
	responses := make([]any, len(entries))
	if bf, ok := a.fsm.(BatchingFSM); ok {
		a.cmds = a.cmds[:0]
		for i := range entries {
			if entries[i].Type == LogCommand {
				a.cmds = append(a.cmds, &entries[i])
			}
		}
		if len(a.cmds) == 0 {
			return responses
		}
		out := bf.ApplyBatch(a.cmds)
		j := 0
		for i := range entries {
			if entries[i].Type == LogCommand {
				if j < len(out) {
					responses[i] = out[j]
				}
				j++
			}
		}
		clear(a.cmds)
		return responses
	}
	for i := range entries {
		if entries[i].Type == LogCommand {
			responses[i] = a.fsm.Apply(&entries[i])
		}
	}
	return responses
}
