package raft

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keelraft/raft/internal/sim"
)

// Simulated clients issue puts and linearizable gets (ReadIndex, lease reads
// in seeds where every server sets CheckQuorum alike, and follower reads) against a
// key-value FSM, through whichever server they believe leads. A put whose
// fate the client cannot learn (timeout, leadership lost) is recorded with
// an unknown outcome and the client moves on to a new write, as a client
// without sessions must: resending the same write could apply it twice.

const (
	simClientTimeout = 2 * simET
	simCheckTimeout  = 30 * time.Second
)

// simFSM is the key-value state machine, with the configuration as of its
// applied index (what a snapshot records).
type simFSM struct {
	kv        map[string]string
	applied   uint64
	seen      map[uint64]bool // requests applied, to catch a write applied twice
	conf      Configuration
	confIndex uint64
}

func (f *simFSM) reset() {
	*f = simFSM{kv: map[string]string{}, seen: map[uint64]bool{}}
}

func (f *simFSM) clone() *simFSM {
	return &simFSM{kv: maps.Clone(f.kv), applied: f.applied, seen: maps.Clone(f.seen), conf: f.conf.Clone(), confIndex: f.confIndex}
}

func (f *simFSM) restore(from *simFSM) { *f = *from.clone() }

func (f *simFSM) hash() uint64 {
	keys := make([]string, 0, len(f.kv))
	for k := range f.kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := fnv.New64a()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s;", k, f.kv[k])
	}
	return h.Sum64()
}

// simCommand is a put as it travels in a log entry.
type simCommand struct {
	client int
	req    uint64
	key    string
	value  string
}

func (c simCommand) encode() []byte {
	return []byte(fmt.Sprintf("%d/%d/%s/%s", c.client, c.req, c.key, c.value))
}

func decodeSimCommand(b []byte) (simCommand, bool) {
	parts := strings.SplitN(string(b), "/", 4)
	if len(parts) != 4 {
		return simCommand{}, false
	}
	client, err1 := strconv.Atoi(parts[0])
	req, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return simCommand{}, false
	}
	return simCommand{client: client, req: req, key: parts[2], value: parts[3]}, true
}

func simReqID(client int, req uint64) uint64 { return uint64(client)<<40 | req }

// simWriteOp tracks a put: whether and when a server first applied it.
type simWriteOp struct {
	hist    int
	applied bool
	at      sim.Time
	index   uint64 // where it was first applied
}

// settleUnknownWrites narrows the puts whose outcome no client learned, with
// what the simulator knows and no client could: a put that no server ever
// applied (after convergence, when every committed entry is applied) never
// took effect and leaves the history; one that was applied took effect by
// the time a server first applied it — any read that starts later must see
// it, since a leader answers reads only at or above every commit index
// before. Without this, each unknown put could be linearized anywhere after
// its call, and histories with hundreds of them defeat the checker.
func (s *simCluster) settleUnknownWrites() {
	for _, w := range s.writes {
		switch {
		case s.hist.Returned(w.hist):
		case w.applied:
			s.hist.Return(w.hist, sim.KVOutput{}, w.at)
		default:
			s.hist.Forget(w.hist)
		}
	}
}

// simPending is client work a server holds.
type simPending struct {
	client *simClient
	req    uint64
	term   uint64 // proposals: the term proposed in
	index  uint64 // reads: the read index
	// reads: the highest index known committed (anywhere) when the
	// request arrived; a linearizable read index must cover it.
	minIndex uint64
	read     readKind
	call     sim.Time
	key      string
}

type simReply uint8

const (
	replyOK       simReply = iota
	replyRedirect          // not done: try the server named by leader
	replyUnknown           // may or may not have happened
)

type simClient struct {
	s      *simCluster
	id     int
	target ServerID
	req    uint64
	op     *simOp
}

type simOp struct {
	req     uint64
	read    readKind // gets: ReadIndex, lease or follower read (readAny)
	call    sim.Time
	in      sim.KVInput
	hist    int
	attempt int
}

// next thinks for a while, then issues a new operation.
func (c *simClient) next() {
	c.op = nil
	if c.s.calm {
		return
	}
	c.s.sched.After(sim.Time(c.s.rand.Int64N(int64(200*sim.Millisecond))), func() {
		if c.s.calm {
			return
		}
		c.req++
		in := sim.KVInput{Key: c.s.keys[c.s.rand.IntN(len(c.s.keys))]}
		if c.s.rand.IntN(2) == 0 {
			in.Put = true
			in.Value = fmt.Sprintf("%d.%d", c.id, c.req)
		}
		c.op = &simOp{req: c.req, in: in, read: readIndex, call: c.s.sched.Now(), hist: c.s.hist.Call(c.id, in, c.s.sched.Now())}
		if !in.Put {
			switch c.s.rand.IntN(3) {
			case 1:
				if c.s.leaseReads {
					c.op.read = readLease
				}
			case 2:
				// A follower read: ask any server.
				c.op.read = readAny
				c.target = c.s.ids[c.s.rand.IntN(len(c.s.ids))]
			}
		}
		if in.Put {
			c.s.writes[simReqID(c.id, c.req)] = &simWriteOp{hist: c.op.hist}
		}
		c.send()
	})
}

// send sends the current operation to the target server and starts its
// timeout.
func (c *simClient) send() {
	op := c.op
	op.attempt++
	attempt := op.attempt
	s := c.s
	n := s.node(c.target)
	s.sched.After(s.clientDelay(), func() {
		if n.up() {
			n.clientRequest(c, op)
		}
	})
	s.sched.After(simClientTimeout, func() {
		if c.op == op && op.attempt == attempt {
			s.res.unsure++
			c.next()
		}
	})
}

func (s *simCluster) clientDelay() sim.Time {
	return sim.Time(200 + s.rand.IntN(2000))
}

// reply delivers a server's answer to the client.
func (s *simCluster) reply(p simPending, kind simReply, out sim.KVOutput, leader ServerID) {
	c := p.client
	s.sched.After(s.clientDelay(), func() {
		op := c.op
		if op == nil || op.req != p.req {
			return // an answer to an operation the client gave up on
		}
		switch kind {
		case replyOK:
			s.hist.Return(op.hist, out, s.sched.Now())
			s.res.done++
			c.next()
		case replyUnknown:
			s.res.unsure++
			c.next()
		case replyRedirect:
			if leader != "" {
				c.target = leader
			} else {
				c.target = s.ids[s.rand.IntN(len(s.ids))]
			}
			s.sched.After(sim.Time(10+s.rand.IntN(40))*sim.Millisecond, func() {
				if c.op == op {
					c.send()
				}
			})
		}
	})
}

// clientRequest is a client operation arriving at a server.
func (n *simNode) clientRequest(c *simClient, op *simOp) {
	s := n.s
	p := simPending{client: c, req: op.req, key: op.in.Key}
	s.record(n, "client", op.in.Key, uint64(c.id), op.req)
	if op.in.Put {
		cmd := simCommand{client: c.id, req: op.req, key: op.in.Key, value: op.in.Value}
		ents := []Log{{Type: LogCommand, Data: cmd.encode()}}
		index, err := n.c.propose(ents)
		if err != nil && s.forward {
			// As the driver does: a follower hands the put to its leader.
			n.lastRead++
			if n.c.forwardProposals(n.lastRead, ents) == nil {
				n.fwdProps[n.lastRead] = p
				n.flush()
				return
			}
		}
		if err != nil {
			s.reply(p, replyRedirect, sim.KVOutput{}, n.c.lead)
			return
		}
		p.term = n.c.term
		n.props[index] = p
	} else {
		n.lastRead++
		p.minIndex, p.read, p.call = uint64(len(s.check.committed)), op.read, op.call
		if op.read == readLease && n.c.role == roleLeader && n.c.committedInTerm() && n.c.leaseHolds() {
			s.check.leaseRead(n)
		}
		if err := n.c.requestRead(n.lastRead, op.read); err != nil {
			s.reply(p, replyRedirect, sim.KVOutput{}, n.c.lead)
			return
		}
		n.reads[n.lastRead] = p
	}
	n.flush()
}

// apply applies a committed entry to the FSM and answers the client that
// proposed it here.
func (n *simNode) apply(e *Log) {
	s := n.s
	s.check.applied(n, e)
	n.fsm.applied = e.Index
	if e.Type == LogConfiguration {
		conf, err := decodeConfiguration(e.Data)
		if err != nil {
			s.fail("%s applied an undecodable configuration at %d: %v", n.id, e.Index, err)
			return
		}
		n.fsm.conf, n.fsm.confIndex = conf, e.Index
	}
	if e.Type != LogCommand {
		return
	}
	cmd, ok := decodeSimCommand(e.Data)
	if !ok {
		s.fail("%s applied an undecodable command at %d", n.id, e.Index)
		return
	}
	id := simReqID(cmd.client, cmd.req)
	if w := s.writes[id]; w != nil && !w.applied {
		w.applied, w.at, w.index = true, s.sched.Now(), e.Index
	}
	if n.fsm.seen[id] {
		s.fail("%s applied client %d request %d twice (again at index %d)", n.id, cmd.client, cmd.req, e.Index)
	}
	n.fsm.seen[id] = true
	n.fsm.kv[cmd.key] = cmd.value
	if p, ok := n.props[e.Index]; ok {
		delete(n.props, e.Index)
		if p.term == e.Term {
			s.reply(p, replyOK, sim.KVOutput{}, "")
		} else {
			// Another entry took the index: the proposal never commits.
			s.reply(p, replyRedirect, sim.KVOutput{}, n.c.lead)
		}
	}
}

// readAnswered handles the core's answer to a read request.
func (n *simNode) readAnswered(r readResult) {
	p, ok := n.reads[r.id]
	if !ok {
		n.s.fail("%s answered unknown read %d", n.id, r.id)
		return
	}
	delete(n.reads, r.id)
	if r.err != nil {
		n.s.reply(p, replyRedirect, sim.KVOutput{}, n.c.lead)
		return
	}
	if r.index < p.minIndex {
		n.s.fail("%s answered a read (kind %d) with index %d, below %d, committed before the request arrived: a stale read",
			n.id, p.read, r.index, p.minIndex)
		return
	}
	for id, w := range n.s.writes {
		if w.applied && w.at < p.call && w.index > r.index {
			n.s.fail("%s answered a read (kind %d) of a call at %v with index %d, below %d, where write %x applied at %v",
				n.id, p.read, p.call, r.index, w.index, id, w.at)
			return
		}
	}
	p.index = r.index
	n.readWaits = append(n.readWaits, p)
}

// forwardAnswered settles a put this follower forwarded: answered, it
// waits like the leader's own proposals for its index to be applied here.
func (n *simNode) forwardAnswered(r proposeResult) {
	p, ok := n.fwdProps[r.id]
	if !ok {
		n.s.fail("%s answered unknown forwarded proposal %d", n.id, r.id)
		return
	}
	delete(n.fwdProps, r.id)
	switch {
	case errors.Is(r.err, errForwardUnknown):
		n.s.reply(p, replyUnknown, sim.KVOutput{}, "")
	case r.err != nil:
		// Refused: not appended anywhere.
		n.s.reply(p, replyRedirect, sim.KVOutput{}, n.c.lead)
	case r.index <= n.fsm.applied && r.index > n.c.log.snapIndex:
		n.s.fail("%s applied index %d before the answer to its forwarded proposal there (the core must hold applies back)", n.id, r.index)
	case r.index <= n.fsm.applied:
		// A snapshot installed since covered it.
		n.s.reply(p, replyUnknown, sim.KVOutput{}, "")
	default:
		p.term = r.term
		n.props[r.index] = p
	}
}

// serveReads answers the reads whose index this server has applied.
func (n *simNode) serveReads() {
	k := 0
	for _, p := range n.readWaits {
		if p.index > n.fsm.applied {
			n.readWaits[k] = p
			k++
			continue
		}
		v, found := n.fsm.kv[p.key]
		n.s.reply(p, replyOK, sim.KVOutput{Value: v, Found: found}, "")
	}
	n.readWaits = n.readWaits[:k]
}

// leadershipChanged tells the clients of proposals still in flight that
// their outcome is unknown once this server stops leading the term they
// were proposed in, or its term changes — what Apply's ErrLeadershipLost
// says.
func (n *simNode) leadershipChanged() {
	leading := n.c.role == roleLeader
	// A follower's forwarded proposals, like the driver's, fail on any
	// change of term.
	if n.wasLeader && !leading || n.c.term != n.term {
		idx := make([]uint64, 0, len(n.props))
		for i := range n.props {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		for _, i := range idx {
			n.s.reply(n.props[i], replyUnknown, sim.KVOutput{}, "")
		}
		clear(n.props)
	}
	n.wasLeader, n.term = leading, n.c.term
}
