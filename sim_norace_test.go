//go:build !race

package raft

const simDefaultSeeds = 600
