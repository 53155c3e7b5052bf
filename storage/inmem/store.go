package inmem

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/keelraft/raft"
)

// ErrFailed is wrapped by every write to a Store after FailWhen failed one of
// its writes. (A write rejected for its arguments stores nothing but does not
// fail the Store: nothing reached the disk.) A real disk store cannot tell which part of a failed write reached
// the disk, so it must stop; keel has to survive its store going away like
// that rather than retry into an unknown state.
var ErrFailed = errors.New("store failed")

// Op names a kind of write, so that FailWhen can target it.
type Op int

const (
	// OpStoreLogs is a call of StoreLogs.
	OpStoreLogs Op = iota
	// OpDeleteRange is a call of DeleteRange.
	OpDeleteRange
	// OpSet is a call of Set or SetUint64: both write the same key space.
	OpSet

	numOps
)

// String returns the name of the method the Op stands for.
func (o Op) String() string {
	switch o {
	case OpStoreLogs:
		return "StoreLogs"
	case OpDeleteRange:
		return "DeleteRange"
	case OpSet:
		return "Set"
	default:
		return fmt.Sprintf("Op(%d)", int(o))
	}
}

// StoreStats counts a Store's successful writes, so that tests and
// benchmarks can check how much keel batches its appends.
type StoreStats struct {
	// StoreLogsCalls is the number of StoreLogs calls that returned nil.
	StoreLogsCalls uint64
	// LogsStored is the number of entries those calls stored.
	LogsStored uint64
}

// minCompact is the dead prefix below which DeleteRange does not bother to
// copy the live entries to a fresh slice: copying a few entries to save a few
// hundred bytes is not worth it.
const minCompact = 64

// Store is an in-memory raft.LogStore and raft.StableStore. Its zero value is
// not usable; call NewStore.
type Store struct {
	mu sync.RWMutex

	// buf[head:] holds the entries, buf[head] having index first. A slice
	// rather than a map keeps GetLog O(1) without hashing and appends
	// amortised O(1); head lets a prefix be dropped without copying, and the
	// dead prefix is released once it outweighs the live entries.
	buf   []raft.Log
	head  int
	first uint64

	kv map[string][]byte

	failWhen func(op Op, n int) error
	calls    [numOps]int
	// failed is the error that failed the store, nil while it works.
	failed error
	stats  StoreStats

	stall stallGate // stall.go: writes hang until released
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// NewStore returns an empty, working Store.
func NewStore() *Store {
	return &Store{kv: make(map[string][]byte)}
}

// FailWhen makes f decide the fate of every later write: before performing
// the n-th call of op (n counts every call of that op on this Store, from 1,
// including rejected ones), the Store calls f(op, n), and if f returns an
// error the call stores nothing, returns that error and fails the Store for
// good. f runs with the Store locked, so it must not call the Store. A nil f
// removes the hook; it does not revive a failed Store.
func (s *Store) FailWhen(f func(op Op, n int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWhen = f
}

// Stats returns the counters of successful writes so far.
func (s *Store) Stats() StoreStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stats
}

// Crash returns what a server restarted after a crash would find: a new,
// working Store holding exactly the durable state of s, with no FailWhen hook
// and zeroed counters and Stats. Since each successful call is durable and a
// failed one stores nothing, that is everything s holds now, failed or not.
// The two Stores share nothing mutable, so later writes to either do not show
// in the other; s keeps working (or stays failed), as a test may want to
// inspect it.
func (s *Store) Crash() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := NewStore()
	// Log.Data is immutable by contract, so copying the structs is enough.
	c.buf = append([]raft.Log(nil), s.buf[s.head:]...)
	c.first = s.first
	for k, v := range s.kv {
		c.kv[k] = bytes.Clone(v)
	}
	return c
}

// beginWrite runs the checks every write shares, with s.mu held: the store
// must not have failed, and the FailWhen hook must let the call through.
func (s *Store) beginWrite(op Op) error {
	s.calls[op]++
	if s.failed != nil {
		return fmt.Errorf("inmem: %v: %w (earlier error: %w)", op, ErrFailed, s.failed)
	}
	if s.failWhen == nil {
		return nil
	}
	if err := s.failWhen(op, s.calls[op]); err != nil {
		s.failed = fmt.Errorf("%v call %d: %w", op, s.calls[op], err)
		return fmt.Errorf("inmem: %v: %w", op, err)
	}
	return nil
}

// lastLocked returns the last index, or 0 when the store is empty.
func (s *Store) lastLocked() uint64 {
	n := len(s.buf) - s.head
	if n == 0 {
		return 0
	}
	return s.first + uint64(n) - 1
}

// FirstIndex returns the index of the first stored entry, or 0 when the store
// is empty.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.buf) == s.head {
		return 0, nil
	}
	return s.first, nil
}

// LastIndex returns the index of the last stored entry, or 0 when the store is
// empty.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastLocked(), nil
}

// GetLog copies the entry at index into log, or returns raft.ErrLogNotFound,
// unwrapped, when index is outside [FirstIndex, LastIndex]. log.Data shares
// the stored bytes, which nobody may modify.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.buf) == s.head || index < s.first || index > s.lastLocked() {
		return raft.ErrLogNotFound
	}
	*log = s.buf[s.head+int(index-s.first)]
	return nil
}

// StoreLogs appends copies of the entries, atomically: it rejects, storing
// nothing, a batch that is not contiguous or does not start right after
// LastIndex. An empty store accepts any first index above 0, since a log
// restarts after a snapshot. The caller may reuse logs and the Log structs
// afterwards, but not the Data they point to.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	s.stall.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.beginWrite(OpStoreLogs); err != nil {
		return err
	}
	// Validate everything before appending anything: a partial append would
	// break the all-or-nothing promise of the interface.
	last := s.lastLocked()
	for i, l := range logs {
		switch {
		case l == nil:
			return fmt.Errorf("inmem: StoreLogs: entry %d of the batch is nil", i)
		case i > 0 && l.Index != logs[i-1].Index+1:
			return fmt.Errorf("inmem: StoreLogs: entry %d does not follow entry %d in the batch", l.Index, logs[i-1].Index)
		case i == 0 && last != 0 && l.Index != last+1:
			return fmt.Errorf("inmem: StoreLogs: entry %d does not follow last index %d", l.Index, last)
		case i == 0 && l.Index == 0:
			return errors.New("inmem: StoreLogs: entry 0: indexes start at 1")
		}
	}
	if len(logs) > 0 && last == 0 {
		// Emptying the store reset buf and head, so only first is stale.
		s.first = logs[0].Index
	}
	for _, l := range logs {
		s.buf = append(s.buf, *l)
	}
	s.stats.StoreLogsCalls++
	s.stats.LogsStored += uint64(len(logs))
	return nil
}

// DeleteRange deletes the entries with min <= index <= max. Only a prefix or
// a suffix of the stored range may go, as keel never needs more and a hole
// would break the contiguity every other method relies on; a hole is an
// error. Indexes outside the stored range are ignored, so deleting up to a
// snapshot beyond LastIndex empties the store.
func (s *Store) DeleteRange(min, max uint64) error {
	s.stall.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.beginWrite(OpDeleteRange); err != nil {
		return err
	}
	if min > max {
		return fmt.Errorf("inmem: DeleteRange: min %d is above max %d", min, max)
	}
	first, last := s.first, s.lastLocked()
	if last == 0 || max < first || min > last {
		return nil
	}
	switch {
	case min <= first && max >= last:
		// Drop the whole buffer so that its memory goes with the entries.
		s.buf, s.head, s.first = nil, 0, 0
	case min <= first:
		n := int(max - first + 1)
		// Zero the dead entries so that their Data can be collected before
		// the slice itself is.
		clear(s.buf[s.head : s.head+n])
		s.head += n
		s.first = max + 1
		if s.head >= minCompact && s.head >= len(s.buf)-s.head {
			// Copying the live entries costs no more than the deletions
			// since the last copy did, so prefix deletion stays amortised
			// O(1) per entry while the dead prefix stays bounded.
			s.buf = append([]raft.Log(nil), s.buf[s.head:]...)
			s.head = 0
		}
	case max >= last:
		cut := s.head + int(min-first)
		clear(s.buf[cut:])
		s.buf = s.buf[:cut]
	default:
		return fmt.Errorf("inmem: DeleteRange: [%d, %d] would leave a hole in [%d, %d]; only a prefix or a suffix can be deleted", min, max, first, last)
	}
	return nil
}

// Set stores a copy of val under key.
func (s *Store) Set(key []byte, val []byte) error {
	s.stall.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.beginWrite(OpSet); err != nil {
		return err
	}
	s.kv[string(key)] = bytes.Clone(val)
	return nil
}

// Get returns a copy of the value under key, or nil and a nil error when there
// is none.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return bytes.Clone(s.kv[string(key)]), nil
}

// SetUint64 stores val under key as 8 big-endian bytes, in the same key space
// as Set, as a disk store would.
func (s *Store) SetUint64(key []byte, val uint64) error {
	s.stall.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.beginWrite(OpSet); err != nil {
		return err
	}
	s.kv[string(key)] = binary.BigEndian.AppendUint64(nil, val)
	return nil
}

// GetUint64 returns the value SetUint64 stored under key, or 0 and a nil error
// when there is none. A value of another length, written by Set, is an error
// rather than a guess.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.kv[string(key)]
	if !ok {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("inmem: GetUint64: value under key %q is %d bytes, not 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
