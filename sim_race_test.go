//go:build race

package raft

// The race detector slows the simulator several times over; CI runs the
// race build, so it runs fewer seeds by default, with every check intact.
const simDefaultSeeds = 300

// The multi-group simulation (sim_host_test.go): fewer seeds, and no large
// shape, under the race detector.
const (
	simHostDefaultSeeds = 8
	simHostLarge        = false
)
