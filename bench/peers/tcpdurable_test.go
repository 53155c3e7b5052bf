package peers

import (
	"testing"

	"github.com/keelraft/raft/bench/peers/clusters"
)

// BenchmarkKeelTCPDurable measures keel with DefaultConfig over
// transport/tcp on 127.0.0.1, storage/wal Log and Stable and
// storage/filesnap snapshots, all with default options, in b.TempDir()
// (clusters.StartKeelTCPDurable).
func BenchmarkKeelTCPDurable(b *testing.B) { benchApply(b, startKeelTCPDurable) }

// BenchmarkHashicorpTCPDurable measures hashicorp/raft v1.8.0 with its
// DefaultConfig and a silent logger over NewTCPTransport on 127.0.0.1
// (maxPool 3, timeout 10s), hashicorp/raft-wal v0.4.0 as LogStore and
// StableStore and a FileSnapshotStore (retain 2), in b.TempDir()
// (clusters.StartHashicorpTCPDurable).
func BenchmarkHashicorpTCPDurable(b *testing.B) { benchApply(b, startHashicorpTCPDurable) }

// BenchmarkTCPDurableLimits measures the machine's limits for the two
// benchmarks above, in the same run: see tcpDurableLimits.
func BenchmarkTCPDurableLimits(b *testing.B) { tcpDurableLimits(b) }

// startKeelTCPDurable starts clusters.StartKeelTCPDurable in b.TempDir().
func startKeelTCPDurable(b *testing.B) cluster {
	b.Helper()
	c, err := clusters.StartKeelTCPDurable(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// startHashicorpTCPDurable starts clusters.StartHashicorpTCPDurable in
// b.TempDir().
func startHashicorpTCPDurable(b *testing.B) cluster {
	b.Helper()
	c, err := clusters.StartHashicorpTCPDurable(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return c
}
