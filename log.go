package raft

import (
	"errors"
	"fmt"
)

// LogType says what a log entry carries.
type LogType uint8

const (
	// LogCommand is an entry proposed with Apply; its Data goes to FSM.Apply.
	LogCommand LogType = iota
	// LogNoop is the entry a new leader appends at the start of its term so
	// that entries of earlier terms commit (Raft paper §5.4.2). Barrier also
	// uses it.
	LogNoop
	// LogConfiguration carries a cluster membership configuration.
	LogConfiguration
	// LogSession carries a client session operation: RegisterSession,
	// ApplySession or CloseSession. keel applies it to its session table;
	// the FSM sees only the commands the table lets through, each as a
	// LogCommand entry (same Index and Term) whose Data is the command.
	LogSession

	// lastLogType is the newest type this build knows. A later release
	// adds types after it; this one refuses them (ErrUnsupportedVersion).
	lastLogType = LogSession
)

// String returns the name of the log type.
func (t LogType) String() string {
	switch t {
	case LogCommand:
		return "LogCommand"
	case LogNoop:
		return "LogNoop"
	case LogConfiguration:
		return "LogConfiguration"
	case LogSession:
		return "LogSession"
	default:
		return fmt.Sprintf("LogType(%d)", uint8(t))
	}
}

// newerEntryType returns an ErrUnsupportedVersion error if an entry has a
// type newer than this build knows.
func newerEntryType(ents []Log) error {
	for i := range ents {
		if ents[i].Type > lastLogType {
			return fmt.Errorf("%w: entry %d has type %d, this build knows types up to %d", ErrUnsupportedVersion, ents[i].Index, ents[i].Type, lastLogType)
		}
	}
	return nil
}

// Log is one entry of the replicated log.
type Log struct {
	// Index is the entry's position in the log; the first entry has index 1.
	Index uint64
	// Term is the leader's term when the entry was created.
	Term uint64
	// Type says how Data is interpreted.
	Type LogType
	// Data is the command (LogCommand), the encoded configuration
	// (LogConfiguration) or the encoded session operation (LogSession). It
	// must not be modified once the entry is proposed.
	Data []byte
}

// ErrLogNotFound is returned by a LogStore when the requested entry is not
// stored.
var ErrLogNotFound = errors.New("log not found")

// LogStore stores the replicated log durably. Methods are called from one
// goroutine at a time but not always the same one.
//
// A LogStore must hold a contiguous range of entries [FirstIndex, LastIndex].
// StoreLogs must not return until the entries are durable: keel acknowledges
// entries to the leader, and counts them toward a commit, on that promise.
type LogStore interface {
	// FirstIndex returns the index of the first stored entry, or 0 when the
	// store is empty.
	FirstIndex() (uint64, error)
	// LastIndex returns the index of the last stored entry, or 0 when the
	// store is empty.
	LastIndex() (uint64, error)
	// GetLog fills log with the entry at index, or returns ErrLogNotFound.
	GetLog(index uint64, log *Log) error
	// StoreLogs appends entries, which follow the last stored entry (or start
	// a new log when the store is empty), durably and atomically: after a
	// crash either all of them are there or none.
	StoreLogs(logs []*Log) error
	// DeleteRange removes the entries with min <= index <= max. keel only
	// deletes a prefix (after a snapshot) or a suffix (a conflicting tail).
	DeleteRange(min, max uint64) error
}

// StableStore stores small values durably: the current term and vote among
// them. Set and SetUint64 must not return until the value is durable.
type StableStore interface {
	// Set stores val under key, durably.
	Set(key []byte, val []byte) error
	// Get returns the value stored under key, or an empty value and a nil
	// error when there is none.
	Get(key []byte) ([]byte, error)
	// SetUint64 stores val under key, durably.
	SetUint64(key []byte, val uint64) error
	// GetUint64 returns the value stored under key, or 0 and a nil error when
	// there is none.
	GetUint64(key []byte) (uint64, error)
}

// SharedLogStore is an optional interface of a store that many groups of
// a Host share, such as storage/multiwal's Group: one value that is both
// the group's LogStore and its StableStore. A Host writes the entries and
// term/vote records of every group ready on one persist worker through
// their staged views, and then makes them all durable with one Sync: one
// write and one fsync for the lot, instead of one per group. A group
// uses it only when its StableStore is the same value as its LogStore.
type SharedLogStore interface {
	LogStore
	StableStore
	// Staged returns a view of the same store whose writes (StoreLogs,
	// DeleteRange, Set, SetUint64) return once they are queued, in order
	// with the store's other writes, before they are durable. Its reads
	// see only what is durable.
	Staged() StagedStore
}

// StagedStore is a SharedLogStore's staged view.
type StagedStore interface {
	LogStore
	StableStore
	// Syncer makes the view's queued writes durable. The views of groups
	// sharing one log return the same Syncer, so one Sync serves them
	// all.
	Syncer() Syncer
}

// Syncer is the shared log of StagedStores.
type Syncer interface {
	// Sync returns once every write queued before it was called, by any
	// group, is durable. After an error none of them may be taken as
	// durable, and the log accepts no more writes.
	Sync() error
}

// raftLog is the core's view of the log: the entries after the last
// snapshot, with the indexes that say how far each stage got. The newest
// entries are in memory; older ones that are applied and durable may be
// evicted to bound memory (logcache.go), leaving only their terms here and
// the entries themselves in the LogStore.
//
// Invariants: applied <= applying <= min(committed, stable);
// snapIndex <= base <= max(snapIndex, min(applied, stable));
// snapIndex <= committed; entries[i].Index == base+1+i.
type raftLog struct {
	// snapIndex and snapTerm identify the last entry covered by a
	// snapshot, or (0, 0).
	snapIndex, snapTerm uint64
	// base is the index just before entries[0]: snapIndex, or the last
	// entry evicted from memory. runs hold the terms of (snapIndex, base].
	base    uint64
	runs    []termRun
	entries []Log
	// memBytes is the size of the entries in memory (entrySize),
	// appliedBytes the part of it at or below applied, and backlogBytes
	// the part in (applied, applying]: with the applier, not yet applied.
	memBytes, appliedBytes, backlogBytes uint64
	// committed is the highest index known committed.
	committed uint64
	// stable is the highest index known durable in the LogStore.
	stable uint64
	// unsent is the first index not yet handed to the persister.
	unsent uint64
	// applying is the highest index handed to the applier; applied the
	// highest the FSM has applied.
	applying, applied uint64
}

func newRaftLog(snapIndex, snapTerm uint64, entries []Log) *raftLog {
	l := &raftLog{snapIndex: snapIndex, snapTerm: snapTerm, base: snapIndex, entries: entries}
	// Everything given at start-up came from the LogStore or a snapshot.
	l.stable = l.lastIndex()
	l.unsent = l.lastIndex() + 1
	l.committed, l.applying, l.applied = snapIndex, snapIndex, snapIndex
	l.recount()
	return l
}

func (l *raftLog) firstIndex() uint64 { return l.snapIndex + 1 }

func (l *raftLog) lastIndex() uint64 { return l.base + uint64(len(l.entries)) }

func (l *raftLog) lastTerm() uint64 {
	if len(l.entries) == 0 {
		t, _ := l.term(l.base)
		return t
	}
	return l.entries[len(l.entries)-1].Term
}

// term returns the term of the entry at index; ok is false when the entry
// is compacted away or beyond the end.
func (l *raftLog) term(index uint64) (term uint64, ok bool) {
	switch {
	case index == l.snapIndex:
		return l.snapTerm, true
	case index < l.snapIndex || index > l.lastIndex():
		return 0, false
	case index <= l.base:
		return l.evictedTerm(index), true
	default:
		return l.entries[index-l.base-1].Term, true
	}
}

func (l *raftLog) matchTerm(index, term uint64) bool {
	t, ok := l.term(index)
	return ok && t == term
}

// inMemory reports whether the entry at index is in memory.
func (l *raftLog) inMemory(index uint64) bool { return index > l.base && index <= l.lastIndex() }

// entry returns the entry at index, which must be in memory.
func (l *raftLog) entry(index uint64) *Log { return &l.entries[index-l.base-1] }

// slice returns entries [lo, hi) sharing the log's memory, capped at
// maxEntries and (beyond the first entry) maxBytes of data. They must be
// in memory: lo > base.
func (l *raftLog) slice(lo, hi uint64, maxEntries int, maxBytes uint64) []Log {
	if lo >= hi {
		return nil
	}
	ents := l.entries[lo-l.base-1 : hi-l.base-1]
	if maxEntries > 0 && len(ents) > maxEntries {
		ents = ents[:maxEntries]
	}
	if maxBytes > 0 {
		var size uint64
		for i := range ents {
			size += uint64(len(ents[i].Data))
			if size > maxBytes && i > 0 {
				ents = ents[:i]
				break
			}
		}
	}
	return ents[:len(ents):len(ents)]
}

// isUpToDate reports whether a log ending at (lastIndex, lastTerm) is at
// least as up to date as this one (Raft paper §5.4.1).
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	return lastTerm > l.lastTerm() || (lastTerm == l.lastTerm() && lastIndex >= l.lastIndex())
}

// findConflict returns the index of the first entry of ents that is not in
// the log (a different term, or beyond the end), or 0 when all are there.
func (l *raftLog) findConflict(ents []Log) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= index whose term is <=
// term, with that term: the last place where a log whose entry at index has
// the given term could match this one. Both the follower (building a
// rejection hint) and the leader (refining it) use it, so that backing off
// costs one round trip per term rather than per entry.
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	if index < l.snapIndex {
		// Compacted away here: the hint stands (the leader then sends a
		// snapshot).
		return index, 0
	}
	index = min(index, l.lastIndex())
	for ; index > l.base; index-- {
		if t := l.entry(index).Term; t <= term {
			return index, t
		}
	}
	return l.evictedConflictByTerm(index, term)
}

// append adds ents, which must follow an entry already in the log,
// replacing any entries from ents[0].Index on. It never truncates committed
// entries: the caller has checked.
func (l *raftLog) append(ents ...Log) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	if first <= l.lastIndex() {
		// Entries once handed out — in messages the transport encodes
		// later, in jobs the persister writes later — must never change
		// under their readers: cut the capacity so that the append copies
		// to a new array instead of overwriting the old suffix in place.
		// (The simulator caught a follower receiving, in a message of term
		// 115, an entry of term 116 written over the one it was sent with.)
		if first <= l.base {
			l.dropEvictedFrom(first)
		}
		keep := first - l.base - 1
		l.entries = l.entries[:keep:keep]
		l.stable = min(l.stable, first-1)
		l.unsent = min(l.unsent, first)
		l.entries = append(l.entries, ents...)
		l.recount()
		return
	}
	for i := range ents {
		l.memBytes += entrySize(&ents[i])
	}
	l.entries = append(l.entries, ents...)
}

// unpersisted returns the entries not yet handed to the persister and marks
// them handed.
func (l *raftLog) unpersisted() []Log {
	last := l.lastIndex()
	if l.unsent > last {
		return nil
	}
	ents := l.slice(l.unsent, last+1, 0, 0)
	l.unsent = last + 1
	return ents
}

// persisted records that the persister made the log durable up to (index,
// term). A report about entries replaced since is ignored.
func (l *raftLog) persisted(index, term uint64) {
	if index > l.stable && index < l.unsent && l.matchTerm(index, term) {
		l.stable = index
	}
}

// toApply returns the entries committed and durable, up to limit, not yet
// handed to the applier, and marks them handed.
func (l *raftLog) toApply(limit uint64) []Log {
	hi := min(l.committed, l.stable, limit)
	if hi <= l.applying {
		return nil
	}
	ents := l.slice(l.applying+1, hi+1, 0, 0)
	for i := range ents {
		l.backlogBytes += entrySize(&ents[i])
	}
	l.applying = hi
	return ents
}
