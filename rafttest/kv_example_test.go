package rafttest_test

import (
	"encoding/json"
	"io"
	"maps"
	"strings"
	"sync"

	"github.com/keelraft/raft"
)

// kv is an example user state machine: a map from keys to values, set by
// commands of the form "key=value".
type kv struct {
	mu sync.Mutex
	m  map[string]string
}

func newKV() raft.FSM { return &kv{m: map[string]string{}} }

func (s *kv) Apply(l *raft.Log) any {
	k, v, _ := strings.Cut(string(l.Data), "=")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return len(s.m)
}

func (s *kv) Get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *kv) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return kvSnapshot(maps.Clone(s.m)), nil
}

func (s *kv) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m := map[string]string{}
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return err
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	return nil
}

// kvEqual tells whether two kv state machines hold the same map.
func kvEqual(a, b raft.FSM) bool {
	x, y := a.(*kv), b.(*kv)
	x.mu.Lock()
	mx := maps.Clone(x.m)
	x.mu.Unlock()
	y.mu.Lock()
	defer y.mu.Unlock()
	return maps.Equal(mx, y.m)
}

type kvSnapshot map[string]string

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(map[string]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s kvSnapshot) Release() {}
