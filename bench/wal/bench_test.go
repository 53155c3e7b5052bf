// Package walbench compares keel's write-ahead log with
// github.com/hashicorp/raft-wal, measured the same way, beside the
// machine's limit for a durable append. It is a separate module so that
// keel never depends on raft-wal.
//
//	cd bench/wal && go test -run '^$' -bench . -benchtime 3s
package walbench

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	hraft "github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/wal"
)

const entrySize = 128

var appenders = []int{1, 16, 128}

// run calls appendOne b.N times from n goroutines and reports appends/s.
func run(b *testing.B, n int, appendOne func() error) {
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := appendOne(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppend appends one 128-byte entry per call from 1, 16 and 128
// concurrent appenders, each call returning once its entry is durable.
//
// keel's Append assigns the index and coalesces concurrent callers into
// one write and one fsync. raft-wal's StoreLogs needs the caller to supply
// the next index and serialises writers itself, so its appenders take a
// mutex around choosing the index and calling StoreLogs: that is the only
// correct way to append to it concurrently.
func BenchmarkAppend(b *testing.B) {
	data := make([]byte, entrySize)
	for _, n := range appenders {
		b.Run(fmt.Sprintf("store=keel/appenders=%d", n), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), wal.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			before := l.Stats()
			run(b, n, func() error {
				_, err := l.Append([]*raft.Log{{Term: 1, Data: data}})
				return err
			})
			st := l.Stats()
			b.ReportMetric(float64(st.Entries-before.Entries)/float64(st.Syncs-before.Syncs), "entries/fsync")
		})
		b.Run(fmt.Sprintf("store=raft-wal/appenders=%d", n), func(b *testing.B) {
			dir, err := os.MkdirTemp("", "raftwal-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			w, err := raftwal.Open(dir)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			var mu sync.Mutex
			next := uint64(1)
			run(b, n, func() error {
				mu.Lock()
				defer mu.Unlock()
				err := w.StoreLogs([]*hraft.Log{{Index: next, Term: 1, Type: hraft.LogCommand, Data: data}})
				next++
				return err
			})
			// raft-wal fsyncs once per StoreLogs call.
			b.ReportMetric(1, "entries/fsync")
		})
	}
}

// BenchmarkRawWriteFsync is the machine's limit: one 128-byte write and an
// fsync per operation, appending to a file.
func BenchmarkRawWriteFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, entrySize)
	b.ResetTimer()
	for range b.N {
		if _, err := f.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
