// Package clusters starts the 3-server clusters that bench/peers measures:
// keel and hashicorp/raft over TCP on 127.0.0.1 with durable stores, all
// three servers in the calling process. The benchmarks (package peers) and
// the memory program (cmd/memory) share this setup, so both measure the
// same thing.
package clusters

import (
	"fmt"
	"time"
)

// LeaderTimeout bounds the wait of a Start function for the cluster's first
// leader.
const LeaderTimeout = 15 * time.Second

// Cluster is a running 3-server cluster of one library with a leader.
type Cluster interface {
	// Apply proposes cmd on the leader and waits until it has been
	// applied there.
	Apply(cmd []byte) error
	// Shutdown stops every server and then closes its stores and
	// transport.
	Shutdown()
}

// SyncCounter is a Cluster that counts the fsyncs of its servers' logs.
type SyncCounter interface {
	// Syncs returns how many fsyncs the logs of all three servers have done
	// so far.
	Syncs() uint64
}

// WaitFor polls cond every millisecond until it returns true, and returns
// an error naming what when it has not within timeout.
func WaitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %v", what, timeout)
		}
		<-poll.C
	}
	return nil
}
