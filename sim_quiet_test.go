package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/keelraft/raft/internal/sim"
)

// Quiescence in the multi-group simulation: idle groups go quiet (their
// cores' quiesceTicks are set, as StartGroup sets them), and each host runs
// the quietTracker on its own clock as Host does — a heartbeat round every
// heartbeatTicks of its ticks, whose messages travel between the hosts on
// the same faulty links as the groups' — waking the quiet groups it stops
// vouching for. A host crash loses its tracker; a restart starts a new one.

// simQuiet is the hosts' quiet-group watch.
type simQuiet struct {
	trackers []*quietTracker // by host
	reg      []map[int]bool  // by host: the groups registered quiet
	inc      []int           // by host: ends a crashed host's watch

	rounds, wakes int
}

func (h *simHost) initQuiet() {
	q := &h.quiet
	q.trackers, q.reg, q.inc = make([]*quietTracker, h.opt.hosts), make([]map[int]bool, h.opt.hosts), make([]int, h.opt.hosts)
	for g, s := range h.groups {
		s.flushHook = func(n *simNode) { h.syncQuiet(g, n) }
		for _, n := range s.nodes {
			if !*simHostNoQuiet {
				n.cfg.quiesceTicks = n.cfg.electionTicks
			}
		}
	}
}

// startWatch starts host i's tracker and its rounds.
func (h *simHost) startWatch(i int) {
	q := &h.quiet
	q.inc[i]++
	q.trackers[i], q.reg[i] = newQuietTracker(), map[int]bool{}
	inc := q.inc[i]
	var tick func()
	tick = func() {
		if q.inc[i] != inc {
			return
		}
		tr := q.trackers[i]
		if tr.now++; tr.now%heartbeatTicks == 0 {
			h.watch(i)
		}
		h.sched.After(h.periods[i], tick)
	}
	h.sched.After(h.periods[i], tick)
}

// stopWatch ends a crashed host's watch: its tracker is gone.
func (h *simHost) stopWatch(i int) {
	h.quiet.inc[i]++
	h.quiet.trackers[i] = nil
}

// syncQuiet registers a group's replica with its host's tracker when it
// went quiet or woke, as Raft.syncQuiet does.
func (h *simHost) syncQuiet(g int, n *simNode) {
	i := h.groups[g].nodeIndex(n)
	q := &h.quiet
	tr := q.trackers[i]
	if tr == nil || n.c.quiesced == q.reg[i][g] {
		return
	}
	q.reg[i][g] = n.c.quiesced
	if n.c.quiesced {
		tr.quiet(n.c.quietGroup(GroupID(g+1), nil))
	} else {
		tr.loud(GroupID(g + 1))
	}
}

// watch is host i's heartbeat round (Host.watchQuiet).
func (h *simHost) watch(i int) {
	q := &h.quiet
	tr := q.trackers[i]
	q.rounds++
	beats, wakes := tr.beats(), tr.expired()
	for _, to := range slices.Sorted(func(yield func(ServerAddress) bool) {
		for a := range beats {
			if !yield(a) {
				return
			}
		}
	}) {
		h.sendHostBeat(i, to, MsgHeartbeat, beats[to])
	}
	for _, g := range slices.Sorted(func(yield func(GroupID) bool) {
		for g := range wakes {
			if !yield(g) {
				return
			}
		}
	}) {
		if n := h.groups[g-1].nodes[i]; n.up() {
			q.wakes++
			h.groups[g-1].record(n, "wake", fmt.Sprint(wakes[g]))
			n.c.wake(wakes[g])
			n.flush()
		}
	}
}

func (h *simHost) sendHostBeat(from int, to ServerAddress, typ MessageType, b hostBeat) {
	name := h.names[from]
	env := simEnvelope{group: hostGroup, m: Message{Type: typ, From: ServerID(name), FromAddr: ServerAddress(name), To: ServerID(to), Context: encodeHostBeat(b)}}
	for _, d := range h.net.Send(name, string(to)) {
		h.sched.After(d, func() { h.route(env) })
	}
}

// hostMessage is a host's handling of a peer host's message (Host.hostMessage).
func (h *simHost) hostMessage(m Message) {
	i := slices.Index(h.names, string(m.To))
	if i < 0 || h.down[i] || h.quiet.trackers[i] == nil {
		return
	}
	b, err := decodeHostBeat(m.Context)
	if err != nil {
		h.groups[0].fail("host %s sent a malformed host message: %v", m.From, err)
		return
	}
	tr := h.quiet.trackers[i]
	switch m.Type {
	case MsgHeartbeat:
		if _, answer := tr.heardBeat(m.FromAddr, b); answer.kind != 0 {
			h.sendHostBeat(i, m.FromAddr, MsgHeartbeatResp, answer)
		}
	case MsgHeartbeatResp:
		tr.heardAnswer(m.FromAddr, b)
	}
}

// quietNow counts the replicas quiet now.
func (h *simHost) quietNow() int {
	n := 0
	for _, s := range h.groups {
		for _, nd := range s.nodes {
			if nd.up() && nd.c.quiesced {
				n++
			}
		}
	}
	return n
}

// scheduleIdle gives each group spells of two to six election timeouts
// without client operations, about one every ten, so that groups go quiet
// in the fault phase too, and the first reads after a spell meet a quiet
// leader. In half the spells the host of the group's leader is cut off
// once the group is quiet, until after the spell: its followers must learn
// from their hosts that it is gone and elect another, while it is still
// quiet and asked for reads. Its draws are its own, so that the other
// draws of a seed stay as they were.
func (h *simHost) scheduleIdle(duration sim.Time) {
	r := rand.New(rand.NewPCG(h.opt.seed, 0x1d1e))
	for _, s := range h.groups {
		for t := sim.Time(r.ExpFloat64()*float64(10*simET)) + 1; t < duration; t += sim.Time(r.ExpFloat64()*float64(10*simET)) + 1 {
			until := t + 2*simET + sim.Time(r.Int64N(int64(4*simET)))
			h.sched.At(t, func() { s.idleUntil = until })
			if r.IntN(2) == 0 {
				h.sched.At(t+simET, func() { h.cutQuietLeader(s, until, until+simET) })
			}
		}
	}
}

// cutQuietLeader cuts off the host of s's leader once it is quiet (it
// looks again every quarter election timeout until by) and heals at heal,
// unless another fault has changed the links by then.
func (h *simHost) cutQuietLeader(s *simCluster, by, heal sim.Time) {
	if h.calm || h.sched.Now() >= by {
		return
	}
	l := s.anyLeader()
	if l == nil || !l.c.quiesced {
		h.sched.After(simET/4, func() { h.cutQuietLeader(s, by, heal) })
		return
	}
	i := s.nodeIndex(l)
	h.net.Heal()
	h.net.Split([]string{h.names[i]}, h.names)
	h.record(i, "quietcut", fmt.Sprint(slices.Index(h.groups, s)+1))
	h.partitions++
	gen := h.partitions
	h.sched.At(heal, func() {
		if gen == h.partitions && !h.calm {
			h.net.Heal()
			h.record(-1, "hostheal", "")
		}
	})
}
