package raft_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
)

// BenchmarkApply measures commits per second of a 3-server cluster in one
// process (in-memory stores and transport), with 128-byte commands from 1,
// 16 and 128 concurrent proposers, each waiting for its command to apply.
func BenchmarkApply(b *testing.B) {
	for _, proposers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			c := newCluster(b, 3, 1, func(conf *raft.Config) {
				conf.HeartbeatInterval = 100 * time.Millisecond
				conf.ElectionTimeout = time.Second
			})
			l := c.Leader()
			cmd := make([]byte, 128)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for p := 0; p < proposers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := l.Raft().Apply(context.Background(), cmd).Error(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}
