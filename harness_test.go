package raft

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"
)

// coreNet drives several cores from one goroutine, step by step: the
// deterministic harness for protocol tests. Persisting is immediate and
// messages are delivered in FIFO order unless a test drops or holds them.
type coreNet struct {
	t     testing.TB
	ids   []ServerID
	nodes map[ServerID]*coreNode
	queue []Message
	// drop, when set, decides which messages are lost.
	drop func(m *Message) bool
	rng  *rand.Rand
	// trace hashes every message taken off the queue, in order: two runs
	// of one seed must produce the same hash.
	trace hash.Hash64
	// snaps holds every snapshot taken or received, by ID (snapshot_core_test.go).
	snaps map[string]*coreSnap
	// latestSnap is each server's newest snapshot.
	latestSnap map[ServerID]*coreSnap
	installs   int // snapshots installed from a leader
	loads      int // reads of entries evicted from a core's memory
}

// coreNode is one server: its core and what it made durable.
type coreNode struct {
	c       *core
	hs      hardState
	durable []Log // the LogStore: entries 1..n
	applied []Log
	reads   []readResult // answers to read requests, in order
	// proposed are answers to forwarded proposals, in order.
	proposed []proposeResult
	down     bool
	// holdApplies: the FSM takes the entries but does not report them
	// applied (a slow FSM).
	holdApplies bool
}

func testCoreConfig(id ServerID, seed uint64) coreConfig {
	return coreConfig{
		id: id, electionTicks: 10, heartbeatTicks: 1, leaseTicks: 10,
		preVote: true, checkQuorum: true,
		maxAppendEntries: 64, maxAppendBytes: 1 << 20,
		maxInflightMsgs: 8, maxInflightBytes: 0,
		rand: rand.New(rand.NewPCG(seed, uint64(len(id)))),
	}
}

func serverIDs(n int) []ServerID {
	ids := make([]ServerID, n)
	for i := range ids {
		ids[i] = ServerID(fmt.Sprintf("s%d", i+1))
	}
	return ids
}

func bootstrapConfig(ids []ServerID) Configuration {
	var c Configuration
	for _, id := range ids {
		c.Servers = append(c.Servers, Server{ID: id, Address: ServerAddress(id)})
	}
	return c
}

// newCoreNet starts n servers bootstrapped with one configuration entry,
// each with its own seeded random source.
func newCoreNet(t testing.TB, n int, seed uint64, tweak func(*coreConfig)) *coreNet {
	ids := serverIDs(n)
	net := &coreNet{t: t, ids: ids, nodes: map[ServerID]*coreNode{}, rng: rand.New(rand.NewPCG(seed, 0)), trace: fnv.New64a()}
	boot := Log{Index: 1, Term: 1, Type: LogConfiguration, Data: encodeConfiguration(bootstrapConfig(ids))}
	for i, id := range ids {
		nd := &coreNode{hs: hardState{Term: 1}, durable: []Log{boot}}
		cfg := testCoreConfig(id, seed*1000+uint64(i))
		if tweak != nil {
			tweak(&cfg)
		}
		nd.c = newCore(cfg, nd.hs, 0, 0, confEntry{}, slices.Clone(nd.durable))
		net.nodes[id] = nd
	}
	return net
}

// restart replaces a server's core with one built from its durable state.
func (net *coreNet) restart(id ServerID) {
	nd := net.nodes[id]
	cfg := nd.c.cfg
	nd.c = newCore(cfg, nd.hs, 0, 0, confEntry{}, slices.Clone(nd.durable))
	nd.applied = nil
	nd.down = false
}

// process acts on one server's outputs as the driver would: hard state,
// then the log, then messages, then applies.
func (net *coreNet) process(id ServerID) bool {
	nd := net.nodes[id]
	rd := nd.c.ready()
	if rd.empty() {
		return false
	}
	for _, err := range nd.c.violations {
		net.t.Errorf("%s: %v", id, err)
	}
	nd.c.violations = nil
	net.processSnapshots(id, &rd)
	if rd.hardState != nil {
		nd.hs = *rd.hardState
	}
	if len(rd.entries) > 0 {
		first := rd.entries[0].Index
		nd.durable = append(nd.durable[:first-1], rd.entries...)
	}
	net.queue = append(net.queue, rd.msgs...)
	net.queue = append(net.queue, rd.msgsAfterAppend...)
	if len(rd.entries) > 0 {
		last := rd.entries[len(rd.entries)-1]
		nd.c.persisted(last.Index, last.Term)
	}
	for _, ld := range rd.loads {
		// Read back what the LogStore holds, as the persister does.
		net.loads++
		nd.c.loaded(ld, slices.Clone(nd.durable[ld.Lo-1:ld.Hi]))
	}
	nd.reads = append(nd.reads, rd.reads...)
	nd.proposed = append(nd.proposed, rd.proposed...)
	if len(rd.apply) > 0 {
		nd.applied = append(nd.applied, rd.apply...)
		if !nd.holdApplies {
			nd.c.appliedTo(rd.apply[len(rd.apply)-1].Index)
		}
	}
	return true
}

// deliverOne delivers the oldest queued message; it reports false when none
// is queued.
func (net *coreNet) deliverOne() bool {
	if len(net.queue) == 0 {
		return false
	}
	m := net.queue[0]
	net.queue = net.queue[1:]
	if b, err := EncodeMessage(&m); err == nil {
		net.trace.Write(b)
	}
	to := net.nodes[m.To]
	if to == nil || to.down || net.nodes[m.From].down || (net.drop != nil && net.drop(&m)) {
		return true
	}
	to.c.step(&m)
	net.process(m.To)
	return true
}

// settle processes every server and delivers messages until nothing moves.
func (net *coreNet) settle() {
	for i := 0; ; i++ {
		if i > 1_000_000 {
			net.t.Fatal("coreNet did not settle")
		}
		moved := false
		for _, id := range net.ids {
			if !net.nodes[id].down && net.process(id) {
				moved = true
			}
		}
		if net.deliverOne() {
			moved = true
		}
		if !moved {
			return
		}
	}
}

// tickAll ticks every live server once, then settles.
func (net *coreNet) tickAll() {
	for _, id := range net.ids {
		if !net.nodes[id].down {
			net.nodes[id].c.tick()
		}
	}
	net.settle()
}

// elect makes id campaign and settles; the caller checks the outcome.
func (net *coreNet) elect(id ServerID) {
	net.nodes[id].c.campaign(campaignElection)
	net.settle()
}

func (net *coreNet) leaders() []ServerID {
	var ls []ServerID
	for _, id := range net.ids {
		if nd := net.nodes[id]; !nd.down && nd.c.role == roleLeader {
			ls = append(ls, id)
		}
	}
	return ls
}

// propose proposes one command on id and settles.
func (net *coreNet) propose(id ServerID, data string) uint64 {
	idx, err := net.nodes[id].c.propose([]Log{{Type: LogCommand, Data: []byte(data)}})
	if err != nil {
		net.t.Fatalf("propose on %s: %v", id, err)
	}
	net.settle()
	return idx
}

// commands returns the data of the applied commands of id.
func (net *coreNet) commands(id ServerID) []string {
	var out []string
	for _, e := range net.nodes[id].applied {
		if e.Type == LogCommand {
			out = append(out, string(e.Data))
		}
	}
	return out
}
