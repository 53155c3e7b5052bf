package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histSub is the number of buckets per power of two above the linear
// range: a recorded duration is reported with a relative error below
// 1/histSub.
const histSub = 32

// histBuckets covers every non-negative int64 nanosecond count.
const histBuckets = (64-6)*histSub + 2*histSub

// hist is a latency histogram of fixed size that many goroutines record
// into at once. Its memory does not grow with the number of recorded
// durations, so it does not inflate the heap it is used to measure (a
// slice of every latency would, by 8 bytes per Apply).
type hist struct {
	counts [histBuckets]atomic.Uint64
}

// bucket returns the index of the bucket holding v: v itself below
// 2*histSub, and above that histSub buckets per power of two.
func bucket(v uint64) int {
	shift := max(0, bits.Len64(v)-6) // 6 = log2(2*histSub)
	return shift*histSub + int(v>>shift)
}

// bucketMid returns the middle of the range of values in bucket i.
func bucketMid(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	lower := uint64(i-shift*histSub) << shift
	return lower + (uint64(1)<<shift)/2
}

// record adds d to the histogram.
func (h *hist) record(d time.Duration) {
	h.counts[bucket(uint64(max(d, 0)))].Add(1)
}

// quantiles returns, for each q in qs (ascending, in [0, 1]), the
// recorded duration of rank floor(q*n) counting from 0 among the n
// recorded ones, as the middle of its bucket; and n. With nothing
// recorded it returns zeros.
func (h *hist) quantiles(qs ...float64) ([]time.Duration, uint64) {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	out := make([]time.Duration, len(qs))
	if n == 0 {
		return out, 0
	}
	var seen uint64
	j := 0
	for i := range h.counts {
		seen += h.counts[i].Load()
		for j < len(qs) && seen > min(n-1, uint64(qs[j]*float64(n))) {
			out[j] = time.Duration(bucketMid(i))
			j++
		}
		if j == len(qs) {
			break
		}
	}
	return out, n
}
