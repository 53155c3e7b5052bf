// Package rafttest runs a whole keel cluster inside a Go test, so that you can
// test your state machine (and the service around it) against real Raft:
// leader elections, replication, crashes, restarts and network partitions.
//
// New starts N servers in one call, on in-memory stores (or, with
// WithDurableStores, on the WAL, the durable stable store and the file
// snapshot store in t.TempDir()) and the in-memory transport, each with an
// FSM from your factory:
//
//	func TestMyFSM(t *testing.T) {
//		c := rafttest.New(t, 3, func() raft.FSM { return NewMyFSM() })
//		c.Apply([]byte("set x=1"))        // on the leader, following leader changes
//		c.Crash(c.Leader())               // a new leader takes over
//		c.Apply([]byte("set y=2"))
//		c.RequireFSMsAgree(myFSMsEqual)   // every live server applied the same
//	}
//
// Everything is tied to the testing.TB: the cluster shuts down in t.Cleanup,
// after which the kit checks that no goroutine started by the cluster is
// still running.
//
// Every helper that waits polls its condition until it holds or the
// cluster's timeout (WithTimeout, default 10s) passes, never sleeping a fixed
// time; when the condition does not hold it fails the test with t.Fatalf and
// a message that names the servers and their state. Call the helpers from
// the test's goroutine, as t.Fatalf requires. Server's accessors are safe
// for concurrent use.
//
// # Determinism
//
// The network's random fault choices (which messages a lossy network drops)
// come from one seed: WithSeed, or by default a hash of the test's name, so a
// test gets the same seed on every run. When a test fails, the seed is
// logged. Goroutine scheduling and keel's randomized election timeouts are
// not seeded, so a failure is not always replayed exactly.
//
// # Commands applied twice
//
// Cluster.Apply retries when the leader changes under it. A command whose
// first attempt had an unknown outcome (the leader lost leadership or the
// attempt timed out) may have committed anyway, and is then applied twice;
// tests that count commands should make each one unique or idempotent, as a
// real client must.
package rafttest
