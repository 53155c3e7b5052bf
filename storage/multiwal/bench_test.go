package multiwal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keelraft/raft"
)

// BenchmarkGroupCommit appends 128-byte entries, one per StoreLogs call,
// from 1, 16, 64 or 256 groups concurrently (one goroutine each) on the
// real disk, and reports entries/s and fsyncs/entry.
func BenchmarkGroupCommit(b *testing.B) {
	for _, groups := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			w, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 128)
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for gid := range uint64(groups) {
				wg.Go(func() {
					g, _ := w.Group(gid + 1)
					for idx := uint64(1); left.Add(-1) >= 0; idx++ {
						if err := g.StoreLogs([]*raft.Log{{Index: idx, Term: 1, Data: data}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := w.Stats()
			b.ReportMetric(float64(st.Entries)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(st.Fsyncs)/float64(st.Entries), "fsyncs/entry")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
