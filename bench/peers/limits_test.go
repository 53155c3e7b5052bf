package peers

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// tcpDurableLimits is BenchmarkTCPDurableLimits, in tcpdurable_test.go so
// that it runs after the libraries' benchmarks (its files' write-back and
// removal must not disturb them). It measures what the machine allows
// them, in the same kind of temporary directory and on the same loopback:
//
//   - fdatasync: one durable append, a 4 KiB write into a pre-written file
//     then fdatasync, as storage/wal does for a small batch (p50, p99 and
//     fsyncs/s);
//   - fdatasync-x3: three such streams at once, as the three servers of a
//     cluster share the disk (each append's latency; fsyncs/s of the three
//     together);
//   - rtt: a 200-byte message and a 40-byte reply over TCP on 127.0.0.1.
//
// With one proposer the best a library can do per command is about
// max(leader fsync, RTT + follower fsync) when its leader sends its
// appends before its own log write (thesis §10.2.1), and leader fsync +
// RTT + follower fsync when it writes first, as hashicorp/raft does.
//
// The three streams of fdatasync-x3 are goroutines in fdatasync, and a
// goroutine in a system call keeps its P until the runtime notices the
// call is slow: with GOMAXPROCS=2, two fdatasyncs hold both Ps and the
// third stream waits to start. That wait is part of what the libraries'
// servers see, but not of what the disk can do, so fdatasync-x3 raises
// GOMAXPROCS to 8 while it runs.
func tcpDurableLimits(b *testing.B) {
	b.Run("fdatasync", func(b *testing.B) {
		s := newSyncer(b)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		begin := time.Now()
		for range b.N {
			t0 := time.Now()
			s.append()
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "fsyncs/s")
		reportLatency(b, lat)
	})
	b.Run("fdatasync-x3", func(b *testing.B) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(8, runtime.GOMAXPROCS(0))))
		ss := []*syncer{newSyncer(b), newSyncer(b), newSyncer(b)}
		var mu sync.Mutex
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		begin := time.Now()
		var wg sync.WaitGroup
		for i, s := range ss {
			n := b.N / 3
			if i == 0 {
				n += b.N % 3
			}
			wg.Go(func() {
				mine := make([]time.Duration, 0, n)
				for range n {
					t0 := time.Now()
					s.append()
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "fsyncs/s")
		reportLatency(b, lat)
	})
	b.Run("rtt", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 200)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf[:40]); err != nil {
					return
				}
			}
		})
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		msg, reply := make([]byte, 200), make([]byte, 40)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, reply); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

// syncerFile is the size of a syncer's file; appends wrap around in it.
const syncerFile = 2 << 20

// syncer appends 4 KiB blocks to a file in b.TempDir() that was written
// with zeros and synced first, so that an fdatasync flushes data only.
type syncer struct {
	f   *os.File
	off int64
	buf []byte
}

func newSyncer(b *testing.B) *syncer {
	b.Helper()
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "sync"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(make([]byte, syncerFile), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	logTempDirOnce.Do(func() { b.Logf("temporary directories: %s, on %s", filepath.Dir(dir), fsType(dir)) })
	return &syncer{f: f, buf: make([]byte, 4096)}
}

var logTempDirOnce sync.Once

func (s *syncer) append() {
	if _, err := s.f.WriteAt(s.buf, s.off); err != nil {
		panic(err)
	}
	if err := fdatasync(s.f); err != nil {
		panic(err)
	}
	s.off = (s.off + int64(len(s.buf))) % syncerFile
}
