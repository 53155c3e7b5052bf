package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

const benchEntrySize = 128

// BenchmarkAppend appends 128-byte entries, one per call, from 1, 16 and
// 128 concurrent appenders to a Log on the real file system. Each
// operation is one acknowledged (synced) entry; entries/fsync shows the
// group commit at work.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{Logger: quiet})
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
	}
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
