package raft_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/keelraft/raft/storage/filesnap"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
	"github.com/stretchr/testify/require"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// single is one server on an in-memory log and a file snapshot store.
type single struct {
	t     *testing.T
	net   *transinmem.Network
	store *storeinmem.Store
	snaps *filesnap.Store
	dir   string
	logs  *lockedBuffer
	conf  *raft.Config
}

func newSingle(t *testing.T) *single {
	dir := t.TempDir()
	snaps, err := filesnap.New(dir, filesnap.Options{Retain: 3})
	require.NoError(t, err)
	s := &single{t: t, net: transinmem.NewNetwork(1), store: storeinmem.NewStore(), snaps: snaps, dir: dir, logs: &lockedBuffer{}}
	t.Cleanup(func() { s.net.Close() })
	s.conf = raft.DefaultConfig()
	s.conf.LocalID = "s1"
	s.conf.HeartbeatInterval, s.conf.ElectionTimeout = 10*time.Millisecond, 50*time.Millisecond
	s.conf.SnapshotThreshold = 1 << 40
	s.conf.Logger = slog.New(slog.NewTextHandler(s.logs, nil))
	require.NoError(t, raft.BootstrapCluster(s.conf, s.store, s.store, s.snaps,
		raft.Configuration{Servers: []raft.Server{{ID: "s1", Address: "s1"}}}))
	return s
}

// start starts the server, returning NewRaft's error.
func (s *single) start(fsm raft.FSM) (*raft.Raft, func(), error) {
	trans, err := s.net.NewTransport("s1")
	require.NoError(s.t, err)
	r, err := raft.NewRaft(s.conf, fsm, s.store, s.store, s.snaps, trans)
	if err != nil {
		trans.Close()
		return nil, nil, err
	}
	stop := func() {
		require.NoError(s.t, r.Shutdown())
		trans.Close()
	}
	rafttest.WaitFor(s.t, 5*time.Second, "leader", func() bool { return r.State() == raft.Leader })
	return r, stop, nil
}

func corruptFile(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[5] ^= 0xff // in the contents, not the metadata
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// The newest snapshot is corrupt: the server says which and restores the
// previous one, then replays the log after it. When none is usable,
// NewRaft fails naming them instead of starting empty.
func TestRestartFallsBackToPreviousSnapshot(t *testing.T) {
	s := newSingle(t)
	fsm := &testFSM{}
	r, stop, err := s.start(fsm)
	require.NoError(t, err)
	var ids []string
	n := 0
	for round := range 2 {
		for range 10 {
			require.NoError(t, r.Apply(context.Background(), fmt.Appendf(nil, "c%d", n)).Error())
			n++
		}
		f := r.Snapshot(context.Background())
		require.NoError(t, f.Error(), "snapshot %d", round)
		meta, rc, err := f.Open()
		require.NoError(t, err)
		rc.Close()
		ids = append(ids, meta.ID)
	}
	for range 5 {
		require.NoError(t, r.Apply(context.Background(), fmt.Appendf(nil, "c%d", n)).Error())
		n++
	}
	want := fsm.commands()
	stop()

	corruptFile(t, filepath.Join(s.dir, ids[1]+".snap"))
	fsm = &testFSM{}
	r, stop, err = s.start(fsm)
	require.NoError(t, err)
	rafttest.WaitFor(t, 5*time.Second, "all commands replayed", func() bool { return len(fsm.commands()) >= len(want) })
	require.Equal(t, want, fsm.commands())
	require.Contains(t, s.logs.String(), ids[1], "the log names the unusable snapshot")
	stop()

	corruptFile(t, filepath.Join(s.dir, ids[0]+".snap"))
	_, _, err = s.start(&testFSM{})
	require.ErrorIs(t, err, raft.ErrCorruptState)
	require.ErrorContains(t, err, ids[0])
	require.ErrorContains(t, err, ids[1])
}

// A crash after a snapshot from the leader was stored but before the log
// was reset leaves a log that ends before the snapshot: the server starts,
// and the log goes on after the snapshot.
func TestRestartWithLogEndingBeforeSnapshot(t *testing.T) {
	s := newSingle(t)
	conf := raft.Configuration{Servers: []raft.Server{{ID: "s1", Address: "s1"}}}
	sink, err := s.snaps.Create(10, 1, conf, 1)
	require.NoError(t, err)
	_, err = sink.Write(raft.EmptySnapshotHeader())
	require.NoError(t, err)
	require.NoError(t, (&testSnapshot{applied: []string{"a", "b"}}).Persist(sink))

	fsm := &testFSM{}
	r, stop, err := s.start(fsm)
	require.NoError(t, err)
	defer stop()
	f := r.Apply(context.Background(), []byte("c"))
	require.NoError(t, f.Error())
	require.Greater(t, f.Index(), uint64(10))
	require.Equal(t, []string{"a", "b", "c"}, fsm.commands())
}
