package raft_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
)

// startHostGroups starts groups 1..n on three in-memory hosts, with the
// given heartbeat interval (and an election timeout ten times it), and
// waits until each has a leader; it returns the leaders.
func startHostGroups(tb testing.TB, n int, heartbeat time.Duration) (*hostCluster, []*raft.Raft) {
	c := &hostCluster{net: newMemHostNet()}
	for i := range 3 {
		id := raft.ServerID(fmt.Sprintf("h%d", i+1))
		c.ids = append(c.ids, id)
		h, err := raft.NewHost(raft.HostConfig{Transport: c.net.transport(raft.ServerAddress(id)), HeartbeatInterval: heartbeat})
		if err != nil {
			tb.Fatal(err)
		}
		c.hosts = append(c.hosts, h)
	}
	tb.Cleanup(func() {
		for _, h := range c.hosts {
			h.Close()
		}
	})
	var conf raft.Configuration
	for _, id := range c.ids {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	for g := raft.GroupID(1); g <= raft.GroupID(n); g++ {
		for i, h := range c.hosts {
			logs, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
			rc := hostConf(c.ids[i])
			rc.HeartbeatInterval, rc.ElectionTimeout = heartbeat, 10*heartbeat
			if err := raft.BootstrapCluster(rc, logs, logs, snaps, conf); err != nil {
				tb.Fatal(err)
			}
			if _, err := h.StartGroup(g, rc, &testFSM{}, logs, logs, snaps); err != nil {
				tb.Fatal(err)
			}
		}
	}
	leaders := make([]*raft.Raft, n)
	deadline := time.After(2 * time.Minute)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for g := range leaders {
		for leaders[g] == nil {
			for _, h := range c.hosts {
				if r := h.Group(raft.GroupID(g + 1)); r != nil && r.State() == raft.Leader {
					leaders[g] = r
				}
			}
			if leaders[g] != nil {
				break
			}
			select {
			case <-poll.C:
			case <-deadline:
				tb.Fatalf("group %d elected no leader", g+1)
			}
		}
	}
	return c, leaders
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHostIdle measures what idle groups cost: three hosts in one
// process, each running a replica of every group with the default
// timeouts, nothing proposed. It reports the CPU the process uses per second of wall time and the
// goroutines, over one second per b.N.
//
//	go test -run X -bench HostIdle -benchtime 3x .
func BenchmarkHostIdle(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			c, _ := startHostGroups(b, n, raft.DefaultConfig().HeartbeatInterval)
			// Idle groups go quiet an election timeout after their last
			// work; measure once every replica has.
			quiet := func() int {
				q := 0
				for _, h := range c.hosts {
					q += h.Stats().Quiet
				}
				return q
			}
			deadline := time.Now().Add(2 * time.Minute)
			poll := time.NewTicker(10 * time.Millisecond)
			for quiet() < 3*n && time.Now().Before(deadline) {
				<-poll.C
			}
			poll.Stop()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			// The measurement is the CPU used over a stretch of wall
			// time: waiting it out is the point, not a stand-in for a
			// condition.
			window := time.NewTimer(time.Duration(b.N) * time.Second)
			<-window.C
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Since(t0)), "cpu-cores")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
			b.ReportMetric(float64(quiet())/3, "quiet-groups")
		})
	}
}

// BenchmarkHostApply is the host's throughput in memory: three hosts, G
// groups, 4 proposers per group applying 128-byte commands on the
// leaders.
//
//	go test -run X -bench HostApply -benchtime 20000x .
func BenchmarkHostApply(b *testing.B) {
	for _, n := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			_, leaders := startHostGroups(b, n, 20*time.Millisecond)
			cmd := make([]byte, 128)
			proposers := 4 * n
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := range proposers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := leaders[p%n]
					for range work {
						if err := l.Apply(context.Background(), cmd).Error(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
