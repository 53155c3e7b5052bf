package raft

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Minimal fakes, so this test can watch exactly what the driver sends.

type fakeLogStore struct {
	mu   sync.Mutex
	logs []Log
}

func (s *fakeLogStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logs) == 0 {
		return 0, nil
	}
	return s.logs[0].Index, nil
}

func (s *fakeLogStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logs) == 0 {
		return 0, nil
	}
	return s.logs[len(s.logs)-1].Index, nil
}

func (s *fakeLogStore) GetLog(i uint64, l *Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logs) == 0 || i < s.logs[0].Index || i > s.logs[len(s.logs)-1].Index {
		return ErrLogNotFound
	}
	*l = s.logs[i-s.logs[0].Index]
	return nil
}

func (s *fakeLogStore) StoreLogs(ls []*Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range ls {
		s.logs = append(s.logs, *l)
	}
	return nil
}

func (s *fakeLogStore) DeleteRange(lo, hi uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.logs[:0]
	for _, l := range s.logs {
		if l.Index < lo || l.Index > hi {
			kept = append(kept, l)
		}
	}
	s.logs = kept
	return nil
}

type fakeStable struct {
	mu   sync.Mutex
	kv   map[string][]byte
	fail error // returned by writes once set
}

func (s *fakeStable) Set(k, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.kv[string(k)] = append([]byte(nil), v...)
	return nil
}

func (s *fakeStable) Get(k []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv[string(k)], nil
}

func (s *fakeStable) SetUint64(k []byte, v uint64) error { return errors.New("unused") }
func (s *fakeStable) GetUint64(k []byte) (uint64, error) { return 0, errors.New("unused") }

type noSnapshots struct{}

func (noSnapshots) Create(uint64, uint64, Configuration, uint64) (SnapshotSink, error) {
	return nil, errors.New("unused")
}
func (noSnapshots) List() ([]*SnapshotMeta, error) { return nil, nil }
func (noSnapshots) Open(string) (*SnapshotMeta, io.ReadCloser, error) {
	return nil, nil, errors.New("unused")
}

// recordingTransport records what is sent and delivers nothing.
type recordingTransport struct {
	mu   sync.Mutex
	sent []MessageType
	in   chan *Message
}

func (t *recordingTransport) Send(_ ServerAddress, m *Message) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent = append(t.sent, m.Type)
	return nil
}
func (t *recordingTransport) Consumer() <-chan *Message { return t.in }
func (t *recordingTransport) LocalAddr() ServerAddress  { return "a" }
func (t *recordingTransport) Close() error              { return nil }
func (t *recordingTransport) count(mt MessageType) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.sent {
		if s == mt {
			n++
		}
	}
	return n
}

type nopFSM struct{}

func (nopFSM) Apply(*Log) any                 { return nil }
func (nopFSM) Snapshot() (FSMSnapshot, error) { return nil, errors.New("unused") }
func (nopFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// A candidate's new term and self-vote must be durable before its vote
// requests leave: when the write fails, no MsgVote is sent at all and the
// server stops.
func TestTermPersistedBeforeVoteRequests(t *testing.T) {
	for _, failing := range []bool{false, true} {
		conf := DefaultConfig()
		conf.LocalID = "a"
		conf.HeartbeatInterval = 10 * time.Millisecond
		conf.ElectionTimeout = 50 * time.Millisecond
		conf.PreVoteDisabled = true // campaign straight into a new term
		logs, stable := &fakeLogStore{}, &fakeStable{kv: map[string][]byte{}}
		servers := Configuration{Servers: []Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}, {ID: "c", Address: "c"}}}
		require.NoError(t, BootstrapCluster(conf, logs, stable, noSnapshots{}, servers))
		boom := errors.New("stable store on fire")
		if failing {
			stable.fail = boom
		}
		trans := &recordingTransport{in: make(chan *Message)}
		r, err := NewRaft(conf, nopFSM{}, logs, stable, noSnapshots{}, trans)
		require.NoError(t, err)
		deadline := time.Now().Add(5 * time.Second)
		poll := time.NewTicker(5 * time.Millisecond)
		for r.State() != Shutdown && trans.count(MsgVote) < 2 && time.Now().Before(deadline) {
			<-poll.C
		}
		poll.Stop()
		if failing {
			require.Equal(t, Shutdown, r.State(), "the server stops when it cannot persist its term")
			require.Zero(t, trans.count(MsgVote), "no vote request before term and vote are durable")
			require.ErrorIs(t, r.Shutdown(), boom)
		} else {
			require.GreaterOrEqual(t, trans.count(MsgVote), 2, "control: a healthy candidate asks both peers")
			require.NoError(t, r.Shutdown())
		}
	}
}
