package rafttest

import "time"

// SetLeakSettle shortens the leak check's wait, for tests that expect a leak.
func SetLeakSettle(d time.Duration) (restore func()) {
	old := leakSettle
	leakSettle = d
	return func() { leakSettle = old }
}

// SetTimeout changes how long c's helpers wait, so that a test can let a
// helper fail quickly after waiting patiently for the setup.
func SetTimeout(c *Cluster, d time.Duration) (restore func()) {
	old := c.opts.timeout
	c.opts.timeout = d
	return func() { c.opts.timeout = old }
}
