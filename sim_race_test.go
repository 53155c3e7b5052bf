//go:build race

package raft

// The race detector slows the simulator several times over; CI runs the
// race build, so it runs fewer seeds by default, with every check intact.
const simDefaultSeeds = 300
