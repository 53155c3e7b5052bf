package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// params are one measurement's: a system at one group count.
type params struct {
	System          string
	Groups          int
	Duration        time.Duration // the measured window
	Warmup          time.Duration // clients run, nothing is recorded
	ClientsPerGroup int
	MaxClients      int
	Size            int           // bytes per command
	Heartbeat       time.Duration // keel's HeartbeatInterval; dragonboat's HeartbeatRTT×RTTMillisecond
	Election        time.Duration // keel's ElectionTimeout; dragonboat's ElectionRTT×RTTMillisecond
	Timeout         time.Duration // each proposal's context
	Dir             string        // the stores' directory, removed afterwards
	DragonboatLogDB string        // default, small or tiny
	PersistWorkers  int           // keel's HostConfig.PersistWorkers; 0 for its default
}

// clients is how many proposers the point runs: ClientsPerGroup per
// group, at most MaxClients, at least one per group.
func (p params) clients() int {
	return max(p.Groups, min(p.Groups*p.ClientsPerGroup, p.MaxClients))
}

// result is one measurement.
type result struct {
	System     string
	Groups     int
	Clients    int
	Ops        uint64        // commands acknowledged inside the window
	OpsPerSec  float64       //
	P50, P99   time.Duration // latency of an acknowledged command, retries included
	Fsyncs     uint64        // fsyncs of the three hosts inside the window
	FsyncsOK   bool          // whether the system's fsyncs are counted
	Goroutines int           // while running, minus the baseline and the clients
	RSS        uint64        // VmRSS, the highest sample while running
	Errors     uint64        // failed proposals inside the window (timeouts, no leader), retries each counted
	Redirects  uint64        // times a client found its group's leader on another host (leader moves)
	FirstError string        // the first error, for the report
	Setup      time.Duration // start, bootstrap and every group's first leader
	Leftover   int           // goroutines still running 10s after close, beyond the baseline
}

// fsyncsPerEntry is the window's fsyncs over its acknowledged commands.
func (r result) fsyncsPerEntry() string {
	if !r.FsyncsOK {
		return "n/a"
	}
	if r.Ops == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(r.Fsyncs)/float64(r.Ops))
}

// cluster is three hosts of one system running groups 0..G-1.
type cluster interface {
	// propose proposes cmd to group cs.group on host cs.leader and waits
	// for it to be applied. On a NotLeader answer that names another
	// leader it updates cs.leader and returns redirect true.
	propose(ctx context.Context, cs *clientState, cmd []byte) (redirect bool, err error)
	// findLeader polls until some host leads group g, or the deadline.
	findLeader(g int, within time.Duration) (int, error)
	// fsyncs is the hosts' fsyncs so far, and whether they are counted.
	fsyncs() (uint64, bool)
	close() error
}

type clientState struct {
	group  int // 0-based
	leader int // host index
}

// startCluster starts p.System's three hosts with p.Groups groups.
func startCluster(p params) (cluster, error) {
	switch p.System {
	case "keel":
		return startKeel(p)
	}
	if v, ok := dragonboatVariants[p.System]; ok {
		return startDragonboat(p, v)
	}
	return nil, fmt.Errorf("unknown system %q (want keel or dragonboat)", p.System)
}

// waitLeaders polls until every group has a leader and returns them.
func waitLeaders(c cluster, groups int, within time.Duration) ([]int, error) {
	deadline := time.Now().Add(within)
	leaders := make([]int, groups)
	for g := range groups {
		l, err := c.findLeader(g, time.Until(deadline))
		if err != nil {
			return nil, err
		}
		leaders[g] = l
	}
	return leaders, nil
}

// pollLeader calls leader every millisecond until it returns a host or
// the deadline passes.
func pollLeader(g int, within time.Duration, leader func() (int, bool)) (int, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for {
		if l, ok := leader(); ok {
			return l, nil
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			return 0, fmt.Errorf("group %d: no leader within %v", g, within)
		}
	}
}

// run measures one point: it starts the cluster, runs the clients
// through the warm-up and the window, closes everything and removes the
// stores.
func run(p params) (result, error) {
	res := result{System: p.System, Groups: p.Groups, Clients: p.clients()}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return res, fmt.Errorf("%s: %w", p.System, err)
	}
	defer os.RemoveAll(p.Dir)
	runtime.GC()
	baseline := runtime.NumGoroutine()

	t0 := time.Now()
	c, err := startCluster(p)
	if err != nil {
		return res, fmt.Errorf("%s, %d groups: start: %w", p.System, p.Groups, err)
	}
	closed := false
	closeCluster := func() error {
		if closed {
			return nil
		}
		closed = true
		return c.close()
	}
	defer closeCluster()
	leaders, err := waitLeaders(c, p.Groups, 2*time.Minute)
	if err != nil {
		return res, fmt.Errorf("%s, %d groups: %w", p.System, p.Groups, err)
	}
	res.Setup = time.Since(t0)

	m := measure(c, p, leaders, baseline)
	res.Ops, res.P50, res.P99 = m.ops, m.p50, m.p99
	res.OpsPerSec = float64(m.ops) / p.Duration.Seconds()
	res.Fsyncs, res.FsyncsOK = m.fsyncs, m.fsyncsOK
	res.Goroutines, res.RSS = m.goroutines, m.rss
	res.Errors, res.Redirects, res.FirstError = m.errors, m.redirects, m.firstError

	if err := closeCluster(); err != nil {
		return res, fmt.Errorf("%s, %d groups: close: %w", p.System, p.Groups, err)
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return res, fmt.Errorf("%s, %d groups: remove %s: %w", p.System, p.Groups, p.Dir, err)
	}
	res.Leftover = waitGoroutines(baseline, 10*time.Second) - baseline
	if res.Leftover > 0 && p.System == "keel" {
		log.Printf("keel, %d groups: %d goroutines left after close:\n%s", p.Groups, res.Leftover, goroutineDump())
	}
	return res, nil
}

type measured struct {
	ops, errors, redirects uint64
	p50, p99               time.Duration
	fsyncs                 uint64
	fsyncsOK               bool
	goroutines             int
	rss                    uint64
	firstError             string
}

// measure runs the clients for p.Warmup, then records for p.Duration.
func measure(c cluster, p params, leaders []int, baseline int) measured {
	n := p.clients()
	start := time.Now()
	winStart, winEnd := start.Add(p.Warmup), start.Add(p.Warmup+p.Duration)
	// stop ends the clients at the window's end. A proposal's context is
	// not derived from it: dragonboat refuses a deadline shorter than a
	// tick, so the proposals in flight at the end run to completion (they
	// are not counted).
	var stop atomic.Bool
	stopped := func() bool { return stop.Load() }

	var errCount, redirects atomic.Uint64
	var firstErr atomic.Value
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		cmd := make([]byte, p.Size)
		rand.Read(cmd)
		cs := &clientState{group: i % p.Groups, leader: leaders[i%p.Groups]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped() {
				t0 := time.Now()
				ok := false
				for !stopped() {
					pctx, pcancel := context.WithTimeout(context.Background(), p.Timeout)
					redirect, err := c.propose(pctx, cs, cmd)
					pcancel()
					if err == nil {
						ok = true
						break
					}
					now := time.Now()
					if now.After(winEnd) {
						break // the window is over: not counted
					}
					inWindow := now.After(winStart)
					if redirect {
						if inWindow {
							redirects.Add(1)
						}
						continue
					}
					if inWindow {
						errCount.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("group %d on host %d: %v", cs.group, cs.leader, err))
					}
					if l, err := c.findLeader(cs.group, p.Timeout); err == nil && l != cs.leader {
						cs.leader = l
						if inWindow {
							redirects.Add(1)
						}
					}
				}
				if t1 := time.Now(); ok && !t0.Before(winStart) && !t1.After(winEnd) {
					lat[i] = append(lat[i], t1.Sub(t0))
				}
			}
		}()
	}

	var m measured
	wait := time.NewTimer(time.Until(winStart))
	<-wait.C
	f0, ok := c.fsyncs()
	// Sample goroutines and RSS ten times through the window; keep the
	// highest.
	sample := time.NewTicker(p.Duration / 10)
	end := time.NewTimer(time.Until(winEnd))
sampling:
	for {
		select {
		case <-sample.C:
			m.goroutines = max(m.goroutines, runtime.NumGoroutine()-baseline-n)
			if rss, err := rssBytes(); err == nil {
				m.rss = max(m.rss, rss)
			}
		case <-end.C:
			break sampling
		}
	}
	sample.Stop()
	stop.Store(true)
	f1, _ := c.fsyncs()
	m.fsyncs, m.fsyncsOK = f1-f0, ok
	wg.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	m.ops = uint64(len(all))
	if len(all) > 0 {
		m.p50, m.p99 = all[len(all)/2], all[min(len(all)-1, len(all)*99/100)]
	}
	m.errors, m.redirects = errCount.Load(), redirects.Load()
	if s, ok := firstErr.Load().(string); ok {
		m.firstError = s
	}
	return m
}

var errNoGroup = errors.New("group not running on this host")
