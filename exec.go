package raft

import (
	"sync"
	"sync/atomic"
)

// A Host runs the event loops, persisters and appliers of many groups on
// fixed pools of goroutines instead of goroutines of their own. Each such
// component is a task: woken when work arrives for it, run by a pool
// worker, never on two goroutines at once, so it keeps the single-owner
// rule a goroutine of its own gives it.

// Task states. A wake while the task runs makes it run again once it is
// done, so no work that arrives meanwhile is missed.
const (
	taskIdle uint32 = iota
	taskQueued
	taskRunning
	taskRerun
)

// task is one component's work on a pool.
type task struct {
	// run does the pending work; it returns false once the component has
	// stopped, after which the task does nothing and stopped is called.
	run     func() bool
	stopped func()
	w       *worker
	state   atomic.Uint32
	done    bool // the worker running the task owns it
}

func newTask(w *worker, run func() bool, stopped func()) *task {
	return &task{run: run, stopped: stopped, w: w}
}

// wake makes the task run soon.
func (t *task) wake() {
	for {
		switch t.state.Load() {
		case taskIdle:
			if t.state.CompareAndSwap(taskIdle, taskQueued) {
				t.w.push(t)
				return
			}
		case taskRunning:
			if t.state.CompareAndSwap(taskRunning, taskRerun) {
				return
			}
		default: // queued or already due to run again
			return
		}
	}
}

func (t *task) exec() {
	t.state.Store(taskRunning)
	for {
		if !t.done && !t.run() {
			t.done = true
			t.stopped()
		}
		if t.state.CompareAndSwap(taskRunning, taskIdle) {
			return
		}
		t.state.Store(taskRunning) // woken while it ran
	}
}

// worker is one goroutine of a pool, running the tasks queued to it in
// turn.
type worker struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*task
	closed bool
}

func (w *worker) push(t *task) {
	w.mu.Lock()
	w.queue = append(w.queue, t)
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *worker) run() {
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.queue) == 0 {
			w.mu.Unlock()
			return
		}
		t := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		w.mu.Unlock()
		t.exec()
	}
}

// pool is a fixed set of workers; a task stays on the worker its key
// picks, so one group's tasks of a kind share a goroutine's cache.
type pool struct {
	workers []*worker
	wg      sync.WaitGroup
}

func newPool(n int) *pool {
	p := &pool{workers: make([]*worker, n)}
	p.wg.Add(n)
	for i := range p.workers {
		w := &worker{}
		w.cond = sync.NewCond(&w.mu)
		p.workers[i] = w
		go func() { defer p.wg.Done(); w.run() }()
	}
	return p
}

func (p *pool) worker(key uint64) *worker { return p.workers[key%uint64(len(p.workers))] }

// close stops the workers once the tasks queued to them have run, and
// waits for them.
func (p *pool) close() {
	for _, w := range p.workers {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.cond.Signal()
	}
	p.wg.Wait()
}
