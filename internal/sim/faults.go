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
	Crash         bool
	CrashEvery    Time
	MaxDowntime   Time
	LeaderCrashAt Time // the leader crashes at least once, at this time
	// CrashAfterWrite is the probability that a server crashes right
	// after it has acted on an input — voted, appended, sent — while
	// its latest writes may still be queued: where durability bugs live.
	CrashAfterWrite float64
	// CrashAfterVote is the probability that a server crashes right after
	// its term or vote changed: elections are where term and vote must be
	// durable before the answer leaves.
	CrashAfterVote float64
	// DiskDelay is, per server, the longest a log write takes: servers
	// with slow disks build a backlog of writes that a crash loses.
	DiskDelay      []Time
	Partition      bool // symmetric splits into two sides
	OneWay         bool // links cut in one direction
	IsolateLeader  bool // the leader cut off from everyone
	PartitionEvery Time // mean time between partition changes
	MaxPartition   Time // the longest a partition lasts

	// Churn is the probability that a new leader is crashed or cut off
	// within a few heartbeats of its election: many short terms leave
	// logs with entries from several terms, the ground of Figure 8.
	Churn float64

	Loss      float64 // probability a message is lost
	Duplicate float64 // probability a message is delivered twice
	MinDelay  Time    // one-way latency range; a spread reorders messages
	MaxDelay  Time
	LongDelay float64 // probability a message is held for up to MaxLong
	MaxLong   Time
}

// DrawFaults draws a seed's fault plan for servers servers with the given
// election timeout; duration is how long the fault phase is expected to
// last (the leader crash falls in its first half).
func DrawFaults(r *rand.Rand, servers int, electionTimeout, duration Time) Faults {
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
	if r.IntN(10) < 5 {
		f.CrashAfterWrite = 0.0005 + r.Float64()*0.005
	}
	if r.IntN(10) < 5 {
		f.CrashAfterVote = r.Float64() * 0.3
	}
	if r.IntN(10) < 4 {
		f.Churn = r.Float64()
	}
	slow := r.IntN(10) < 4
	for i := 0; i < servers; i++ {
		d := Time(200 + r.IntN(3000))
		if slow && r.IntN(2) == 0 {
			d = Time(r.Int64N(int64(30 * Millisecond)))
		}
		f.DiskDelay = append(f.DiskDelay, d)
	}
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
	return fmt.Sprintf("crash=%v/%v afterWrite=%.4f afterVote=%.3f churn=%.2f down<=%v disk<=%v leaderCrash@%v partition=%v oneway=%v isolate=%v every %v for<=%v loss=%.3f dup=%.3f delay=[%v,%v] long=%.3f<=%v",
		f.Crash, f.CrashEvery, f.CrashAfterWrite, f.CrashAfterVote, f.Churn, f.MaxDowntime, f.DiskDelay, f.LeaderCrashAt, f.Partition, f.OneWay, f.IsolateLeader,
		f.PartitionEvery, f.MaxPartition, f.Loss, f.Duplicate, f.MinDelay, f.MaxDelay, f.LongDelay, f.MaxLong)
}

// String prints virtual time in milliseconds.
func (t Time) String() string { return fmt.Sprintf("%.1fms", float64(t)/float64(Millisecond)) }
