package inmem

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/keelraft/raft"
)

// SnapshotStore is an in-memory raft.SnapshotStore. Its zero value is not
// usable; call NewSnapshotStore or NewSnapshotStoreRetain.
type SnapshotStore struct {
	mu     sync.Mutex
	retain int
	// seq numbers snapshots in creation order: it makes IDs unique when two
	// snapshots share a term and index, and orders them without a clock, so
	// that tests stay deterministic.
	seq uint64
	// snaps holds the closed snapshots, newest first. They are immutable, so
	// Crash copies and Open readers can share them.
	snaps []*snapshot
}

type snapshot struct {
	meta raft.SnapshotMeta
	seq  uint64
	data []byte
}

var _ raft.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns an empty SnapshotStore keeping the 2 newest
// snapshots: the newest, and one to fall back on should the newest turn out
// unusable.
func NewSnapshotStore() *SnapshotStore {
	return NewSnapshotStoreRetain(2)
}

// NewSnapshotStoreRetain returns an empty SnapshotStore keeping the n newest
// snapshots. It panics if n < 1, as a store that keeps nothing is a bug in the
// test, not a condition to handle.
func NewSnapshotStoreRetain(n int) *SnapshotStore {
	if n < 1 {
		panic(fmt.Sprintf("inmem: NewSnapshotStoreRetain: retain %d, want at least 1", n))
	}
	return &SnapshotStore{retain: n}
}

// Create starts a snapshot with ID "<term>-<index>-<seq>", seq counting the
// snapshots created by this store. It is invisible until its sink is closed.
// configuration is copied, so the caller may reuse it.
func (s *SnapshotStore) Create(index, term uint64, configuration raft.Configuration, configurationIndex uint64) (raft.SnapshotSink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return &sink{store: s, snap: &snapshot{
		seq: s.seq,
		meta: raft.SnapshotMeta{
			ID:                 fmt.Sprintf("%d-%d-%d", term, index, s.seq),
			Index:              index,
			Term:               term,
			Configuration:      configuration.Clone(),
			ConfigurationIndex: configurationIndex,
		},
	}}, nil
}

// List returns copies of the metadata of the retained snapshots, newest
// (highest Index, then latest created) first.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	metas := make([]*raft.SnapshotMeta, len(s.snaps))
	for i, snap := range s.snaps {
		metas[i] = snap.metaCopy()
	}
	return metas, nil
}

// Open returns a copy of the snapshot's metadata and a reader over its bytes.
// The reader shares the stored bytes, which never change once the sink is
// closed, and stays readable even if retention drops the snapshot meanwhile.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, snap := range s.snaps {
		if snap.meta.ID == id {
			return snap.metaCopy(), io.NopCloser(bytes.NewReader(snap.data)), nil
		}
	}
	return nil, nil, fmt.Errorf("inmem: Open: no snapshot with ID %q", id)
}

// Crash returns what a restarted server would find: a new SnapshotStore with
// the same retention holding the closed snapshots of s and none of those
// still being written. Sinks of s still open write only to s.
func (s *SnapshotStore) Crash() *SnapshotStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The seq carries over so that the copy never reuses an ID it holds.
	return &SnapshotStore{retain: s.retain, seq: s.seq, snaps: slices.Clone(s.snaps)}
}

func (snap *snapshot) metaCopy() *raft.SnapshotMeta {
	m := snap.meta
	m.Configuration = m.Configuration.Clone()
	return &m
}

// newer orders snapshots newest first: by Index, then by creation, since of
// two snapshots at one index the later reflects the later decision.
func newer(a, b *snapshot) int {
	if c := cmp.Compare(b.meta.Index, a.meta.Index); c != 0 {
		return c
	}
	return cmp.Compare(b.seq, a.seq)
}

// sink buffers a snapshot until Close publishes it. Its state is guarded by
// the store's mutex, as Close has to take it anyway.
type sink struct {
	store *SnapshotStore
	snap  *snapshot
	// done is "closed" or "cancelled" once the sink is finished.
	done string
}

func (k *sink) finished(op string) error {
	if k.done == "" {
		return nil
	}
	return fmt.Errorf("inmem: snapshot %s: %s: sink already %s", k.snap.meta.ID, op, k.done)
}

// ID returns the ID the snapshot has once closed.
func (k *sink) ID() string { return k.snap.meta.ID }

// Write appends p to the snapshot.
func (k *sink) Write(p []byte) (int, error) {
	k.store.mu.Lock()
	defer k.store.mu.Unlock()
	if err := k.finished("Write"); err != nil {
		return 0, err
	}
	k.snap.data = append(k.snap.data, p...)
	return len(p), nil
}

// Close publishes the snapshot and drops the oldest ones beyond retention,
// which may be this one if newer snapshots were closed first.
func (k *sink) Close() error {
	s := k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := k.finished("Close"); err != nil {
		return err
	}
	k.done = "closed"
	k.snap.meta.Size = int64(len(k.snap.data))
	i, _ := slices.BinarySearchFunc(s.snaps, k.snap, newer)
	s.snaps = slices.Insert(s.snaps, i, k.snap)
	if len(s.snaps) > s.retain {
		clear(s.snaps[s.retain:])
		s.snaps = s.snaps[:s.retain]
	}
	return nil
}

// Cancel discards the snapshot. Cancelling twice is harmless, as error paths
// often cancel defensively; cancelling a closed snapshot is an error, as it is
// durable by then and stays.
func (k *sink) Cancel() error {
	k.store.mu.Lock()
	defer k.store.mu.Unlock()
	if k.done == "cancelled" {
		return nil
	}
	if err := k.finished("Cancel"); err != nil {
		return err
	}
	k.done = "cancelled"
	k.snap.data = nil
	return nil
}
