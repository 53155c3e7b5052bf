package main

import (
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 63, 64, 65, 127, 128, 1000, 123456789, 1<<40 + 12345, 1<<64 - 1} {
		i := bucket(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucket(%d) = %d, outside [0, %d)", v, i, histBuckets)
		}
		mid := bucketMid(i)
		diff := max(mid, v) - min(mid, v)
		if float64(diff) > float64(v)/histSub {
			t.Errorf("value %d: bucket %d middle %d, off by more than 1/%d", v, i, mid, histSub)
		}
		if i > 0 && bucket(v) < bucket(v-1) {
			t.Errorf("bucket(%d) < bucket(%d)", v, v-1)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h hist
	if q, n := h.quantiles(0.5); n != 0 || q[0] != 0 {
		t.Fatalf("empty: %v, %d", q, n)
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	q, n := h.quantiles(0.50, 0.99, 1)
	if n != 1000 {
		t.Fatalf("n = %d, want 1000", n)
	}
	// Ranks 500, 990 and 999 from 0: 501, 991 and 1000 µs.
	for i, want := range []time.Duration{501 * time.Microsecond, 991 * time.Microsecond, 1000 * time.Microsecond} {
		if d := q[i] - want; d < -want/histSub || d > want/histSub {
			t.Errorf("quantile %d = %v, want %v within 1/%d", i, q[i], want, histSub)
		}
	}
}

func TestParseMemStatus(t *testing.T) {
	status := "Name:\tmemory\nVmPeak:\t 2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t     567 kB\nThreads:\t5\n"
	s, err := parseMemStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if s.HWM != 1234<<10 || s.RSS != 567<<10 {
		t.Errorf("got %+v", s)
	}
	if _, err := parseMemStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("no error without VmHWM and VmRSS")
	}
}
