package raft

import "io"

// SnapshotMeta describes a stored snapshot.
type SnapshotMeta struct {
	// ID names the snapshot within its store.
	ID string
	// Index and Term are those of the last log entry the snapshot covers.
	Index uint64
	Term  uint64
	// Configuration is the latest configuration as of Index, and
	// ConfigurationIndex the index of the entry that carried it.
	Configuration      Configuration
	ConfigurationIndex uint64
	// Size is the snapshot's length in bytes.
	Size int64
}

// SnapshotStore stores snapshots: a small header of keel's (the client
// session table), then the FSM's bytes. A store treats them as opaque
// bytes.
//
// keel never calls a SnapshotStore, a SnapshotSink or FSMSnapshot.Persist
// on its event loop: snapshots are written, sent, received and restored on
// goroutines of their own (or the applier's), so a store that hangs stalls
// snapshots and log compaction, not heartbeats or commits. A call that
// never returns cannot be interrupted, though: Shutdown waits for it.
type SnapshotStore interface {
	// Create starts a new snapshot. It becomes visible to List and Open only
	// once its sink is closed without error.
	Create(index, term uint64, configuration Configuration, configurationIndex uint64) (SnapshotSink, error)
	// List returns the stored snapshots, newest (highest Index) first.
	List() ([]*SnapshotMeta, error)
	// Open returns a snapshot's metadata and a reader of its contents. The
	// caller closes the reader.
	Open(id string) (*SnapshotMeta, io.ReadCloser, error)
}

// SnapshotSink receives a snapshot's bytes. Close makes the snapshot
// durable and visible; Cancel discards it.
type SnapshotSink interface {
	io.WriteCloser
	// ID returns the ID the snapshot will have once closed.
	ID() string
	// Cancel discards the snapshot.
	Cancel() error
}
