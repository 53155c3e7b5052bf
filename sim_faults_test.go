package raft

import (
	"fmt"
	"math/rand/v2"

	"github.com/keelraft/raft/internal/sim"
)

// The single-group simulator's faults: crashes, membership changes,
// leadership transfers and partitions, drawn per seed (sim_test.go).

// scheduleFaults draws the fault events of the fault phase.
func (s *simCluster) scheduleFaults(duration sim.Time) {
	f := s.faults
	s.sched.At(f.LeaderCrashAt, s.crashLeader)
	s.scheduleHangs(duration)
	if f.Crash {
		for t := s.exp(f.CrashEvery); t < duration; t += s.exp(f.CrashEvery) {
			s.sched.At(t, func() { s.crashOne(s.nodes[s.rand.IntN(len(s.nodes))]) })
		}
	}
	for t := s.exp(s.changeEvery); t < duration; t += s.exp(s.changeEvery) {
		s.sched.At(t, s.changeMembership)
	}
	for t := s.exp(s.transferEvery); t < duration; t += s.exp(s.transferEvery) {
		s.sched.At(t, s.transferLeadership)
	}
	if f.Partition || f.OneWay || f.IsolateLeader {
		for t := s.exp(f.PartitionEvery); t < duration; t += s.exp(f.PartitionEvery) {
			s.sched.At(t, s.partition)
		}
	}
}

// exp draws an exponential interval with the given mean.
func (s *simCluster) exp(mean sim.Time) sim.Time {
	return sim.Time(s.rand.ExpFloat64()*float64(mean)) + 1
}

// anyLeader returns the live leader of the highest term, if any.
func (s *simCluster) anyLeader() *simNode {
	var l *simNode
	for _, n := range s.nodes {
		if n.up() && n.c.role == roleLeader && (l == nil || n.c.term > l.c.term) {
			l = n
		}
	}
	return l
}

// changeMembership asks the leader for a random new configuration: any
// subset of the servers, each a voter or a nonvoter, at least one voter.
func (s *simCluster) changeMembership() {
	l := s.anyLeader()
	if s.calm || l == nil {
		return
	}
	var target Configuration
	for _, id := range s.ids {
		if s.rand.IntN(3) == 0 {
			continue
		}
		sf := Voter
		if s.rand.IntN(4) == 0 {
			sf = Nonvoter
		}
		target.Servers = append(target.Servers, Server{Suffrage: sf, ID: id, Address: ServerAddress(id)})
	}
	if len(voterIDs(target.Servers)) == 0 {
		return
	}
	_, err := l.c.changeConfig(target)
	s.record(l, "change", fmt.Sprint(voterIDs(target.Servers), err))
	l.flush()
}

// transferLeadership asks the leader to hand over, to a random voter or to
// the one it picks.
func (s *simCluster) transferLeadership() {
	l := s.anyLeader()
	if s.calm || l == nil {
		return
	}
	var to ServerID
	if s.rand.IntN(2) == 0 {
		to = s.ids[s.rand.IntN(len(s.ids))]
	}
	_, target, err := l.c.transferLeadership(to)
	s.record(l, "transfer", fmt.Sprint(target, err))
	l.flush()
}

// crashLeader crashes the leader, or tries again shortly if there is none.
func (s *simCluster) crashLeader() {
	if s.calm {
		return
	}
	for _, n := range s.nodes {
		if n.up() && n.c.role == roleLeader {
			s.crashOne(n)
			return
		}
	}
	s.sched.After(simET/2, s.crashLeader)
}

func (s *simCluster) crashOne(n *simNode) {
	if s.calm || !n.up() {
		return
	}
	if s.crashHook != nil {
		s.crashHook(n)
		return
	}
	n.crash()
	down := s.faults.MaxDowntime/10 + sim.Time(s.rand.Int64N(int64(s.faults.MaxDowntime)))
	s.sched.After(down, func() {
		if !n.up() {
			s.record(n, "restart", "")
			n.start()
		}
	})
}

// churn crashes or cuts off a new leader within a few heartbeats.
func (s *simCluster) churn(n *simNode) {
	inc, term := n.inc, n.c.term
	s.sched.After(sim.Time(s.rand.Int64N(int64(5*simTick))), func() {
		if s.calm || n.inc != inc || n.c.role != roleLeader || n.c.term != term {
			return
		}
		if s.rand.IntN(2) == 0 {
			s.crashOne(n)
			return
		}
		s.isolate(n)
	})
}

// isolate cuts a server off from every other until the next partition
// change or heal.
func (s *simCluster) isolate(n *simNode) {
	s.net.Heal()
	s.net.Split([]string{string(n.id)}, s.names)
	s.record(n, "isolate", "")
	s.res.partitions++
	gen := s.res.partitions
	heal := s.faults.MaxPartition/10 + sim.Time(s.rand.Int64N(int64(s.faults.MaxPartition)))
	s.sched.After(heal, func() {
		if gen == s.res.partitions && !s.calm {
			s.net.Heal()
			s.record(nil, "heal", "")
		}
	})
}

// partition replaces the current partition with a new one of a kind the
// seed allows, healed after a while.
func (s *simCluster) partition() {
	if s.calm {
		return
	}
	f := s.faults
	kinds := partitionKinds(f)
	kind := kinds[s.rand.IntN(len(kinds))]
	s.net.Heal()
	switch kind {
	case "split":
		side := randomSide(s.rand, s.names)
		s.net.Split(side, s.names)
		s.record(nil, "partition", fmt.Sprint(side))
	case "oneway":
		for i := 0; i < 1+s.rand.IntN(len(s.names)); i++ {
			a, b := s.names[s.rand.IntN(len(s.names))], s.names[s.rand.IntN(len(s.names))]
			s.net.Cut(a, b)
			s.record(nil, "cut", a+"->"+b)
		}
	case "isolate":
		for _, n := range s.nodes {
			if n.up() && n.c.role == roleLeader {
				s.net.Split([]string{string(n.id)}, s.names)
				s.record(n, "isolate", "")
			}
		}
	case "bridge":
		// The leader and one other server lose their link; both still
		// reach everyone else. The other's election timer fires while
		// the rest hear from the leader: what leader stickiness is for.
		for _, n := range s.nodes {
			if n.up() && n.c.role == roleLeader {
				o := s.names[s.rand.IntN(len(s.names))]
				s.net.Cut(string(n.id), o)
				s.net.Cut(o, string(n.id))
				s.record(n, "bridge", o)
			}
		}
	}
	s.res.partitions++
	heal := f.MaxPartition/10 + sim.Time(s.rand.Int64N(int64(f.MaxPartition)))
	gen := s.res.partitions
	s.sched.After(heal, func() {
		if gen == s.res.partitions && !s.calm {
			s.net.Heal()
			s.record(nil, "heal", "")
		}
	})
}

// partitionKinds lists the kinds of partition a seed's faults allow: a
// split, one-way cuts, the leader isolated, or a leader's link to one
// other server cut (a bridge). The multi-group simulator draws from the
// same list for its hosts.
// randomSide is one side of a split: each of names with probability 1/2.
func randomSide(r *rand.Rand, names []string) []string {
	var side []string
	for _, name := range names {
		if r.IntN(2) == 0 {
			side = append(side, name)
		}
	}
	return side
}

func partitionKinds(f sim.Faults) []string {
	var kinds []string
	if f.Partition {
		kinds = append(kinds, "split")
	}
	if f.OneWay {
		kinds = append(kinds, "oneway")
	}
	if f.IsolateLeader {
		kinds = append(kinds, "isolate")
	}
	if f.Partition || f.OneWay {
		kinds = append(kinds, "bridge")
	}
	return kinds
}
