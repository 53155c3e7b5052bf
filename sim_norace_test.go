//go:build !race

package raft

const simDefaultSeeds = 1000
