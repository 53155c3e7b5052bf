package peers

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft/bench/peers/clusters"
)

// proposerCounts are the numbers of concurrent proposers each library is
// measured with.
var proposerCounts = []int{1, 16, 128}

// cmdSize is the size of every proposed command.
const cmdSize = 128

// leaderTimeout bounds the wait for a cluster to elect its first leader.
const leaderTimeout = clusters.LeaderTimeout

// cluster is a running 3-server cluster of one library with a leader.
type cluster = clusters.Cluster

// syncCounter is a cluster that counts the fsyncs of its servers' logs.
type syncCounter = clusters.SyncCounter

// benchApply runs, for each proposer count, a sub-benchmark in which
// proposers goroutines share b.N Applies on a fresh cluster from start, each
// waiting for its Apply to finish before the next. It reports ops/s and the
// 50th and 99th percentile latency of one Apply, and, for a syncCounter,
// the log fsyncs per Apply (of all three servers).
func benchApply(b *testing.B, start func(b *testing.B) cluster) {
	for _, proposers := range proposerCounts {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) { benchApplyWith(b, start, proposers) })
	}
}

// benchApplyWith is one of benchApply's sub-benchmarks: proposers
// goroutines share b.N Applies on a fresh cluster from start.
func benchApplyWith(b *testing.B, start func(b *testing.B) cluster, proposers int) {
	c := start(b)
	defer c.Shutdown()
	cmd := make([]byte, cmdSize)
	for i := range cmd {
		cmd[i] = byte(i)
	}
	lat := make([][]time.Duration, proposers)
	for p := range lat {
		lat[p] = make([]time.Duration, 0, b.N/proposers+1)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	sc, _ := c.(syncCounter)
	var syncs0 uint64
	if sc != nil {
		syncs0 = sc.Syncs()
	}
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := c.Apply(cmd); err != nil {
					b.Error(err)
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if sc != nil {
		b.ReportMetric(float64(sc.Syncs()-syncs0)/float64(b.N), "fsyncs/op")
	}
	if len(all) > 0 {
		pct := func(q float64) float64 {
			return float64(all[min(len(all)-1, int(q*float64(len(all))))].Nanoseconds()) / 1e3
		}
		b.ReportMetric(pct(0.50), "p50-µs")
		b.ReportMetric(pct(0.99), "p99-µs")
	}
}

// waitFor polls cond every millisecond until it returns true, and fails b
// when it has not within timeout.
func waitFor(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	if err := clusters.WaitFor(timeout, what, cond); err != nil {
		b.Fatal(err)
	}
}
