package raft

import (
	"context"
	"sync"
	"time"
)

// Future is the result of an asynchronous operation.
type Future interface {
	// Error blocks until the operation is done, the context given to the
	// call that returned the future ends, or the server shuts down, and
	// returns nil on success. It may be called any number of times.
	Error() error
}

// IndexFuture is a Future for an operation that took a place in the log.
type IndexFuture interface {
	Future
	// Index returns the log index of the operation's entry. It is valid
	// once Error has returned nil.
	Index() uint64
}

// ApplyFuture is the result of Apply.
type ApplyFuture interface {
	IndexFuture
	// Response returns what FSM.Apply returned for the command. It is valid
	// once Error has returned nil.
	Response() any
}

// future is the one implementation of every future type.
type future struct {
	ctx      context.Context
	shutdown <-chan struct{} // the server's; closed on shutdown

	// Set by the event loop before the entry is proposed.
	log Log
	// start is when the proposal was made, for the commit latency; zero
	// when metrics are off.
	start time.Time

	once     sync.Once
	done     chan struct{}
	err      error
	index    uint64
	response any
}

func newFuture(ctx context.Context, shutdown <-chan struct{}) *future {
	return &future{ctx: ctx, shutdown: shutdown, done: make(chan struct{})}
}

// Error implements Future.
func (f *future) Error() error {
	select {
	case <-f.done:
		return f.err
	default:
	}
	select {
	case <-f.done:
		return f.err
	case <-f.ctx.Done():
		return f.ctx.Err()
	case <-f.shutdown:
		// The outcome of an operation under way at shutdown is unknown,
		// unless it finished.
		select {
		case <-f.done:
			return f.err
		default:
			return ErrRaftShutdown
		}
	}
}

// Index implements IndexFuture.
func (f *future) Index() uint64 {
	select {
	case <-f.done:
		return f.index
	default:
		return 0
	}
}

// Response implements ApplyFuture.
func (f *future) Response() any {
	select {
	case <-f.done:
		return f.response
	default:
		return nil
	}
}

// respond completes the future; only the first call has an effect.
func (f *future) respond(index uint64, response any, err error) {
	f.once.Do(func() {
		f.index, f.response, f.err = index, response, err
		close(f.done)
	})
}

// errorFuture is a future that failed before it started.
func errorFuture(err error) *future {
	f := newFuture(context.Background(), nil)
	f.respond(0, nil, err)
	return f
}
