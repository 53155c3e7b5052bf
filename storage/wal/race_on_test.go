//go:build race

package wal

// Test sizes under the race detector, which is 5-10x slower: the same
// tests on fewer points.
const (
	raceEnabled     = true
	crashSeeds      = 2
	crashStride     = 2 // crash at every crashStride-th modification
	bitRotStride    = 3 // flip every 3rd bit
	reopenRounds    = 60
	faultWorkloadOp = 25
)
