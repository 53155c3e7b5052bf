package raft

import "sync"

// workQueue hands work from the event loop to one worker goroutine (the
// persister or the applier) without ever blocking the loop. The worker
// takes everything queued at once, which is what batches log writes and
// FSM applies.
type workQueue[T any] struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []T
	closed bool
	// wake, when set, is called after every push and close instead of
	// waking a goroutine waiting in takeAll: the queue's worker is a task
	// on a Host's pool (exec.go), which calls take.
	wake func()
}

func newWorkQueue[T any]() *workQueue[T] {
	q := &workQueue[T]{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *workQueue[T]) push(x T) {
	q.mu.Lock()
	q.items = append(q.items, x)
	q.mu.Unlock()
	q.signal()
}

func (q *workQueue[T]) signal() {
	if q.wake != nil {
		q.wake()
		return
	}
	q.cond.Signal()
}

func (q *workQueue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// takeAll waits for work and returns all of it. Once the queue is closed it
// returns what was left unprocessed and false.
func (q *workQueue[T]) takeAll() ([]T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	items := q.items
	q.items = nil
	return items, !q.closed
}

// take returns what is queued without waiting, and whether the queue is
// still open; once it is closed, what is left was never processed.
func (q *workQueue[T]) take() ([]T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items, !q.closed
}
