package peers

import (
	"fmt"
	"sync"
	"testing"
	"time"

	keel "github.com/keelraft/raft"
	"github.com/keelraft/raft/bench/peers/clusters"
	"github.com/keelraft/raft/metrics"
	kprom "github.com/keelraft/raft/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMetricsCost measures what metrics cost: keel's Apply in memory
// (as BenchmarkKeelApply) and on TCP with durable stores (as
// BenchmarkKeelTCPDurable), with metrics off and with every server's Raft
// (and, on TCP, WAL and transport) reporting to the Prometheus adapter,
// one registry per server, gathered every second as a busy Prometheus
// server would scrape it. For each proposer count the two run one after
// the other; -count repeats each sub-benchmark in a row, so to interleave
// rounds run the test binary once per round:
//
//	go test -c -o peers.test . && for i in 1 2 3; do ./peers.test -test.run X -test.bench MetricsCost -test.benchtime 2s; done
func BenchmarkMetricsCost(b *testing.B) {
	setups := []struct {
		name  string
		start func(b *testing.B, sinkFor func(keel.ServerID) metrics.Sink) cluster
	}{
		{"inmem", startKeelWith},
		{"tcpdurable", func(b *testing.B, sinkFor func(keel.ServerID) metrics.Sink) cluster {
			c, err := clusters.StartKeelTCPDurableWith(b.TempDir(), sinkFor)
			if err != nil {
				b.Fatal(err)
			}
			return c
		}},
	}
	for _, s := range setups {
		for _, proposers := range proposerCounts {
			for _, on := range []bool{false, true} {
				mode := "off"
				if on {
					mode = "prometheus"
				}
				b.Run(fmt.Sprintf("%s/proposers=%d/metrics=%s", s.name, proposers, mode), func(b *testing.B) {
					start := func(b *testing.B) cluster { return s.start(b, nil) }
					if on {
						scr := newScraper()
						defer scr.stop()
						start = func(b *testing.B) cluster { return s.start(b, scr.sinkFor) }
					}
					benchApplyWith(b, start, proposers)
				})
			}
		}
	}
}

// scraper gives each server a Prometheus sink in a registry of its own and
// gathers every registry once a second until stopped.
type scraper struct {
	mu   sync.Mutex
	regs []*prometheus.Registry
	done chan struct{}
	wg   sync.WaitGroup
}

func newScraper() *scraper {
	s := &scraper{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.mu.Lock()
				regs := s.regs
				s.mu.Unlock()
				for _, r := range regs {
					if _, err := r.Gather(); err != nil {
						panic(err) // a benchmark helper: the sinks' figures must gather
					}
				}
			}
		}
	}()
	return s
}

func (s *scraper) sinkFor(keel.ServerID) metrics.Sink {
	sink := kprom.New(kprom.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(sink)
	s.mu.Lock()
	s.regs = append(s.regs, reg)
	s.mu.Unlock()
	return sink
}

func (s *scraper) stop() {
	close(s.done)
	s.wg.Wait()
}
