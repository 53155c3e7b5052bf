package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every system at a tiny size, in this process, and checks
// that commands commit and that keel leaves no goroutine behind.
func TestSmoke(t *testing.T) {
	o, child, err := parseFlags([]string{"-groups", "2", "-duration", "700ms", "-warmup", "200ms",
		"-clients-per-group", "2", "-heartbeat", "20ms", "-election", "200ms", "-timeout", "2s", "-dir", t.TempDir()})
	if err != nil || child {
		t.Fatalf("parseFlags: child %v, %v", child, err)
	}
	var results []result
	for _, s := range o.systems {
		before := runtime.NumGoroutine()
		p := o.params
		p.System, p.Groups, p.Dir = s, o.groups[0], t.TempDir()+"/"+s
		res, err := run(p)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		t.Logf("%+v", res)
		if res.Ops == 0 || res.P50 <= 0 || res.P99 < res.P50 {
			t.Errorf("%s: no commands measured: %+v", s, res)
		}
		if res.Clients != 4 || res.System != s || res.Groups != 2 {
			t.Errorf("%s: %d clients, want 4", s, res.Clients)
		}
		if s == "keel" {
			if res.Leftover != 0 {
				t.Errorf("keel left %d goroutines after close", res.Leftover)
			}
			if after := waitGoroutines(before, 5*time.Second); after > before {
				t.Errorf("keel: %d goroutines before, %d after:\n%s", before, after, goroutineDump())
			}
		}
		if ok := s == "keel" || strings.HasSuffix(s, "-synccount"); res.FsyncsOK != ok || (ok && res.Fsyncs == 0) {
			t.Errorf("%s: fsyncs %d, counted %v", s, res.Fsyncs, res.FsyncsOK)
		}
		results = append(results, res)
	}
	lim, err := measureLimits(t.TempDir(), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if lim.FsyncOps <= 0 || lim.LoopRTT50 <= 0 {
		t.Errorf("limits not measured: %+v", lim)
	}
	var out bytes.Buffer
	printTable(&out, o, []limits{lim}, results)
	for _, s := range []string{"| keel | 2 |", "| dragonboat | 2 |", "| dragonboat-synccount | 2 |", "| dragonboat-1shard-synccount | 2 |", "n/a"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	for _, args := range [][]string{{"-systems", "etcd"}, {"-groups", "0"}, {"-groups", "x"}, {"-duration", "0s"}} {
		if _, _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) took it", args)
		}
	}
}

func TestDragonboatTiming(t *testing.T) {
	rtt, hb, el, err := dbTiming(params{Heartbeat: 100 * time.Millisecond, Election: time.Second})
	if err != nil || rtt != 50 || hb != 2 || el != 20 {
		t.Errorf("dbTiming(100ms, 1s) = %d, %d, %d, %v; want 50, 2, 20", rtt, hb, el, err)
	}
	if _, _, _, err := dbTiming(params{Heartbeat: 3 * time.Millisecond, Election: time.Second}); err == nil {
		t.Error("dbTiming took a 1.5ms tick")
	}
}

func TestMedians(t *testing.T) {
	rs := []result{
		{System: "keel", Groups: 16, OpsPerSec: 3, Errors: 1},
		{System: "keel", Groups: 1, OpsPerSec: 5},
		{System: "keel", Groups: 16, OpsPerSec: 1, Errors: 2},
		{System: "keel", Groups: 16, OpsPerSec: 2, Leftover: 1},
	}
	pts := medians(rs)
	if len(pts) != 2 || pts[0].median.Groups != 1 {
		t.Fatalf("medians: %+v", pts)
	}
	if p := pts[1]; p.median.OpsPerSec != 2 || p.minOps != 1 || p.maxOps != 3 || p.errors != 3 || p.leftover != 1 || p.rounds != 3 {
		t.Errorf("16 groups: %+v", p)
	}
}
