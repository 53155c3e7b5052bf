package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/internal/vfs"
)

const benchEntrySize = 128

// withMetrics runs f as two sub-benchmarks: metrics=off, without a Sink,
// and metrics=on, with a Recorder, for benchstat -col /metrics.
func withMetrics(b *testing.B, f func(b *testing.B, sink metrics.Sink)) {
	b.Run("metrics=off", func(b *testing.B) { f(b, nil) })
	b.Run("metrics=on", func(b *testing.B) { f(b, metrics.NewRecorder()) })
}

// BenchmarkAppend appends 128-byte entries, one per call, from 1, 16 and
// 128 concurrent appenders to a Log on the real file system, without and
// with metrics. Each operation is one acknowledged (synced) entry;
// entries/fsync shows the group commit at work.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			withMetrics(b, func(b *testing.B, sink metrics.Sink) {
				l, err := Open(b.TempDir(), Options{Logger: quiet, Metrics: sink})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := make([]byte, benchEntrySize)
				var left atomic.Int64
				left.Store(int64(b.N))
				before := l.Stats()
				b.ResetTimer()
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						e := []*raft.Log{{Term: 1, Data: data}}
						for left.Add(-1) >= 0 {
							if _, err := l.Append(e); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				st := l.Stats()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
				b.ReportMetric(float64(st.Entries-before.Entries)/float64(st.Syncs-before.Syncs), "entries/fsync")
			})
		})
	}
}

// BenchmarkAppendMemFS is BenchmarkAppend's single appender on the
// in-memory file system, where a sync costs no more than a copy: the
// Log's own CPU cost per acknowledged entry, and so what metrics add to
// it, which a real disk's fsync latency hides in noise. Segments are 16
// KiB, as MemFS's sync copies a file from its first dirty byte to its
// end; the log's prefix is deleted every 1024 entries, off the clock, to
// bound memory.
func BenchmarkAppendMemFS(b *testing.B) {
	withMetrics(b, func(b *testing.B, sink metrics.Sink) {
		l, err := Open("/wal", Options{SegmentSize: 16 << 10, Align: 512, Logger: quiet, Metrics: sink, fs: vfs.NewMemFS(512)})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		e := []*raft.Log{{Term: 1, Data: make([]byte, benchEntrySize)}}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			first, err := l.Append(e)
			if err != nil {
				b.Fatal(err)
			}
			if i%1024 == 1023 {
				b.StopTimer()
				if err := l.DeleteRange(0, first-1); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	})
}

// BenchmarkRawWriteFsync is this machine's limit for a durable append:
// one 128-byte write followed by a sync, in a file that grows
// ("append+fsync"), and in a preallocated file with fdatasync, as the log
// does ("prealloc+fdatasync").
func BenchmarkRawWriteFsync(b *testing.B) {
	data := make([]byte, benchEntrySize)
	b.Run("append+fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.ResetTimer()
		for range b.N {
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("zerofill+fdatasync", func(b *testing.B) {
		f, err := vfs.OS.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(make([]byte, 64<<20), 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		off := int64(0)
		for range b.N {
			if _, err := f.WriteAt(data, off); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			off = (off + 4096) % (64 << 20)
		}
	})
	b.Run("prealloc+fdatasync", func(b *testing.B) {
		f, err := vfs.OS.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := f.Allocate(64 << 20); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		off := int64(0)
		for range b.N {
			if _, err := f.WriteAt(data, off); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			off = (off + 4096) % (64 << 20)
		}
	})
}

// BenchmarkGetLog reads entries back from a Log on the real file system,
// in index order: 128-byte entries written in batches of 64 (so that most
// entries share a batch with the next, as under load) and of 1 (so that
// each is followed by its batch's padding and commit record), and 16 KiB
// entries written one a batch; without and with metrics.
func BenchmarkGetLog(b *testing.B) {
	for _, c := range []struct{ per, size int }{{1, benchEntrySize}, {64, benchEntrySize}, {1, 16 << 10}} {
		b.Run(fmt.Sprintf("batch=%d/size=%d", c.per, c.size), func(b *testing.B) {
			withMetrics(b, func(b *testing.B, sink metrics.Sink) {
				const n = 4096
				l, err := Open(b.TempDir(), Options{Logger: quiet, Metrics: sink})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := make([]byte, c.size)
				logs := make([]*raft.Log, c.per)
				for i := 0; i < n; i += c.per {
					for j := range logs {
						logs[j] = &raft.Log{Term: 1, Data: data}
					}
					if _, err := l.Append(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				var e raft.Log
				for i := range b.N {
					if err := l.GetLog(uint64(i%n)+1, &e); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkIndexMemory appends 1M 128-byte entries, 128 per call, to a
// Log on the real file system and reports the heap the Log holds for
// them, per entry ("heap-B/entry"), measured after a GC; the same once
// the log is closed and reopened ("reopened-B/entry"), with what Open
// allocated, per entry ("open-alloc-B/entry"); after a prefix
// holding three quarters of them is deleted, per entry still stored
// ("after-prefix-B/entry"); and after a suffix of half the rest
// ("after-suffix-B/entry"). Run it with -benchtime 1x.
func BenchmarkIndexMemory(b *testing.B) {
	const n, per = 1 << 20, 128
	data := make([]byte, benchEntrySize)
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	var full, opening, reopened, prefix, suffix float64
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		logs := make([]*raft.Log, per)
		for j := range logs {
			logs[j] = &raft.Log{Term: 1, Data: data}
		}
		base := heap()
		b.StartTimer()
		l, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i += per {
			if _, err := l.Append(logs); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		full += float64(heap()-base) / n
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		allocated := ms.TotalAlloc
		if l, err = Open(dir, Options{Logger: quiet}); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		opening += float64(ms.TotalAlloc-allocated) / n
		reopened += float64(heap()-base) / n
		if err := l.DeleteRange(1, n/4*3); err != nil {
			b.Fatal(err)
		}
		prefix += float64(heap()-base) / (n / 4)
		if err := l.DeleteRange(n/8*7+1, n); err != nil {
			b.Fatal(err)
		}
		suffix += float64(heap()-base) / (n / 8)
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(full/float64(b.N), "heap-B/entry")
	b.ReportMetric(opening/float64(b.N), "open-alloc-B/entry")
	b.ReportMetric(reopened/float64(b.N), "reopened-B/entry")
	b.ReportMetric(prefix/float64(b.N), "after-prefix-B/entry")
	b.ReportMetric(suffix/float64(b.N), "after-suffix-B/entry")
}
