package raft

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"time"
)

// snapshotWindow is how many chunks of a snapshot may be in flight to one
// follower: the transfer's memory is bounded by snapshotWindow chunks,
// whatever the snapshot's size.
const snapshotWindow = 4

// maxSnapshotRetries is how many timeouts in a row a transfer survives
// (each resumes from the last acknowledged offset) before it fails.
const maxSnapshotRetries = 5

var crcTable = crc64.MakeTable(crc64.ECMA)

// snapshotSender streams one snapshot to one follower, in chunks of
// Config.SnapshotChunkSize with at most snapshotWindow unacknowledged. It
// runs on a goroutine of its own (counted in Raft.wg); the event loop hands
// it acknowledgements and stops it when the core's progress for the
// follower leaves snapshot state or the term changes.
type snapshotSender struct {
	r           *Raft
	to          ServerID
	addr        ServerAddress
	term, index uint64
	meta        SnapshotMeta
	acks        chan *Message
	stop        chan struct{}
	stopped     bool      // loop only
	started     time.Time // for metrics; zero when they are off
}

// startSender starts streaming the snapshot s asks for, unless a sender for
// it is running already. Event loop only.
func (r *Raft) startSender(s snapshotSend) {
	if old := r.senders[s.To]; old != nil {
		if old.index == s.Index && old.term == r.core.term {
			return
		}
		old.halt()
		delete(r.senders, s.To)
	}
	if r.snapMeta.Index != s.Index || r.snapMeta.ID == "" {
		r.logger.Error("no stored snapshot to send", "peer", s.To, "index", s.Index, "have", r.snapMeta.Index)
		r.core.snapshotSent(s.To, s.Index, false)
		return
	}
	snd := &snapshotSender{
		r: r, to: s.To, addr: r.route(&Message{To: s.To}).addr,
		term: r.core.term, index: s.Index, meta: r.snapMeta,
		acks: make(chan *Message, 64), stop: make(chan struct{}), started: r.metrics.now(),
	}
	r.senders[s.To] = snd
	r.logger.Info("sending snapshot", "peer", s.To, "id", snd.meta.ID, "index", s.Index, "size", snd.meta.Size)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := snd.run()
		if err == nil {
			return
		}
		r.logger.Warn("snapshot transfer failed", "peer", snd.to, "id", snd.meta.ID, "err", err)
		r.metrics.snapshotFailed()
		r.toLoop(func() {
			if r.senders[snd.to] == snd {
				delete(r.senders, snd.to)
				r.core.snapshotSent(snd.to, snd.index, false)
			}
		})
	}()
}

func (s *snapshotSender) halt() {
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
}

// snapshotAck hands a MsgSnapshotResp to the sender it answers. Event loop
// only.
func (r *Raft) snapshotAck(m *Message) {
	s := r.senders[m.From]
	if s == nil || m.Index != s.index || (m.Snapshot == nil && !m.Reject) {
		return
	}
	if m.Reject || (m.Snapshot != nil && m.Snapshot.Done) {
		// The core has acted on it; the transfer is over.
		if m.Reject {
			r.metrics.snapshotFailed()
		} else {
			r.metrics.snapshotDelivered(s.started)
		}
		s.halt()
		delete(r.senders, m.From)
		return
	}
	select {
	case s.acks <- m:
	default: // acknowledgements are cumulative: a later one will do
	}
}

// snapReader reads a snapshot from an offset, with the checksum of what
// came before.
type snapReader struct {
	rc  io.ReadCloser
	crc hash.Hash64
	off uint64
}

// open (re)opens the snapshot positioned at off.
func (s *snapshotSender) open(rd *snapReader, off uint64) error {
	if rd.rc != nil {
		rd.rc.Close()
		rd.rc = nil
	}
	_, rc, err := s.r.snaps.Open(s.meta.ID)
	if err != nil {
		return fmt.Errorf("snapshot %s: open: %w", s.meta.ID, err)
	}
	rd.rc, rd.crc, rd.off = rc, crc64.New(crcTable), 0
	if off > 0 {
		n, err := io.CopyN(rd.crc, rc, int64(off))
		rd.off = uint64(n)
		if err != nil {
			return fmt.Errorf("snapshot %s: skip to %d: %w", s.meta.ID, off, err)
		}
	}
	return nil
}

// run streams the snapshot until the follower answers that it installed
// it (the core sees that answer; the loop then stops the sender), the loop
// stops it, or it fails.
func (s *snapshotSender) run() error {
	r := s.r
	chunk := r.conf.SnapshotChunkSize
	window := uint64(snapshotWindow * chunk)
	timeout := max(2*r.conf.ElectionTimeout, 200*time.Millisecond)
	// On a Host, wait for a turn among its transfers (MaxSnapshotSends)
	// before opening the snapshot, so that waiting costs no reader.
	done, ok := r.acquireSendSlot(s.stop)
	if !ok {
		return nil
	}
	defer done()
	var rd snapReader
	defer func() {
		if rd.rc != nil {
			rd.rc.Close()
		}
	}()
	if err := s.open(&rd, 0); err != nil {
		return err
	}
	var acked uint64
	eof, retries := false, 0
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		paced := false
		for !eof && rd.off-acked < window {
			buf := make([]byte, chunk)
			n, err := io.ReadFull(rd.rc, buf)
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				eof = true
			case err != nil:
				return fmt.Errorf("snapshot %s: read at %d: %w", s.meta.ID, rd.off, err)
			}
			buf = buf[:n]
			rd.crc.Write(buf)
			c := &SnapshotChunk{ID: s.meta.ID, Offset: rd.off, Data: buf, Done: eof,
				Configuration: &s.meta.Configuration, ConfigurationIndex: s.meta.ConfigurationIndex}
			rd.off += uint64(n)
			if eof {
				c.Size, c.Checksum = rd.off, rd.crc.Sum64()
			}
			// The host's SnapshotSendRate, shared with its other
			// transfers.
			ok, waited := r.waitSendRate(n, s.stop)
			if !ok {
				return nil
			}
			paced = paced || waited
			s.send(c)
		}
		if paced {
			// The wait for the rate is not the follower's delay: time
			// its answer from the last chunk sent.
			resetTimer(timer, timeout)
		}
		select {
		case <-s.stop:
			return nil
		case <-r.shutdownCh:
			return nil
		case m := <-s.acks:
			off := m.Snapshot.Offset
			switch {
			case off > acked && off <= rd.off:
				acked, retries = off, 0
				resetTimer(timer, timeout)
			case off < acked || off > rd.off:
				// The follower holds less than acknowledged (it restarted
				// or began again), or more than this sender sent (what it
				// kept of this snapshot from an earlier term): resume
				// from what it has.
				if err := s.rewind(&rd, &acked, off, &eof); err != nil {
					return err
				}
				resetTimer(timer, timeout)
			}
		case <-timer.C:
			if eof && acked == rd.off {
				// Everything arrived; the follower is storing and
				// installing it. Wait longer before giving up.
				if retries++; retries > 4*maxSnapshotRetries {
					return errors.New("no answer after the last chunk")
				}
				timer.Reset(timeout)
				continue
			}
			if retries++; retries > maxSnapshotRetries {
				return fmt.Errorf("snapshot %s: no progress at offset %d after %d timeouts", s.meta.ID, acked, maxSnapshotRetries)
			}
			// Chunks or acknowledgements were lost: resume from the last
			// acknowledged offset.
			if err := s.rewind(&rd, &acked, acked, &eof); err != nil {
				return err
			}
			timer.Reset(timeout)
		}
	}
}

// rewind restarts the stream at off, which the follower holds; off past
// the snapshot's end fails the transfer.
func (s *snapshotSender) rewind(rd *snapReader, acked *uint64, off uint64, eof *bool) error {
	*acked, *eof = off, false
	return s.open(rd, off)
}

func (s *snapshotSender) send(c *SnapshotChunk) {
	m := &Message{
		Type: MsgSnapshot, From: s.r.conf.LocalID, FromAddr: s.r.trans.LocalAddr(), To: s.to,
		Term: s.term, Index: s.meta.Index, LogTerm: s.meta.Term, Snapshot: c,
	}
	s.r.sendNow(outMsg{addr: s.addr, msg: m})
	s.r.metrics.snapshotChunkSent(len(c.Data))
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}
