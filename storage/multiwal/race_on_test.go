//go:build race

package multiwal

// Test sizes under the race detector, which is 5-10x slower.
const (
	raceEnabled  = true
	crashSeeds   = 2
	crashOps     = 40
	crashStride  = 2 // crash at every crashStride-th modification
	bitRotStride = 7
	randomOps    = 600
)
