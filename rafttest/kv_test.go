package rafttest_test

import (
	"testing"

	"github.com/keelraft/raft/rafttest"
)

// The kv state machine survives a leader crash, a partition that leaves the
// leader alone, and a restart, and every server ends with the same map.
func TestKV(t *testing.T) {
	c := rafttest.New(t, 3, newKV)
	c.Apply([]byte("a=1"))

	old := c.Leader()
	c.Crash(old) // the leader dies; the other two elect a new one
	c.Apply([]byte("b=2"))
	c.Restart(old) // it comes back on what its disk kept and catches up

	l := c.Leader()
	c.Partition([]*rafttest.Server{l}, c.Others(l)) // the leader is cut off
	c.WaitLeader(c.Others(l)...)                    // the majority elects another
	c.Apply([]byte("c=3"))
	c.Heal()

	c.RequireFSMsAgree(kvEqual)
	for _, s := range c.Servers() {
		if got := s.FSM().(*kv).Get("c"); got != "3" {
			t.Fatalf("%s: c=%q, want 3", s.ID, got)
		}
	}
}
