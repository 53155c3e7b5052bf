package raft

import "time"

// EmptySnapshotHeader returns keel's header of a snapshot without client
// sessions, for tests in package raft_test that write snapshots by hand.
func EmptySnapshotHeader() []byte {
	b, err := encodeSnapshotHeader(newSessionTable())
	if err != nil {
		panic(err)
	}
	return b
}

// SetSessionClock makes c's leader stamp session entries with now instead
// of the wall clock, so that tests can move log time without waiting.
func SetSessionClock(c *Config, now func() time.Time) { c.sessionClock = now }

// PersistQueued is how many jobs wait in r's persister, not yet taken by a
// write.
func PersistQueued(r *Raft) int {
	q := r.persister.jobs
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
