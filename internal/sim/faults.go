package sim

import (
	"fmt"
	"math/rand/v2"
)

// Faults is what a seed switches on, each with its own rate ("swarm"
// testing: a seed that never partitions explores crashes more deeply, and
// the other way round). Durations scale with the election timeout.
type Faults struct {
	// Crashes: mean time between crashes and the longest a server stays
	// down. A server restarts with only what it synced.
	Crash          bool
	CrashEvery     Time
	MaxDowntime    Time
	LeaderCrashAt  Time // the leader crashes at least once, at this time
	Partition      bool // symmetric splits into two sides
	OneWay         bool // links cut in one direction
	IsolateLeader  bool // the leader cut off from everyone
	PartitionEvery Time // mean time between partition changes
	MaxPartition   Time // the longest a partition lasts

	Loss      float64 // probability a message is lost
	Duplicate float64 // probability a message is delivered twice
	MinDelay  Time    // one-way latency range; a spread reorders messages
	MaxDelay  Time
	LongDelay float64 // probability a message is held for up to MaxLong
	MaxLong   Time
}

// DrawFaults draws a seed's fault plan for a run whose fault phase lasts
// duration, with the given election timeout.
func DrawFaults(r *rand.Rand, electionTimeout, duration Time) Faults {
	et := electionTimeout
	f := Faults{
		Crash:         r.IntN(10) < 8,
		Partition:     r.IntN(10) < 6,
		OneWay:        r.IntN(10) < 4,
		IsolateLeader: r.IntN(10) < 4,
		MinDelay:      Time(100 + r.IntN(900)),
		LeaderCrashAt: duration/10 + Time(r.Int64N(int64(duration/2))),
	}
	f.MaxDelay = f.MinDelay + Time(r.Int64N(int64(10*Millisecond)))
	f.CrashEvery = et * Time(2+r.IntN(10))
	f.MaxDowntime = et/2 + Time(r.Int64N(int64(5*et)))
	f.PartitionEvery = et * Time(2+r.IntN(12))
	f.MaxPartition = et + Time(r.Int64N(int64(8*et)))
	if r.IntN(10) < 6 {
		f.Loss = r.Float64() * 0.3
	}
	if r.IntN(10) < 4 {
		f.Duplicate = r.Float64() * 0.1
	}
	if r.IntN(10) < 5 {
		f.LongDelay = r.Float64() * 0.05
		f.MaxLong = et + Time(r.Int64N(int64(3*et)))
	}
	return f
}

// String summarises the plan for a failure report.
func (f Faults) String() string {
	return fmt.Sprintf("crash=%v/%v down<=%v leaderCrash@%v partition=%v oneway=%v isolate=%v every %v for<=%v loss=%.3f dup=%.3f delay=[%v,%v] long=%.3f<=%v",
		f.Crash, f.CrashEvery, f.MaxDowntime, f.LeaderCrashAt, f.Partition, f.OneWay, f.IsolateLeader,
		f.PartitionEvery, f.MaxPartition, f.Loss, f.Duplicate, f.MinDelay, f.MaxDelay, f.LongDelay, f.MaxLong)
}

// String prints virtual time in milliseconds.
func (t Time) String() string { return fmt.Sprintf("%.1fms", float64(t)/float64(Millisecond)) }
