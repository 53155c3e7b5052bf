package rafttest_test

import (
	"fmt"

	"github.com/keelraft/raft/rafttest"
)

// A 3-server cluster of the kv state machine: apply, crash the leader,
// apply again, restart it, and check every server holds the same map.
func Example() {
	t := newExampleT() // in a test: the test's *testing.T
	defer t.finish()   // in a test: go test does this when the test ends

	c := rafttest.New(t, 3, newKV)
	c.Apply([]byte("a=1"))
	old := c.Leader()
	c.Crash(old)
	_, index := c.Apply([]byte("b=2"))
	c.Restart(old)
	c.WaitApplied(index) // old has caught up
	c.RequireFSMsAgree(kvEqual)
	fmt.Println("a =", old.FSM().(*kv).Get("a"), "b =", old.FSM().(*kv).Get("b"))
	// Output: a = 1 b = 2
}

// A 5-server cluster split 2|3: the side with a majority elects a leader and
// commits; after Heal the other side catches up.
func ExampleCluster_Partition() {
	t := newExampleT() // in a test: the test's *testing.T
	defer t.finish()

	c := rafttest.New(t, 5, newKV, rafttest.WithSeed(7))
	s := c.Servers()
	minority, majority := s[:2], s[2:]
	c.Partition(minority, majority)
	l := c.WaitLeader(majority...)
	resp, _ := c.Apply([]byte("x=1"))
	fmt.Println("leader in the majority:", l != s[0] && l != s[1], "keys:", resp)
	c.Heal()
	c.RequireFSMsAgree(kvEqual)
	fmt.Println("minority caught up:", s[0].FSM().(*kv).Get("x"))
	// Output:
	// leader in the majority: true keys: 1
	// minority caught up: 1
}

// A lossy network with one link cut still commits; the seed makes the
// dropped messages the same on every run (given the same order of sends).
func ExampleCluster_SetLossy() {
	t := newExampleT()
	defer t.finish()

	c := rafttest.New(t, 3, newKV, rafttest.WithSeed(42))
	l := c.Leader()
	c.Cut(l, c.Others(l)[0]) // one follower no longer hears from the leader
	c.SetLossy(0.2)          // and 20% of all other messages are lost
	for i := 0; i < 10; i++ {
		c.Apply([]byte(fmt.Sprintf("k%d=%d", i, i)))
	}
	c.Heal()
	c.RequireFSMsAgree(kvEqual)
	fmt.Println("k9 =", c.Servers()[2].FSM().(*kv).Get("k9"))
	// Output: k9 = 9
}
