package multiwal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/keelraft/raft"
)

// Group is one Raft group's view of a WAL. It implements raft.LogStore
// and raft.StableStore; every call that changes state is durable when it
// returns and shares its write and fsync with concurrent calls of other
// groups. A Group is safe for concurrent use.
type Group struct {
	w  *WAL
	id uint64
}

var (
	_ raft.LogStore    = (*Group)(nil)
	_ raft.StableStore = (*Group)(nil)
)

// ID returns the group's ID.
func (g *Group) ID() uint64 { return g.id }

// FirstIndex implements raft.LogStore.
func (g *Group) FirstIndex() (uint64, error) {
	first, _, err := g.bounds()
	return first, err
}

// LastIndex implements raft.LogStore.
func (g *Group) LastIndex() (uint64, error) {
	_, last, err := g.bounds()
	return last, err
}

func (g *Group) bounds() (uint64, uint64, error) {
	w := g.w
	w.mu.RLock()
	defer w.mu.RUnlock()
	if err := w.usable(); err != nil {
		return 0, 0, err
	}
	s := w.groups[g.id]
	if s == nil || s.empty() {
		return 0, 0, nil
	}
	return s.first, s.last, nil
}

// readAhead is the most GetLog reads before it knows a record's length.
const readAhead = 4096

var scratch = sync.Pool{New: func() any { b := make([]byte, readAhead); return &b }}

// GetLog implements raft.LogStore. It reads the entry's record from its
// segment and verifies its checksum, group and index; a mismatch is an
// error wrapping ErrCorrupt. The returned Data is the caller's.
func (g *Group) GetLog(index uint64, log *raft.Log) error {
	w := g.w
	w.mu.RLock()
	defer w.mu.RUnlock()
	if err := w.usable(); err != nil {
		return err
	}
	s := w.groups[g.id]
	if s == nil {
		return raft.ErrLogNotFound
	}
	seg, off := s.locate(index)
	if seg == nil {
		return raft.ErrLogNotFound
	}
	sp := scratch.Get().(*[]byte)
	defer scratch.Put(sp)
	buf := *sp
	n, err := seg.f.ReadAt(buf, off)
	if n < recHeaderLen {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("multiwal: segment %d offset %d: %w", seg.id, off, err)
	}
	rec := buf[:n]
	if need := recHeaderLen + int64(le.Uint32(buf[4:])); need > int64(n) {
		if need > int64(recHeaderLen+entryHdrLen+w.opts.MaxEntrySize) {
			return &CorruptError{Segment: seg.id, File: seg.name, Offset: off, Reason: "record length overruns the segment"}
		}
		rec = make([]byte, need)
		if m, err := seg.f.ReadAt(rec, off); int64(m) < need {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("multiwal: segment %d offset %d: %w", seg.id, off, err)
		}
	}
	r, why := parseRecord(rec, 0)
	if why == "" && (r.Kind != kindEntry || le.Uint64(r.Payload) != g.id || le.Uint64(r.Payload[8:]) != index) {
		why = "record is not the expected entry"
	}
	if why != "" {
		return &CorruptError{Segment: seg.id, File: seg.name, Offset: off, Reason: why}
	}
	p := r.Payload
	*log = raft.Log{
		Index: index,
		Term:  le.Uint64(p[16:]),
		Type:  raft.LogType(p[24]),
		Data:  bytes.Clone(p[entryHdrLen:]),
	}
	if log.Data == nil {
		log.Data = []byte{}
	}
	return nil
}

// StoreLogs implements raft.LogStore. The entries must follow the
// group's last entry (stored, or being stored by a concurrent call of the
// same group) with consecutive indexes, or start the log at any index when
// it is empty. They are durable, all or none, when it returns.
func (g *Group) StoreLogs(logs []*raft.Log) error {
	return g.write(true, func(w *WAL, s *group) (bool, error) { return g.queueLogs(w, s, logs) })
}

// DeleteRange implements raft.LogStore. It deletes a prefix (after a
// snapshot), a suffix (a conflicting tail) or everything; a range in the
// middle is an error, and a range holding no entry does nothing. A record
// of the deletion is synced before it returns. Segments are deleted once
// no group has entries in them.
func (g *Group) DeleteRange(min, max uint64) error {
	return g.write(true, func(w *WAL, s *group) (bool, error) { return g.queueDelete(w, s, min, max) })
}

// Set implements raft.StableStore: it stores val under key, durably. An
// empty val deletes the key.
func (g *Group) Set(key []byte, val []byte) error {
	return g.write(true, func(w *WAL, s *group) (bool, error) { return g.queueSet(w, s, key, val) })
}

// write runs queue, which adds the call's records to the pending batch,
// under the WAL's lock, and then, if wait is set and it queued any, waits
// until they are durable.
func (g *Group) write(wait bool, queue func(*WAL, *group) (bool, error)) error {
	w := g.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	s := w.group(g.id)
	queued, err := queue(w, s)
	if !queued {
		w.forget(s)
		return err
	}
	if !wait {
		w.st.calls.Add(1)
		return nil
	}
	return w.commitLocked()
}

func (g *Group) queueLogs(w *WAL, s *group, logs []*raft.Log) (bool, error) {
	if len(logs) == 0 {
		return false, nil
	}
	want := s.rlast + 1
	if s.rlast < s.rfirst {
		want = logs[0].Index
	}
	for i, e := range logs {
		if e.Index == 0 || e.Index != want+uint64(i) {
			return false, fmt.Errorf("multiwal: group %d: StoreLogs: entry %d has index %d, want %d", g.id, i, e.Index, want+uint64(i))
		}
		if len(e.Data) > w.opts.MaxEntrySize {
			return false, fmt.Errorf("multiwal: group %d: StoreLogs: entry %d is %d bytes, more than MaxEntrySize %d", g.id, e.Index, len(e.Data), w.opts.MaxEntrySize)
		}
	}
	b := w.pending
	for _, e := range logs {
		b.buf = appendEntry(b.buf, g.id, e.Index, e.Term, uint8(e.Type), e.Data)
	}
	b.count += len(logs)
	s.pend += len(logs)
	if s.rlast < s.rfirst {
		s.rfirst = want
	}
	s.rlast = want + uint64(len(logs)) - 1
	return true, nil
}

func (g *Group) queueDelete(w *WAL, s *group, min, max uint64) (bool, error) {
	if s.rlast < s.rfirst || min > max || max < s.rfirst || min > s.rlast {
		return false, nil
	}
	first, last := s.rfirst, s.rlast
	b := w.pending
	switch {
	case min <= first && max >= last: // everything
		b.buf = appendU64s(b.buf, kindPrefix, g.id, last+1)
		s.rfirst = last + 1
	case min <= first: // a prefix
		b.buf = appendU64s(b.buf, kindPrefix, g.id, max+1)
		s.rfirst = max + 1
	case max >= last: // a suffix
		b.buf = appendU64s(b.buf, kindSuffix, g.id, min-1)
		s.rlast = min - 1
	default:
		return false, fmt.Errorf("multiwal: group %d: DeleteRange(%d, %d) would leave a gap in [%d, %d]", g.id, min, max, first, last)
	}
	b.count++
	s.pend++
	return true, nil
}

func (g *Group) queueSet(w *WAL, s *group, key, val []byte) (bool, error) {
	if len(key) > maxKeyLen {
		return false, fmt.Errorf("multiwal: group %d: Set: key of %d bytes, more than %d", g.id, len(key), maxKeyLen)
	}
	if len(val) > w.opts.MaxEntrySize {
		return false, fmt.Errorf("multiwal: group %d: Set: value of %d bytes, more than MaxEntrySize %d", g.id, len(val), w.opts.MaxEntrySize)
	}
	w.pending.buf = appendSet(w.pending.buf, g.id, key, val)
	w.pending.count++
	s.pend++
	return true, nil
}

// Get implements raft.StableStore: the value stored under key, or an
// empty value and a nil error when there is none.
func (g *Group) Get(key []byte) ([]byte, error) {
	w := g.w
	w.mu.RLock()
	defer w.mu.RUnlock()
	if err := w.usable(); err != nil {
		return nil, err
	}
	s := w.groups[g.id]
	if s == nil {
		return nil, nil
	}
	return bytes.Clone(s.stable[string(key)]), nil
}

// SetUint64 implements raft.StableStore: it stores val under key as 8
// big-endian bytes, durably.
func (g *Group) SetUint64(key []byte, val uint64) error {
	return g.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore: the value under key, or 0 when
// there is none. A value that is not 8 bytes is an error.
func (g *Group) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("multiwal: group %d: value of %q is %d bytes, not a uint64", g.id, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
