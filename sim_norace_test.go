//go:build !race

package raft

const simDefaultSeeds = 600

// The multi-group simulation (sim_host_test.go): seeds of TestSimHost, and
// whether TestSimHostLarge runs.
const (
	simHostDefaultSeeds = 16
	simHostLarge        = true
)
