package raft

// EmptySnapshotHeader returns keel's header of a snapshot without client
// sessions, for tests in package raft_test that write snapshots by hand.
func EmptySnapshotHeader() []byte {
	b, err := encodeSnapshotHeader(newSessionTable())
	if err != nil {
		panic(err)
	}
	return b
}
