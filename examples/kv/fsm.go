package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/keelraft/raft"
)

// command is one write, as it is stored in the Raft log.
type command struct {
	Op    string `json:"op"` // "put" or "delete"
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// kvFSM is the replicated state machine: a map of strings. keel calls
// Apply, Snapshot and Restore from one goroutine; the lock is for the HTTP
// handlers that read the map concurrently.
type kvFSM struct {
	mu   sync.RWMutex
	data map[string]string
}

func newFSM() *kvFSM { return &kvFSM{data: make(map[string]string)} }

// Apply applies a committed command and returns nil. The HTTP handlers
// validate commands before proposing them, so a malformed one can only
// come from a foreign writer; it is skipped (the same way on every server)
// and its error handed back to the proposer.
func (f *kvFSM) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("kv: decode command at index %d: %w", l.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case "put":
		f.data[c.Key] = c.Value
	case "delete":
		delete(f.data, c.Key)
	default:
		return fmt.Errorf("kv: unknown op %q at index %d", c.Op, l.Index)
	}
	return nil
}

// Get reads a key from the local map.
func (f *kvFSM) Get(key string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

// Snapshot copies the map; Persist encodes the copy while Apply goes on.
func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &kvSnapshot{data: maps.Clone(f.data)}, nil
}

// Restore replaces the map with a snapshot's.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data := make(map[string]string)
	if err := json.NewDecoder(rc).Decode(&data); err != nil {
		return fmt.Errorf("kv: decode snapshot: %w", err)
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

// kvSnapshot is a point-in-time copy of the map.
type kvSnapshot struct{ data map[string]string }

func (s *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.data); err != nil {
		if cerr := sink.Cancel(); cerr != nil {
			return fmt.Errorf("kv: write snapshot: %w (cancel: %v)", err, cerr)
		}
		return fmt.Errorf("kv: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("kv: close snapshot %s: %w", sink.ID(), err)
	}
	return nil
}

func (s *kvSnapshot) Release() {}
