// Package inmem provides goroutine-safe in-memory implementations of
// raft.LogStore, raft.StableStore and raft.SnapshotStore for tests.
//
// Unlike a plain map-backed store, these stores model durability: every call
// that returns nil is durable, a failed call stores nothing, and Crash
// returns what a server restarted after a crash would find on its disk. That
// lets a test kill a server at any point and check that keel never relies on
// state it did not wait to be persisted.
package inmem
