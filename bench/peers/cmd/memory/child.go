package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelraft/raft/bench/peers/clusters"
)

// cmdSize is the size of every command.
const cmdSize = 128

// pollInterval is how often a child samples its heap and goroutines.
const pollInterval = 100 * time.Millisecond

// starters are the clusters a child can measure, by library name.
var starters = map[string]func(dir string) (clusters.Cluster, error){
	"keel":      clusters.StartKeelTCPDurable,
	"hashicorp": clusters.StartHashicorpTCPDurable,
}

// Result is what a child reports, as JSON on its stdout.
type Result struct {
	Library string `json:"library"`
	Clients int    `json:"clients"`
	// GOMAXPROCS is the child's runtime.GOMAXPROCS.
	GOMAXPROCS int `json:"gomaxprocs"`
	// Seconds is the length of the measured window: from the start of the
	// clients to the last sample.
	Seconds float64 `json:"seconds"`
	// Ops is the number of Applies that completed within the window.
	Ops       uint64  `json:"ops"`
	OpsPerSec float64 `json:"ops_per_s"`
	// P50Micros and P99Micros are percentiles of the time of one Apply,
	// over every Apply that completed, in microseconds (within 1/32).
	P50Micros float64 `json:"p50_us"`
	P99Micros float64 `json:"p99_us"`
	// PeakRSS is VmHWM at the end of the window: the peak resident set
	// size of the child process, setup included.
	PeakRSS uint64 `json:"peak_rss_bytes"`
	// EndRSS is VmRSS at the end of the window, before shutdown.
	EndRSS uint64 `json:"end_rss_bytes"`
	// PeakHeap is the largest sampled /memory/classes/heap/objects:bytes:
	// live objects and dead ones not yet swept.
	PeakHeap uint64 `json:"peak_heap_bytes"`
	// PeakLiveHeap is the largest sampled /gc/heap/live:bytes, the heap
	// marked live by the last garbage collection.
	PeakLiveHeap uint64 `json:"peak_live_heap_bytes"`
	// PeakGoroutines is the largest sampled goroutine count, the clients'
	// goroutines and the child's main goroutine included.
	PeakGoroutines uint64 `json:"peak_goroutines"`
	// FsyncsPerOp is, for keel, the log fsyncs of all three servers per
	// Apply completed within the window.
	FsyncsPerOp *float64 `json:"fsyncs_per_op,omitempty"`
	// Stopped, when not empty, says why the window ended before
	// -duration (the resident set above -maxrss-mib).
	Stopped string `json:"stopped,omitempty"`
	// Series holds a sample every -sample interval when one was asked
	// for, the first before the clients start, the last at the end of the
	// window.
	Series []Sample `json:"series,omitempty"`
}

// Sample is one point of a child's time series.
type Sample struct {
	Seconds float64 `json:"seconds"`
	RSS     uint64  `json:"rss_bytes"`
	Heap    uint64  `json:"heap_bytes"`
	Ops     uint64  `json:"ops"`
}

// childOptions say what one child measures.
type childOptions struct {
	library    string
	clients    int
	duration   time.Duration
	sample     time.Duration // 0: no series
	memprofile string        // "": no heap profile
	maxRSS     uint64        // 0: no limit
}

// runtimeSampler reads the runtime's heap and goroutine metrics without
// allocating and without stopping the world.
type runtimeSampler struct {
	samples []metrics.Sample
}

const (
	metricHeap       = "/memory/classes/heap/objects:bytes"
	metricLiveHeap   = "/gc/heap/live:bytes"
	metricGoroutines = "/sched/goroutines:goroutines"
)

func newRuntimeSampler() *runtimeSampler {
	return &runtimeSampler{samples: []metrics.Sample{{Name: metricHeap}, {Name: metricLiveHeap}, {Name: metricGoroutines}}}
}

// read returns the heap in use, the live heap and the goroutine count.
func (s *runtimeSampler) read() (heap, live, goroutines uint64) {
	metrics.Read(s.samples)
	return s.samples[0].Value.Uint64(), s.samples[1].Value.Uint64(), s.samples[2].Value.Uint64()
}

// runChild measures one library in this process: it starts the cluster in
// a temporary directory, runs o.clients closed-loop clients for
// o.duration, sampling every pollInterval, and shuts the cluster down.
func runChild(o childOptions) (*Result, error) {
	start, ok := starters[o.library]
	if !ok {
		return nil, fmt.Errorf("unknown library %q", o.library)
	}
	if o.clients < 1 {
		return nil, fmt.Errorf("%d clients: need at least 1", o.clients)
	}
	// The profile's file is created first, so that a bad path fails
	// before the measurement rather than after it.
	var prof *os.File
	if o.memprofile != "" {
		f, err := os.Create(o.memprofile)
		if err != nil {
			return nil, fmt.Errorf("heap profile: %w", err)
		}
		prof = f
		defer prof.Close()
	}
	dir, err := os.MkdirTemp("", "keel-memory-"+o.library+"-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	c, err := start(dir)
	if err != nil {
		return nil, err
	}
	defer c.Shutdown()
	sc, _ := c.(clusters.SyncCounter)

	rs := newRuntimeSampler()
	res := &Result{Library: o.library, Clients: o.clients, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	var (
		lat     hist
		ops     atomic.Uint64
		stop    atomic.Bool
		wg      sync.WaitGroup
		errOnce sync.Once
		failed  = make(chan struct{})
		runErr  error
	)
	if o.sample > 0 {
		m, err := readMemStatus()
		if err != nil {
			return nil, err
		}
		heap, _, _ := rs.read()
		res.Series = append(res.Series, Sample{RSS: m.RSS, Heap: heap})
	}
	var syncs0 uint64
	if sc != nil {
		syncs0 = sc.Syncs()
	}

	begin := time.Now()
	for i := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); !stop.Load(); seq++ {
				// A new command per Apply, as an application builds
				// one per request: a library that keeps commands
				// after applying them pays for it here.
				cmd := make([]byte, cmdSize)
				binary.LittleEndian.PutUint64(cmd, uint64(i))
				binary.LittleEndian.PutUint64(cmd[8:], seq)
				t0 := time.Now()
				if err := c.Apply(cmd); err != nil {
					errOnce.Do(func() {
						runErr = fmt.Errorf("client %d, command %d: Apply: %w", i, seq, err)
						close(failed)
					})
					return
				}
				lat.record(time.Since(t0))
				ops.Add(1)
			}
		}()
	}

	tick := time.NewTicker(pollInterval)
	nextSample := o.sample
	var elapsed time.Duration
	var opsInWindow uint64
poll:
	for {
		select {
		case <-tick.C:
		case <-failed:
			break poll
		}
		elapsed = time.Since(begin)
		opsInWindow = ops.Load()
		heap, live, goroutines := rs.read()
		res.PeakHeap = max(res.PeakHeap, heap)
		res.PeakLiveHeap = max(res.PeakLiveHeap, live)
		res.PeakGoroutines = max(res.PeakGoroutines, goroutines)
		m, err := readMemStatus()
		if err != nil {
			return nil, err
		}
		over := o.maxRSS > 0 && m.RSS > o.maxRSS
		if o.sample > 0 && (elapsed >= nextSample || over) {
			res.Series = append(res.Series, Sample{Seconds: elapsed.Seconds(), RSS: m.RSS, Heap: heap, Ops: opsInWindow})
			nextSample += o.sample
		}
		if over {
			res.Stopped = fmt.Sprintf("stopped after %.1f s: VmRSS %.0f MiB above -maxrss-mib %.0f", elapsed.Seconds(), mib(m.RSS), mib(o.maxRSS))
			break
		}
		if elapsed >= o.duration {
			break
		}
	}
	tick.Stop()
	var syncs uint64
	if sc != nil {
		syncs = sc.Syncs() - syncs0
	}
	// The resident set is read before the profile is written, which
	// allocates.
	m, err := readMemStatus()
	if err != nil {
		return nil, err
	}
	var profErr error
	if prof != nil {
		profErr = writeHeapProfile(prof)
	}
	stop.Store(true)
	wg.Wait()
	if runErr != nil {
		return nil, runErr
	}
	if profErr != nil {
		return nil, profErr
	}

	res.PeakRSS, res.EndRSS = m.HWM, m.RSS
	res.Seconds = elapsed.Seconds()
	res.Ops = opsInWindow
	res.OpsPerSec = float64(opsInWindow) / elapsed.Seconds()
	q, _ := lat.quantiles(0.50, 0.99)
	res.P50Micros = float64(q[0].Nanoseconds()) / 1e3
	res.P99Micros = float64(q[1].Nanoseconds()) / 1e3
	if sc != nil && opsInWindow > 0 {
		f := float64(syncs) / float64(opsInWindow)
		res.FsyncsPerOp = &f
	}
	return res, nil
}

// writeHeapProfile writes the heap profile (as of the last garbage
// collection, which under load is recent) to f and closes f.
func writeHeapProfile(f *os.File) error {
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("heap profile %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heap profile %s: %w", f.Name(), err)
	}
	return nil
}
