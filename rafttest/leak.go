package rafttest

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The goroutine-leak check: when a cluster has shut down, no goroutine that
// started after New and runs keel code (a frame or creator in
// github.com/keelraft/raft) may remain. Goroutines that existed at New,
// and goroutines of the test's own code, are not the cluster's and are
// ignored. Two clusters alive at the same time (parallel tests) cannot tell
// their goroutines apart, so neither checks.

const keelPath = "github.com/keelraft/raft"

// leakSettle bounds how long the check waits for exiting goroutines to go.
var leakSettle = 5 * time.Second

var alive struct {
	sync.Mutex
	checks map[*leakCheck]bool
}

type leakCheck struct {
	before     map[string]bool // goroutine IDs at New
	overlapped bool            // under alive's lock
}

func startLeakCheck() *leakCheck {
	lc := &leakCheck{before: map[string]bool{}}
	for _, g := range goroutines() {
		lc.before[g.id] = true
	}
	alive.Lock()
	defer alive.Unlock()
	if alive.checks == nil {
		alive.checks = map[*leakCheck]bool{}
	}
	for other := range alive.checks {
		other.overlapped, lc.overlapped = true, true
	}
	alive.checks[lc] = true
	return lc
}

// finish returns an error naming the leaked goroutines, if any.
func (lc *leakCheck) finish() error {
	alive.Lock()
	delete(alive.checks, lc)
	overlapped := lc.overlapped
	alive.Unlock()
	if overlapped {
		return nil
	}
	var leaked []goroutine
	poll(leakSettle, func() bool {
		leaked = leaked[:0]
		for _, g := range goroutines() {
			if !lc.before[g.id] && strings.Contains(g.stack, keelPath) {
				leaked = append(leaked, g)
			}
		}
		return len(leaked) == 0
	})
	if len(leaked) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d goroutine(s) still running after the cluster shut down:\n", len(leaked))
	for _, g := range leaked {
		fmt.Fprintf(&b, "\n%s\n", g.stack)
	}
	return fmt.Errorf("%s", b.String())
}

type goroutine struct{ id, stack string }

// goroutines returns every goroutine but the caller's.
func goroutines() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for i, st := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller
		}
		s := string(st)
		fields := strings.Fields(s)
		if len(fields) < 2 || fields[0] != "goroutine" {
			continue
		}
		out = append(out, goroutine{id: fields[1], stack: s})
	}
	return out
}
