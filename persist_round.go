package raft

import (
	"fmt"
	"reflect"
	"sync"
	"time"
)

// On a Host, each persist worker writes its groups' logs in rounds: it
// takes every group that has jobs, queues their writes through the staged
// views of their SharedLogStores, makes them durable with one Sync per
// shared log, and only then acknowledges any of them. All the groups
// ready on a worker thus share one write and one fsync; the Syncs of
// different workers share fsyncs too, by the log's group commit. Groups
// whose stores cannot stage are written after that Sync, one after the
// other, as their own persister would.

// persistPartition is one persist worker's groups.
type persistPartition struct {
	task *task

	// A round's groups, kept between rounds for their capacity; the
	// worker's.
	staged, plain []roundJobs
	syncs         []syncResult

	mu    sync.Mutex
	ready []*persister // the groups woken since the round began
	spare []*persister
}

func newPersistPartition(w *worker) *persistPartition {
	pp := &persistPartition{}
	pp.task = newTask(w, pp.round, func() {})
	return pp
}

// hostedPersist is a persister's part in its partition's rounds; the
// partition's worker owns it.
type hostedPersist struct {
	queued  bool   // in the partition's ready list; guarded by its mu
	stopped func() // called once the persister stops
	done    bool
}

// attach makes p a member of pp: its wakes put it in the next round.
// stopped is called, on the worker, once p's queue is closed or it
// failed.
func (pp *persistPartition) attach(p *persister, stopped func()) {
	p.hosted = &hostedPersist{stopped: stopped}
	p.jobs.wake = func() {
		// The wait for the worker counts toward a disk stall: a round
		// held up in a hung fsync holds up every group behind it.
		if p.busySince.Load() == 0 {
			p.busySince.CompareAndSwap(0, time.Now().UnixNano())
		}
		pp.mu.Lock()
		if !p.hosted.queued {
			p.hosted.queued = true
			pp.ready = append(pp.ready, p)
		}
		pp.mu.Unlock()
		pp.task.wake()
	}
}

// stageStores makes p write through the staged view of logs when logs is
// a SharedLogStore that is also the group's StableStore.
func (p *persister) stageStores(logs LogStore, stable StableStore) {
	shared, ok := logs.(SharedLogStore)
	if !ok || !sameValue(shared, stable) {
		return
	}
	v := shared.Staged()
	p.logs, p.stable, p.syncer = v, v, v.Syncer()
}

// sameValue reports whether a and b are the same comparable value.
func sameValue(a, b any) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// roundJobs is one group's share of a round: its jobs and, for a staged
// group, what writing them returned.
type roundJobs struct {
	p    *persister
	jobs []persistJob
	last *Log
	err  error
}

// syncResult is a round's Sync of one shared log (there is usually one).
type syncResult struct {
	s   Syncer
	err error
}

// sync returns the outcome of s's Sync in this round, calling it the
// first time. (Syncers that cannot be compared are each synced.)
func (pp *persistPartition) sync(s Syncer) error {
	for _, r := range pp.syncs {
		if sameValue(r.s, s) {
			return r.err
		}
	}
	err := s.Sync()
	if err != nil {
		err = fmt.Errorf("raft: sync log: %w", err)
	}
	pp.syncs = append(pp.syncs, syncResult{s, err})
	return err
}

// round runs one round of the partition's ready groups; it always
// returns true, the partition lasting as long as its pool.
func (pp *persistPartition) round() bool {
	pp.mu.Lock()
	ready := pp.ready
	pp.ready = pp.spare[:0]
	for _, p := range ready {
		p.hosted.queued = false
	}
	pp.mu.Unlock()

	staged, plain := pp.staged[:0], pp.plain[:0]
	for _, p := range ready {
		h := p.hosted
		if h.done {
			continue
		}
		jobs, open := p.jobs.take()
		switch {
		case !open:
			h.stop()
		case len(jobs) == 0:
			p.endWrite()
		case p.syncer == nil:
			plain = append(plain, roundJobs{p: p, jobs: jobs})
		default:
			p.beginWrite()
			last, err := p.write(jobs)
			staged = append(staged, roundJobs{p: p, jobs: jobs, last: last, err: err})
		}
	}

	for _, s := range staged {
		err := s.err
		if err == nil {
			if err = pp.sync(s.p.syncer); err == nil {
				s.p.synced()
			}
		}
		if !s.p.finish(s.jobs, s.last, err) {
			s.p.hosted.stop()
		}
	}
	// Stores of their own, each synced by its own writes, after the shared
	// Sync so as not to hold it up.
	for _, s := range plain {
		if !s.p.process(s.jobs) {
			s.p.hosted.stop()
		}
	}

	clear(staged)
	clear(plain)
	clear(pp.syncs)
	pp.staged, pp.plain, pp.syncs = staged[:0], plain[:0], pp.syncs[:0]
	clear(ready)
	now := time.Now().UnixNano()
	pp.mu.Lock()
	pp.spare = ready[:0]
	for _, p := range pp.ready {
		// Woken during the round, and perhaps cleared by its endWrite.
		p.busySince.CompareAndSwap(0, now)
	}
	pp.mu.Unlock()
	return true
}

func (h *hostedPersist) stop() {
	if !h.done {
		h.done = true
		h.stopped()
	}
}

// unsynced is what a persister with a staged view has queued since its
// last Sync, for the write-latency metrics, which time a write until it
// is durable.
type unsynced struct {
	stagedEntries int
	stableStaged  bool
	stagedSince   time.Time
}

// staged counts n entries, or a hard state, queued at start.
func (p *persister) staged(n int, hardState bool, start time.Time) {
	if p.stagedEntries == 0 && !p.stableStaged {
		p.stagedSince = start
	}
	p.stagedEntries += n
	p.stableStaged = p.stableStaged || hardState
}

// sync makes what p queued durable, on its own: mid-round, before a
// compaction.
func (p *persister) sync() error {
	if err := p.syncer.Sync(); err != nil {
		return fmt.Errorf("raft: sync log: %w", err)
	}
	p.synced()
	return nil
}

// synced records the writes a Sync made durable.
func (p *persister) synced() {
	if p.stagedEntries > 0 {
		p.metrics.logWritten(p.stagedEntries, p.stagedSince)
	}
	if p.stableStaged {
		p.metrics.stableWritten(p.stagedSince)
	}
	p.unsynced = unsynced{}
}
