package raft

import (
	"fmt"
	"hash"
	"hash/crc64"
	"time"
)

// recvChunk is a MsgSnapshot chunk the core accepted, and where answers go.
type recvChunk struct {
	m    *Message
	addr ServerAddress
}

// recvKey identifies a transfer: a new leader, snapshot or ID starts a new
// one. The leader's term is not part of it: an ID names one snapshot of
// one server, so a leader elected again in a later term that sends the
// same snapshot resumes where the transfer stopped instead of starting
// over (under load, with elections now and then, a large snapshot that
// restarts at every new term may never arrive).
type recvKey struct {
	from  ServerID
	index uint64
	id    string
}

// recvTransfer is a snapshot being received into a sink.
type recvTransfer struct {
	key     recvKey
	sink    SnapshotSink
	off     uint64
	crc     hash.Hash64
	started time.Time // for metrics; zero when they are off
}

// snapshotReceiver writes the chunks of a snapshot from the leader to a
// SnapshotSink as they arrive, on a goroutine of its own (counted in
// Raft.wg): a large snapshot never sits in memory, and the event loop never
// waits on the disk. Chunks must arrive in order: a duplicate or stale
// chunk is answered with the offset held (and otherwise ignored), a chunk
// beyond it too (the sender resumes from there), a chunk of another
// transfer at offset 0 starts that one. Only a complete snapshot whose size
// and checksum match is closed and reported to the loop for the core to
// install.
type snapshotReceiver struct {
	r     *Raft
	queue *workQueue[recvChunk]
	// Receiver goroutine only.
	cur      *recvTransfer
	lastDone recvKey
}

func newSnapshotReceiver(r *Raft) *snapshotReceiver {
	return &snapshotReceiver{r: r, queue: newWorkQueue[recvChunk]()}
}

func (rc *snapshotReceiver) submit(c recvChunk) { rc.queue.push(c) }

func (rc *snapshotReceiver) run() {
	for rc.runOnce() {
	}
}

// runOnce handles the chunks queued (waiting for one unless the receiver
// runs on a Host's pool) and reports whether the receiver is still open.
func (rc *snapshotReceiver) runOnce() bool {
	var chunks []recvChunk
	var open bool
	if rc.queue.wake != nil {
		chunks, open = rc.queue.take()
	} else {
		chunks, open = rc.queue.takeAll()
	}
	if !open {
		rc.abort()
		return false
	}
	for _, c := range chunks {
		rc.handle(c)
	}
	return true
}

func (rc *snapshotReceiver) abort() {
	if rc.cur != nil {
		rc.cur.sink.Cancel()
		rc.cur = nil
		rc.r.metrics.snapshotReceiveEnded(time.Time{}, false)
	}
}

func (rc *snapshotReceiver) handle(c recvChunk) {
	m, ch := c.m, c.m.Snapshot
	key := recvKey{from: m.From, index: m.Index, id: ch.ID}
	if rc.cur != nil && rc.cur.key != key {
		rc.r.logger.Info("snapshot transfer superseded", "id", rc.cur.key.id, "from", rc.cur.key.from, "by", ch.ID)
		rc.abort()
	}
	if rc.cur == nil {
		if key == rc.lastDone {
			return // a late copy of a finished transfer: the core answers
		}
		if ch.Offset != 0 {
			rc.answer(c, 0, false) // start again from the beginning
			return
		}
		sink, err := rc.r.snaps.Create(m.Index, m.LogTerm, *ch.Configuration, ch.ConfigurationIndex)
		if err != nil {
			rc.r.logger.Error("cannot store snapshot from leader", "id", ch.ID, "from", m.From, "err", err)
			rc.answer(c, 0, true)
			return
		}
		rc.cur = &recvTransfer{key: key, sink: sink, crc: crc64.New(crcTable), started: rc.r.metrics.now()}
	}
	t := rc.cur
	if ch.Offset != t.off {
		// A duplicate, a stale chunk or one after a lost chunk.
		rc.answer(c, t.off, false)
		return
	}
	if _, err := t.sink.Write(ch.Data); err != nil {
		rc.fail(c, fmt.Errorf("snapshot %s from %s: write: %w", ch.ID, m.From, err))
		return
	}
	t.crc.Write(ch.Data)
	t.off += uint64(len(ch.Data))
	rc.r.metrics.snapshotChunkReceived(len(ch.Data), t.off)
	if !ch.Done {
		rc.answer(c, t.off, false)
		return
	}
	if t.off != ch.Size || t.crc.Sum64() != ch.Checksum {
		rc.fail(c, fmt.Errorf("%w: snapshot %s from %s: received %d bytes with checksum %016x, want %d bytes with %016x",
			ErrSnapshotCorrupt, ch.ID, m.From, t.off, t.crc.Sum64(), ch.Size, ch.Checksum))
		return
	}
	// Everything arrived; tell the sender while the sink syncs.
	rc.answer(c, t.off, false)
	if err := t.sink.Close(); err != nil {
		rc.cur = nil
		rc.r.metrics.snapshotReceiveEnded(time.Time{}, false)
		rc.r.logger.Error("cannot store snapshot from leader", "id", ch.ID, "from", m.From, "err", err)
		rc.answer(c, 0, true)
		return
	}
	meta := SnapshotMeta{
		ID: t.sink.ID(), Index: m.Index, Term: m.LogTerm,
		Configuration: ch.Configuration.Clone(), ConfigurationIndex: ch.ConfigurationIndex, Size: int64(t.off),
	}
	rc.cur, rc.lastDone = nil, key
	rc.r.metrics.snapshotReceiveEnded(t.started, true)
	rc.r.logger.Info("received snapshot", "id", meta.ID, "leader_id", ch.ID, "from", m.From, "index", meta.Index, "size", meta.Size)
	rc.r.toLoop(func() { rc.r.core.snapshotReceived(meta, m.From) })
}

// fail gives the transfer up and tells the leader, which starts again.
func (rc *snapshotReceiver) fail(c recvChunk, err error) {
	rc.r.logger.Error("snapshot transfer refused", "err", err)
	rc.abort()
	rc.answer(c, 0, true)
}

func (rc *snapshotReceiver) answer(c recvChunk, off uint64, reject bool) {
	m := c.m
	resp := &Message{
		Type: MsgSnapshotResp, From: rc.r.conf.LocalID, FromAddr: rc.r.trans.LocalAddr(), To: m.From,
		Term: m.Term, Index: m.Index, Reject: reject,
		Snapshot: &SnapshotChunk{ID: m.Snapshot.ID, Offset: off},
	}
	rc.r.sendNow(outMsg{addr: c.addr, msg: resp})
}
