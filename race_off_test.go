//go:build !race

package raft_test

const raceEnabled = false
