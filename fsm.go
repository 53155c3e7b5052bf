package raft

import "io"

// FSM is the application's replicated state machine.
//
// keel calls Apply, Snapshot and Restore from one goroutine (the applier),
// never concurrently with each other, so an FSM needs no locking against
// keel; it needs locking only against its own readers.
type FSM interface {
	// Apply applies a committed LogCommand entry. Every server applies the
	// same entries in the same order, exactly once. The return value is
	// handed to the ApplyFuture of the server that proposed the entry.
	// Apply must be deterministic: it may depend only on the FSM's state and
	// the entry. A command sent through a client session (ApplySession)
	// arrives the same way, as a LogCommand entry whose Data is the
	// command, once per sequence number; its response must be nil, a
	// []byte, a string or an error, which keel keeps for retries.
	Apply(*Log) any

	// Snapshot captures the FSM's state at this point. It should be quick:
	// the expensive work belongs in FSMSnapshot.Persist, which runs while
	// Apply goes on.
	Snapshot() (FSMSnapshot, error)

	// Restore replaces the FSM's state with a snapshot's. The FSM must
	// discard its previous state.
	Restore(snapshot io.ReadCloser) error
}

// BatchingFSM is an FSM that can apply several committed entries at once,
// which lets it amortise work such as a database transaction. When an FSM
// implements it, keel calls ApplyBatch instead of Apply.
type BatchingFSM interface {
	FSM
	// ApplyBatch applies the entries in order and returns one response per
	// entry, in the same order.
	ApplyBatch([]*Log) []any
}

// FSMSnapshot is a point-in-time state of the FSM, returned by FSM.Snapshot.
type FSMSnapshot interface {
	// Persist writes the snapshot to sink and then closes it, or cancels
	// the sink (sink.Cancel) on error. keel has written a header of its
	// own to sink first; FSM.Restore gets exactly the bytes Persist wrote.
	Persist(sink SnapshotSink) error
	// Release is called when keel is done with the snapshot.
	Release()
}
