//go:build !race

package multiwal

// Test sizes without the race detector.
const (
	raceEnabled  = false
	crashSeeds   = 3
	crashOps     = 50
	crashStride  = 1
	bitRotStride = 1
	randomOps    = 2000
)
