package raft

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestTaskRunsAloneAndMissesNoWake: woken from many goroutines, a task
// never runs on two workers at once, and work queued while it runs is
// done by a rerun, not lost.
func TestTaskRunsAloneAndMissesNoWake(t *testing.T) {
	p := newPool(4)
	defer p.close()
	const tasks, wakers, per = 8, 8, 2000
	type counted struct {
		pending, done atomic.Int64
		running       atomic.Bool
		t             *task
	}
	cs := make([]*counted, tasks)
	var overlap atomic.Bool
	for i := range cs {
		c := &counted{}
		c.t = newTask(p.worker(uint64(i)), func() bool {
			if c.running.Swap(true) {
				overlap.Store(true)
			}
			c.done.Add(c.pending.Swap(0))
			runtime.Gosched() // widen the window in which a wake finds it running
			c.running.Store(false)
			return true
		}, func() {})
		cs[i] = c
	}
	var wg sync.WaitGroup
	for w := range wakers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range per {
				c := cs[(w+n)%tasks]
				c.pending.Add(1)
				c.t.wake()
			}
		}()
	}
	wg.Wait()
	for i, c := range cs {
		for c.done.Load() != int64(wakers*per/tasks) {
			if c.t.state.Load() == taskIdle && c.pending.Load() > 0 {
				t.Fatalf("task %d idle with %d units of work never run", i, c.pending.Load())
			}
		}
	}
	if overlap.Load() {
		t.Fatal("a task ran on two workers at once")
	}
}

// TestTaskStopsOnce: a task whose run reports it stopped is never run
// again, and its stopped hook runs once, however often it is woken.
func TestTaskStopsOnce(t *testing.T) {
	p := newPool(2)
	defer p.close()
	var runs, stops atomic.Int64
	var tk *task
	done := make(chan struct{})
	tk = newTask(p.worker(0), func() bool { runs.Add(1); return false }, func() { stops.Add(1); close(done) })
	tk.wake()
	<-done
	for range 100 {
		tk.wake()
	}
	for tk.state.Load() != taskIdle {
	}
	if runs.Load() != 1 || stops.Load() != 1 {
		t.Fatalf("runs %d, stops %d; want 1 and 1", runs.Load(), stops.Load())
	}
}
