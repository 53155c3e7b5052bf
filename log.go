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
	default:
		return fmt.Sprintf("LogType(%d)", uint8(t))
	}
}

// Log is one entry of the replicated log.
type Log struct {
	// Index is the entry's position in the log; the first entry has index 1.
	Index uint64
	// Term is the leader's term when the entry was created.
	Term uint64
	// Type says how Data is interpreted.
	Type LogType
	// Data is the command (LogCommand) or the encoded configuration
	// (LogConfiguration). It must not be modified once the entry is proposed.
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
