package raft_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
)

// BenchmarkApply measures commits per second of a 3-server cluster in one
// process (in-memory stores and transport), with 128-byte commands from 1,
// 16 and 128 concurrent proposers, each waiting for its command to apply.
func BenchmarkApply(b *testing.B) {
	for _, proposers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			c := newCluster(b, 3, 1, benchConfig)
			l := c.Leader()
			cmd := make([]byte, 128)
			runWorkers(b, proposers, func(int) func() error {
				return func() error { return l.Raft().Apply(context.Background(), cmd).Error() }
			})
		})
	}
}

// benchConfig is the benchmarks' timing: the defaults' heartbeat and
// election timeout, not the test kit's faster ones.
func benchConfig(conf *raft.Config) {
	conf.HeartbeatInterval = 100 * time.Millisecond
	conf.ElectionTimeout = time.Second
}

// runWorkers runs b.N operations from workers goroutines, worker w calling
// the function newOp(w) returns, and reports operations per second.
func runWorkers(b *testing.B, workers int, newOp func(w int) func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	ops := make([]func() error, workers)
	for w := range ops {
		ops[w] = newOp(w)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkRead measures reads per second on a 3-server cluster in one
// process, 16 concurrent readers, beside writes per second on the same
// setup: linearizable reads on the leader (ReadIndex: one heartbeat round
// shared by the reads waiting for it), lease reads on the leader (no
// round trip while the lease holds) and linearizable reads on a follower
// (follower reads: a MsgReadIndex round trip to the leader, then the
// leader's round).
func BenchmarkRead(b *testing.B) {
	const workers = 16
	for _, bc := range []struct {
		name string
		op   func(l, f *raft.Raft) error
	}{
		{"write", func(l, _ *raft.Raft) error { return l.Apply(context.Background(), make([]byte, 128)).Error() }},
		{"forwarded-write", func(_, f *raft.Raft) error { return f.Apply(context.Background(), make([]byte, 128)).Error() }},
		{"readindex", func(l, _ *raft.Raft) error { _, err := l.Read(context.Background(), raft.Linearizable); return err }},
		{"lease", func(l, _ *raft.Raft) error { _, err := l.Read(context.Background(), raft.Lease); return err }},
		{"follower", func(_, f *raft.Raft) error { _, err := f.Read(context.Background(), raft.Linearizable); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b, 3, 1, benchConfig)
			l := c.Leader()
			f := c.Others(l)[0]
			c.apply("warm-up")
			runWorkers(b, workers, func(int) func() error {
				return func() error { return bc.op(l.Raft(), f.Raft()) }
			})
		})
	}
}

// BenchmarkApplySession is BenchmarkApply with each proposer a client with
// a session of its own, numbering its commands: the cost of exactly-once
// over Apply.
func BenchmarkApplySession(b *testing.B) {
	for _, proposers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			c := rafttest.New(b, 3, newSessionFSM, rafttest.WithSeed(1), rafttest.WithConfig(benchConfig))
			l := c.Leader()
			cmd := make([]byte, 128)
			runWorkers(b, proposers, func(int) func() error {
				s, err := l.Raft().RegisterSession(context.Background(), time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				var seq uint64
				return func() error {
					seq++
					return l.Raft().ApplySession(context.Background(), s, seq, cmd).Error()
				}
			})
		})
	}
}
