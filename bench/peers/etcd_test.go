package peers

import (
	"encoding/binary"
	"errors"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// BenchmarkEtcdApply measures etcd-io/raft, which is a bare state machine
// (RawNode) without storage, transport or futures: this file supplies a
// minimal driver. Each of the 3 nodes has one goroutine that ticks every
// etcdTick, steps incoming messages and proposals, and handles each Ready
// in order (save HardState and entries to a MemoryStorage, send messages,
// apply committed entries, Advance). Messages travel by pointer over
// buffered channels, without encoding. Timings match keel's defaults
// (heartbeat 1 tick = 100ms, election timeout 10 ticks = 1s, randomised
// to [1s, 2s) as in keel); the rest is what etcd's server configures
// (MaxSizePerMsg 1 MiB, MaxInflightMsgs 512, CheckQuorum, PreVote).
//
// etcd-io/raft has no futures, so Apply is built here: the command's first
// 8 bytes are overwritten with a unique ID (the command stays 128 bytes),
// the proposer registers a channel under that ID with the leader's loop,
// and the loop signals it when it applies the entry.
func BenchmarkEtcdApply(b *testing.B) { benchApply(b, startEtcd) }

const (
	etcdTick      = 100 * time.Millisecond
	etcdInboxSize = 4096
)

type etcdProposal struct {
	id   uint64
	data []byte
	done chan error
}

type etcdNode struct {
	id      uint64
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	inbox   chan *pb.Message
	propc   chan etcdProposal
	peers   []*etcdNode // by ID-1
	waiters map[uint64]chan error
	state   atomic.Uint64 // raft.StateType
	drops   *atomic.Uint64
}

type etcdCluster struct {
	nodes  []*etcdNode
	leader *etcdNode
	nextID atomic.Uint64
	drops  atomic.Uint64
	stop   chan struct{}
	wg     sync.WaitGroup
	b      *testing.B
}

var errEtcdStopped = errors.New("etcd cluster stopped")
var errEtcdLostLeadership = errors.New("etcd leader stepped down")

func startEtcd(b *testing.B) cluster {
	b.Helper()
	c := &etcdCluster{stop: make(chan struct{}), b: b}
	voters := []uint64{1, 2, 3}
	logger := &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}
	for _, id := range voters {
		storage := raft.NewMemoryStorage()
		// The initial membership, as a snapshot at index 1, term 1 (as
		// keel's BootstrapCluster writes its configuration entry there).
		err := storage.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			ConfState: &pb.ConfState{Voters: voters},
			Index:     new(uint64(1)),
			Term:      new(uint64(1)),
		}})
		if err != nil {
			b.Fatal(err)
		}
		rn, err := raft.NewRawNode(&raft.Config{
			ID:                        id,
			ElectionTick:              10,
			HeartbeatTick:             1,
			Storage:                   storage,
			MaxSizePerMsg:             1 << 20,
			MaxInflightMsgs:           512,
			MaxUncommittedEntriesSize: 1 << 30,
			CheckQuorum:               true,
			PreVote:                   true,
			Logger:                    logger,
		})
		if err != nil {
			b.Fatal(err)
		}
		c.nodes = append(c.nodes, &etcdNode{
			id:      id,
			rn:      rn,
			storage: storage,
			inbox:   make(chan *pb.Message, etcdInboxSize),
			propc:   make(chan etcdProposal, 256),
			waiters: make(map[uint64]chan error),
			drops:   &c.drops,
		})
	}
	for _, n := range c.nodes {
		n.peers = c.nodes
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			n.run(c.stop)
		}()
	}
	waitFor(b, leaderTimeout, "etcd leader", func() bool {
		for _, n := range c.nodes {
			if raft.StateType(n.state.Load()) == raft.StateLeader {
				c.leader = n
				return true
			}
		}
		return false
	})
	return c
}

func (c *etcdCluster) Apply(cmd []byte) error {
	data := make([]byte, len(cmd))
	copy(data, cmd)
	id := c.nextID.Add(1)
	binary.LittleEndian.PutUint64(data, id)
	p := etcdProposal{id: id, data: data, done: make(chan error, 1)}
	select {
	case c.leader.propc <- p:
	case <-c.stop:
		return errEtcdStopped
	}
	select {
	case err := <-p.done:
		return err
	case <-c.stop:
		return errEtcdStopped
	}
}

func (c *etcdCluster) Shutdown() {
	close(c.stop)
	c.wg.Wait()
	if d := c.drops.Load(); d > 0 {
		c.b.Logf("etcd: %d messages dropped on full inboxes", d)
	}
}

func (n *etcdNode) run(stop <-chan struct{}) {
	ticker := time.NewTicker(etcdTick)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			n.rn.Tick()
		case m := <-n.inbox:
			n.step(m)
		case p := <-n.propc:
			n.propose(p)
		}
		// Take whatever else is already queued, so that one Ready covers it.
	drain:
		for i := 0; i < etcdInboxSize; i++ {
			select {
			case m := <-n.inbox:
				n.step(m)
			case p := <-n.propc:
				n.propose(p)
			default:
				break drain
			}
		}
		if n.rn.HasReady() {
			n.handleReady()
		}
	}
}

func (n *etcdNode) step(m *pb.Message) {
	// Errors are for local message types and unknown peers; neither occurs.
	_ = n.rn.Step(m)
}

func (n *etcdNode) propose(p etcdProposal) {
	n.waiters[p.id] = p.done
	if err := n.rn.Propose(p.data); err != nil {
		delete(n.waiters, p.id)
		p.done <- err
	}
}

func (n *etcdNode) handleReady() {
	rd := n.rn.Ready()
	if rd.SoftState != nil {
		n.state.Store(uint64(rd.SoftState.RaftState))
		if rd.SoftState.RaftState != raft.StateLeader {
			for id, done := range n.waiters {
				delete(n.waiters, id)
				done <- errEtcdLostLeadership
			}
		}
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
			panic(err)
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.storage.SetHardState(rd.HardState); err != nil {
			panic(err)
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		panic(err)
	}
	for _, m := range rd.Messages {
		select {
		case n.peers[m.GetTo()-1].inbox <- m:
		default:
			n.drops.Add(1)
		}
	}
	for _, e := range rd.CommittedEntries {
		// Only normal entries with data are commands; the leader's empty
		// entry and configuration changes never come up here.
		if e.GetType() != pb.EntryType_EntryNormal || len(e.GetData()) < 8 {
			continue
		}
		id := binary.LittleEndian.Uint64(e.GetData())
		if done, ok := n.waiters[id]; ok {
			delete(n.waiters, id)
			done <- nil
		}
	}
	n.rn.Advance(rd)
}
