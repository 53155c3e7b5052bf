//go:build !race

package wal

// Test sizes without the race detector.
const (
	raceEnabled     = false
	crashSeeds      = 3 // crash matrix workloads
	crashStride     = 1 // crash at every crashStride-th modification
	bitRotStride    = 1 // flip every bit
	reopenRounds    = 300
	faultWorkloadOp = 40
)
