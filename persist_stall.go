package raft

import (
	"sync/atomic"
	"time"
)

// persistStall is the persister's part in hard-state writes and in
// detecting a stalled disk (stall_driver.go), embedded in persister.
//
// Term and vote are written by the persister, in order with the log
// entries (before the entries of the same ready), rather than by the event
// loop: a StableStore that hangs then hangs the persister alone, and the
// loop goes on ticking, sees the stall and reports it. Every message the
// loop would send while such a write is outstanding goes with the job and
// leaves after it (Raft.holdForHardState), so term and vote are still
// durable before any message that depends on them leaves.
type persistStall struct {
	// stable is where term and vote go.
	stable StableStore
	// busySince is when the group of jobs under way (its writes, and the
	// reads of evicted entries done with them) began, in Unix
	// nanoseconds; 0 while the persister waits for work. On a Host it is
	// when the jobs were handed to the persist worker. The event loop
	// reads it.
	busySince atomic.Int64
	// hardStates counts the jobs carrying a hard state that were
	// submitted and are not done (written, and their messages sent).
	hardStates atomic.Int64
	// queuedMsgs counts the messages of submitted jobs not yet sent.
	queuedMsgs atomic.Int64
}

// maxQueuedMsgs bounds the messages waiting in the persister's jobs. While
// a write hangs, every answer the server gives waits behind it; beyond
// this many the loop drops new ones instead (Raft tolerates lost
// messages: the leader repeats heartbeats and resends appends), so a long
// stall cannot grow the queue without bound.
const maxQueuedMsgs = 4096

// hardStatePending reports whether a hard state handed to the persister
// is not yet durable, or its job's messages not yet sent.
func (p *persister) hardStatePending() bool { return p.hardStates.Load() > 0 }

// writeHardState makes hs durable, after the entries batched so far (the
// writes of earlier readies stay in order).
func (p *persister) writeHardState(hs *hardState) error {
	if err := p.store(); err != nil {
		return err
	}
	start := p.metrics.now()
	if err := saveHardState(p.stable, *hs); err != nil {
		return err
	}
	if p.syncer != nil {
		p.staged(0, true, start)
	} else {
		p.metrics.stableWritten(start)
	}
	return nil
}

// beginWrite and endWrite bracket a group of jobs, for busySince. On a
// Host a persister's jobs may wait for its worker: busySince is then set
// when they are handed over (persistPartition.attach), and beginWrite
// keeps that earlier time.
func (p *persister) beginWrite() { p.busySince.CompareAndSwap(0, time.Now().UnixNano()) }
func (p *persister) endWrite()   { p.busySince.Store(0) }

// jobDone counts a job with a hard state done, once its messages are sent.
func (p *persister) jobDone(j *persistJob) {
	if j.hardState != nil {
		p.hardStates.Add(-1)
	}
}
