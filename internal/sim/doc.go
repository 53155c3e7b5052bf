// Package sim holds the protocol-independent parts of keel's deterministic
// cluster simulator: virtual time and a seeded event scheduler, a network
// that loses, duplicates, delays and partitions messages, the fault plan a
// seed draws ("swarm" testing: each fault kind switched on and given its
// own rate per seed), a bounded trace, and a linearizability check of
// key-value histories with porcupine.
//
// The simulator itself — servers' cores driven by these pieces, the safety
// checkers and the clients — lives in package raft's tests (sim_test.go),
// because the core is unexported there and package raft's own tests cannot
// import a package that imports raft. Nothing here reads a clock, starts a
// goroutine or uses global randomness: a seed replays the same run.
package sim
