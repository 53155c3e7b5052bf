// Package raft is keel, an embeddable implementation of the Raft consensus
// protocol.
//
// An application implements FSM, chooses a LogStore, StableStore,
// SnapshotStore and Transport, and calls NewRaft on every server. keel
// elects a leader, replicates the commands given to Apply, and applies them
// to every server's FSM in the same order, exactly once, while a majority of
// servers is up and can reach each other. A client that retries commands
// whose outcome it could not learn gets exactly-once semantics from client
// sessions (RegisterSession, ApplySession), with no help from the FSM.
//
// All Raft state is owned by one goroutine, and the protocol logic it runs
// is deterministic: no clock, goroutines, I/O or global randomness. That is
// what lets keel's tests drive whole clusters from a seed.
package raft
