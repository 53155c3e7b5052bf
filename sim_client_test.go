package raft

import (
	"bytes"
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
// key-value FSM, through whichever server they believe leads. Puts go
// through client sessions (session.go, the table the driver's applier
// uses): a client registers a session, numbers its puts, and resends a put
// whose fate it cannot learn (timeout, leadership lost) with the same
// number, up to simMaxRetries times, to whichever server it then believes
// leads. A put returns the value it replaced, so porcupine checks the
// answers of retries too, and a checker compares each answer with what the
// first apply returned; the FSM fails the seed if it applies a request
// twice. A put refused because its session expired has an unknown outcome
// (an earlier attempt may have been applied); the client registers anew.

const (
	simClientTimeout = 2 * simET
	// simRetryTimeout is how long a client waits for a put before it
	// resends it: safe to make short, sessions make resends harmless.
	simRetryTimeout = simET
	simCheckTimeout = 30 * time.Second
	// simMaxRetries bounds how often a client resends a put of unknown
	// outcome before it gives up on it (and moves on in its session).
	simMaxRetries = 2
)

// simFSM is the key-value state machine, with the configuration as of its
// applied index and the session table (what a snapshot records).
type simFSM struct {
	kv        map[string]string
	applied   uint64
	seen      map[uint64]bool // requests applied, to catch a write applied twice
	lastReq   map[int]uint64  // by client, the last request applied: they apply in order
	conf      Configuration
	confIndex uint64
	sessions  *sessionTable
}

func (f *simFSM) reset() {
	*f = simFSM{kv: map[string]string{}, seen: map[uint64]bool{}, lastReq: map[int]uint64{}, sessions: newSessionTable()}
}

// clone copies the FSM; the session table goes through the snapshot
// header's encoding, as a snapshot's does.
func (f *simFSM) clone() *simFSM {
	hdr, err := encodeSnapshotHeader(f.sessions)
	if err != nil {
		panic(err)
	}
	sessions, err := readSnapshotHeader(bytes.NewReader(hdr))
	if err != nil {
		panic(err)
	}
	return &simFSM{kv: maps.Clone(f.kv), applied: f.applied, seen: maps.Clone(f.seen), lastReq: maps.Clone(f.lastReq),
		conf: f.conf.Clone(), confIndex: f.confIndex, sessions: sessions}
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
	hdr, err := encodeSnapshotHeader(f.sessions)
	if err != nil {
		panic(err)
	}
	h.Write(hdr)
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
	index   uint64       // where it was first applied
	out     sim.KVOutput // what it replaced there: every answer must say so
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
			s.hist.Return(w.hist, w.out, w.at)
		default:
			s.hist.Forget(w.hist)
		}
	}
}

// simPending is client work a server holds.
type simPending struct {
	client *simClient
	req    uint64
	// register: the proposal registers a session for the client.
	register bool
	term     uint64 // proposals: the term proposed in
	index    uint64 // reads: the read index
	// reads: the highest index known committed (anywhere) when the
	// request arrived; a linearizable read index must cover it.
	minIndex uint64
	read     readKind
	call     sim.Time
	key      string
}

type simReply uint8

const (
	replyOK         simReply = iota
	replyRedirect            // not done: try the server named by leader
	replyUnknown             // may or may not have happened
	replyRegistered          // a session was registered: answer.session
	replyRefused             // a session refused the put: answer.err
)

// simAnswer is a server's answer to a client.
type simAnswer struct {
	kind    simReply
	out     sim.KVOutput
	leader  ServerID // replyRedirect: the leader the server knows
	session uint64   // replyRegistered
	err     error    // replyRefused
}

type simClient struct {
	s       *simCluster
	id      int
	target  ServerID
	req     uint64
	op      *simOp
	session uint64 // 0 until a registration is answered
}

type simOp struct {
	req     uint64
	read    readKind // gets: ReadIndex, lease or follower read (readAny)
	call    sim.Time
	in      sim.KVInput
	hist    int
	attempt int
	retries int // puts: resends after an unknown outcome
}

// next thinks for a while, then issues a new operation.
func (c *simClient) next() {
	c.op = nil
	if c.s.calm {
		return
	}
	think := sim.Time(c.s.rand.Int64N(int64(200 * sim.Millisecond)))
	if idle := c.s.idleUntil - c.s.sched.Now(); idle > think {
		think = idle // the group's clients are taking a break (sim_quiet_test.go)
	}
	c.s.sched.After(think, func() {
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

// send sends the current operation to the target server — for a put
// without a session, a registration first — and starts its timeout.
func (c *simClient) send() {
	op := c.op
	op.attempt++
	attempt := op.attempt
	s := c.s
	n := s.node(c.target)
	register, session := op.in.Put && s.sessions && c.session == 0, c.session
	s.sched.After(s.requestDelay(), func() {
		if n.up() {
			n.clientRequest(c, op, register, session)
		}
	})
	timeout := simClientTimeout
	if op.in.Put {
		timeout = simRetryTimeout
	}
	s.sched.After(timeout, func() {
		if c.op == op && op.attempt == attempt {
			c.unknown(op)
		}
	})
}

// unknown handles an attempt whose outcome the client cannot learn: a put
// is resent with the same sequence number (to a server picked at random:
// the one it tried may be down), up to simMaxRetries times; anything else
// is given up.
func (c *simClient) unknown(op *simOp) {
	s := c.s
	if !op.in.Put || !s.sessions || s.calm || op.retries >= simMaxRetries {
		s.res.unsure++
		c.next()
		return
	}
	op.retries++
	s.res.retries++
	c.target = s.ids[s.rand.IntN(len(s.ids))]
	c.send()
}

// clientDelay is how long a message between a client and a server takes.
func (s *simCluster) clientDelay() sim.Time {
	return sim.Time(200 + s.rand.IntN(2000))
}

// requestDelay is how long a request takes to reach a server: as any
// client message, but now and then (a slow path, a retransmission) several
// election timeouts, so that a request can arrive after the client resent
// it and moved on — the stale copies sessions must refuse.
func (s *simCluster) requestDelay() sim.Time {
	if s.rand.IntN(200) == 0 {
		return simET + sim.Time(s.rand.Int64N(int64(7*simET)))
	}
	return s.clientDelay()
}

// reply delivers a server's answer to the client.
func (s *simCluster) reply(p simPending, a simAnswer) {
	c := p.client
	s.sched.After(s.clientDelay(), func() {
		op := c.op
		if op == nil || op.req != p.req {
			return // an answer to an operation the client gave up on
		}
		if p.register != (op.in.Put && c.session == 0) {
			return // about a registration, when another was answered first
		}
		switch a.kind {
		case replyOK:
			if op.in.Put {
				if w := s.writes[simReqID(c.id, op.req)]; !w.applied || w.out != a.out {
					s.fail("client %d put %d answered %+v, but its first apply (applied %v) returned %+v", c.id, op.req, a.out, w.applied, w.out)
					return
				}
			}
			s.hist.Return(op.hist, a.out, s.sched.Now())
			s.res.done++
			c.next()
		case replyUnknown:
			c.unknown(op)
		case replyRegistered:
			c.session = a.session
			s.res.registered++
			c.send()
		case replyRefused:
			if !errors.Is(a.err, ErrSessionExpired) {
				// One put outstanding per session: the current one is
				// never below the session's last.
				s.fail("client %d put %d refused: %v", c.id, op.req, a.err)
				return
			}
			s.res.expired++
			s.res.unsure++
			c.session = 0
			c.next()
		case replyRedirect:
			if a.leader != "" {
				c.target = a.leader
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

// clientRequest is a client operation arriving at a server: a session
// registration, a put in session, or a get.
func (n *simNode) clientRequest(c *simClient, op *simOp, register bool, session uint64) {
	s := n.s
	p := simPending{client: c, req: op.req, key: op.in.Key, register: register}
	s.record(n, "client", op.in.Key, uint64(c.id), op.req, session)
	if op.in.Put {
		cmd := simCommand{client: c.id, req: op.req, key: op.in.Key, value: op.in.Value}
		ents := []Log{{Type: LogCommand, Data: cmd.encode()}}
		if s.sessions {
			e := sessionEntry{op: sessionRegister, ttl: int64(s.sessionTTL)}
			if !register {
				e = sessionEntry{op: sessionCommand, session: session, seq: op.req, payload: cmd.encode()}
			}
			// The leader stamps the entry with its own clock, as the
			// driver's proposeBatch does (a follower's stamp is replaced
			// by the leader's when it forwards the entry).
			e.time = int64(n.clock())
			ents = []Log{{Type: LogSession, Data: e.encode()}}
		}
		index, err := n.c.propose(ents)
		if errors.Is(err, errNotLeader) && s.forward {
			// As the driver does: a follower hands the put to its leader.
			n.lastRead++
			if n.c.forwardProposals(n.lastRead, ents) == nil {
				n.fwdProps[n.lastRead] = p
				n.flush()
				return
			}
		}
		if err != nil {
			if errors.Is(err, ErrProposalQueueFull) {
				s.res.queueFull++
			}
			s.reply(p, simAnswer{kind: replyRedirect, leader: n.c.lead})
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
			s.reply(p, simAnswer{kind: replyRedirect, leader: n.c.lead})
			return
		}
		n.reads[n.lastRead] = p
	}
	n.flush()
}

// clock is the server's wall clock: virtual time off by the server's own
// offset, so that a new leader's clock may be behind its predecessor's.
func (n *simNode) clock() sim.Time { return n.s.sched.Now() + n.clockOffset }

// apply applies a committed entry — a session entry through the session
// table, the put it lets through to the key-value map — and answers the
// client that proposed it here.
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
	var (
		resp any
		err  error
	)
	switch e.Type {
	case LogCommand: // a plain put, without a session
		var ok bool
		if resp, ok = n.applyPut(e.Index, e.Data); !ok {
			return
		}
	case LogSession:
		st := n.fsm.sessions.begin(e.Index, e.Data)
		if st.kind == stepApply {
			var ok bool
			if resp, ok = n.applyPut(e.Index, st.cmd); !ok {
				return
			}
		}
		resp, err = n.fsm.sessions.finish(st, resp)
	default:
		return
	}
	p, ok := n.props[e.Index]
	if !ok {
		return
	}
	delete(n.props, e.Index)
	var a simAnswer
	switch {
	case p.term != e.Term:
		// Another entry took the index: the proposal never commits.
		a = simAnswer{kind: replyRedirect, leader: n.c.lead}
	case err != nil:
		a = simAnswer{kind: replyRefused, err: err}
	case p.register:
		a = simAnswer{kind: replyRegistered, session: resp.(uint64)}
	default:
		out, ok := decodeSimOutput(resp)
		if !ok {
			s.fail("%s answered put at %d with %#v", n.id, e.Index, resp)
			return
		}
		a = simAnswer{kind: replyOK, out: out}
	}
	s.reply(p, a)
}

// applyPut applies a put to the key-value map and returns the value it
// replaced, as the response the session keeps.
func (n *simNode) applyPut(index uint64, data []byte) (any, bool) {
	s := n.s
	cmd, ok := decodeSimCommand(data)
	if !ok {
		s.fail("%s applied an undecodable command at %d", n.id, index)
		return nil, false
	}
	prev, found := n.fsm.kv[cmd.key]
	out := sim.KVOutput{Value: prev, Found: found}
	id := simReqID(cmd.client, cmd.req)
	if w := s.writes[id]; w != nil && !w.applied {
		w.applied, w.at, w.index, w.out = true, s.sched.Now(), index, out
	}
	if n.fsm.seen[id] {
		s.fail("%s applied client %d request %d twice (again at index %d)", n.id, cmd.client, cmd.req, index)
	}
	if last := n.fsm.lastReq[cmd.client]; cmd.req < last && s.sessions {
		// A stale copy of a request the client gave up on or learned the
		// fate of: its session must refuse it. (Without sessions nothing
		// refuses a late copy of a put the client gave up on.)
		s.fail("%s applied client %d request %d after its request %d (at index %d)", n.id, cmd.client, cmd.req, last, index)
	}
	n.fsm.seen[id] = true
	n.fsm.lastReq[cmd.client] = cmd.req
	n.fsm.kv[cmd.key] = cmd.value
	return encodeSimOutput(out), true
}

// encodeSimOutput is a put's response as the session keeps it: "0" for
// none, "1" and the value otherwise.
func encodeSimOutput(o sim.KVOutput) string {
	if !o.Found {
		return "0"
	}
	return "1" + o.Value
}

func decodeSimOutput(v any) (sim.KVOutput, bool) {
	s, ok := v.(string)
	switch {
	case !ok || s == "":
		return sim.KVOutput{}, false
	case s == "0":
		return sim.KVOutput{}, true
	case s[0] == '1':
		return sim.KVOutput{Value: s[1:], Found: true}, true
	}
	return sim.KVOutput{}, false
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
		n.s.reply(p, simAnswer{kind: replyRedirect, leader: n.c.lead})
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
		n.s.reply(p, simAnswer{kind: replyUnknown})
	case r.err != nil:
		// Refused: not appended anywhere.
		n.s.reply(p, simAnswer{kind: replyRedirect, leader: n.c.lead})
	case r.index <= n.fsm.applied && r.index > n.c.log.snapIndex:
		n.s.fail("%s applied index %d before the answer to its forwarded proposal there (the core must hold applies back)", n.id, r.index)
	case r.index <= n.fsm.applied:
		// A snapshot installed since covered it.
		n.s.reply(p, simAnswer{kind: replyUnknown})
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
		n.s.reply(p, simAnswer{kind: replyOK, out: sim.KVOutput{Value: v, Found: found}})
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
			n.s.reply(n.props[i], simAnswer{kind: replyUnknown})
		}
		clear(n.props)
	}
	n.wasLeader, n.term = leading, n.c.term
}
