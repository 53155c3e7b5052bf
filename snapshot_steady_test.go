package raft_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// Under constant load, every server's log stays bounded: it is compacted
// behind each snapshot. KEEL_STEADY_SECONDS=60 runs it for a minute and
// logs the figures (log length, heap, RSS).
func TestSteadyStateLogBounded(t *testing.T) {
	d := 2 * time.Second
	if s := os.Getenv("KEEL_STEADY_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		d = time.Duration(n) * time.Second
	}
	threshold, trailing := uint64(2000), uint64(500)
	if raceEnabled {
		threshold, trailing = 500, 200 // the race detector slows the load down
	}
	// A state machine of bounded size (a counter and 64 KiB), so that
	// what grows is keel's.
	c := &cluster{rafttest.New(t, 3, func() raft.FSM { return &blobFSM{size: 64 << 10} }, rafttest.WithSeed(13),
		rafttest.WithConfig(func(cf *raft.Config) {
			cf.SnapshotThreshold = threshold
			cf.TrailingLogs = trailing
			cf.SnapshotInterval = 5 * time.Millisecond
		})), t}
	l := c.Leader()

	// Four clients, each waiting for its command: a steady load.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Raft().Apply(context.Background(), fmt.Appendf(nil, "w%d-%d", w, i)).Error(); err != nil {
					t.Errorf("apply: %v", err)
					return
				}
				mu.Lock()
				applied++
				mu.Unlock()
			}
		}()
	}
	var maxLen uint64
	var maxHeap uint64
	var ms runtime.MemStats
	deadline := time.Now().Add(d)
	tk := time.NewTicker(10 * time.Millisecond)
	for time.Now().Before(deadline) {
		<-tk.C
		for _, s := range c.Servers() {
			first, _ := s.LogStore().FirstIndex()
			last, _ := s.LogStore().LastIndex()
			if first > 0 {
				maxLen = max(maxLen, last-first+1)
			}
		}
		runtime.ReadMemStats(&ms)
		maxHeap = max(maxHeap, ms.HeapInuse)
	}
	tk.Stop()
	close(stop)
	wg.Wait()
	mu.Lock()
	n := applied
	mu.Unlock()
	t.Logf("%v: %d commands (%.0f/s), longest log %d entries (threshold %d + trailing %d), peak heap in use %.1f MiB, RSS %s",
		d, n, float64(n)/d.Seconds(), maxLen, threshold, trailing, float64(maxHeap)/(1<<20), rss())
	require.Greater(t, uint64(n), 3*threshold, "enough load to snapshot several times")
	// The threshold is checked every SnapshotInterval and the snapshot is
	// taken while commands go on: allow up to one more threshold of
	// entries for what arrives meanwhile. Unbounded, the log would hold
	// every command.
	require.Less(t, maxLen, 2*threshold+trailing, "log length")
}

// rss returns the process's resident set size, from /proc on Linux.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
