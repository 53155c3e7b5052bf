package tcp

import (
	"sync/atomic"

	"github.com/keelraft/raft"
)

// The outbound side's queues: a peer's two lanes, what they hold, and how
// the bytes they hold are counted.

type peer struct{ fast, bulk *lane }

// lane is one outbound queue, sender goroutine and connection to a peer.
type lane struct {
	addr   raft.ServerAddress
	name   string
	queue  chan queued
	bytes  atomic.Int64 // sum of the sizes in queue
	dialed bool         // a connection was dialed before
	// live is the lane's connection from its hello until it is known to
	// be dead, for PeerVersions.
	live atomic.Pointer[outConn]
	m    laneMetrics
}

// queued is a message in a lane's queue, with the size it was counted as
// and, in modeHost, its group (0 in modeSingle).
type queued struct {
	m    *raft.Message
	size int64
	g    raft.GroupID
}

// reserve counts size more bytes in l's queue unless they would exceed
// limit while it is not empty; it reports whether it did.
func (l *lane) reserve(size, limit int64) bool {
	for {
		cur := l.bytes.Load()
		if cur > 0 && cur+size > limit {
			return false
		}
		if l.bytes.CompareAndSwap(cur, cur+size) {
			return true
		}
	}
}

// take releases the bytes of q, just received from l's queue, and returns
// it.
func (l *lane) take(q queued) queued {
	l.bytes.Add(-q.size)
	l.queueChanged()
	return q
}

// Size estimates, in bytes, of what a message holds beyond its byte slices
// and strings.
const (
	msgOverhead    = 256 // the Message struct, its slice headers, the frame header
	entryOverhead  = 64  // a raft.Log in Entries, as raft's log cache counts it
	serverOverhead = 64  // a raft.Server in a snapshot chunk's configuration
)

// msgSize estimates the heap m takes: the lengths of its byte slices and
// strings plus fixed overheads. It is what QueueBytes and ConsumerBytes
// count.
func msgSize(m *raft.Message) int64 {
	n := msgOverhead + len(m.From) + len(m.FromAddr) + len(m.To) + len(m.Context)
	for i := range m.Entries {
		n += entryOverhead + len(m.Entries[i].Data)
	}
	if s := m.Snapshot; s != nil {
		n += msgOverhead + len(s.ID) + len(s.Data)
		if c := s.Configuration; c != nil {
			for _, srv := range c.Servers {
				n += serverOverhead + len(srv.ID) + len(srv.Address)
			}
			for _, srv := range c.Old {
				n += serverOverhead + len(srv.ID) + len(srv.Address)
			}
		}
	}
	return int64(n)
}
