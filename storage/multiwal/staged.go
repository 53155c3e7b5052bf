package multiwal

import (
	"encoding/binary"

	"github.com/keelraft/raft"
)

var _ raft.SharedLogStore = (*Group)(nil)

// Staged returns the group's staged view (raft.SharedLogStore): its
// StoreLogs, DeleteRange, Set and SetUint64 queue their records and
// return before they are durable, and WAL.Sync makes them durable
// together with every other record queued before it, of any group. A
// raft.Host writes all the groups ready on one of its persist workers
// this way, with one write and one fsync for all of them.
//
// The view's checks are the Group's, done when a write is queued; a
// failed Sync fails the whole WAL, so no queued write is ever half
// acknowledged. Its reads see only what is durable.
func (g *Group) Staged() raft.StagedStore { return staged{g} }

type staged struct{ *Group }

func (s staged) StoreLogs(logs []*raft.Log) error {
	return s.write(false, func(w *WAL, st *group) (bool, error) { return s.queueLogs(w, st, logs) })
}

func (s staged) DeleteRange(min, max uint64) error {
	return s.write(false, func(w *WAL, st *group) (bool, error) { return s.queueDelete(w, st, min, max) })
}

func (s staged) Set(key, val []byte) error {
	return s.write(false, func(w *WAL, st *group) (bool, error) { return s.queueSet(w, st, key, val) })
}

func (s staged) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

func (s staged) Syncer() raft.Syncer { return s.w }

// Sync returns once every record queued before it, by staged writes of any
// group, is durable: it writes and syncs them itself unless a flush under
// way already holds them all. An error, or a WAL already failed, means
// none of them is durable (ErrFailed), or the WAL is closed (ErrClosed).
func (w *WAL) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if w.pending.count > 0 {
		return w.commitLocked()
	}
	// Everything queued is in the batch being flushed, if any.
	n := w.seq - 1
	for w.done < n {
		w.cond.Wait()
	}
	if n <= w.durable {
		return nil
	}
	return w.usable()
}
