package raft

import (
	"bytes"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// memSnaps is a minimal SnapshotStore for package-internal tests.
type memSnaps struct {
	mu        sync.Mutex
	n         int
	closed    map[string][]byte
	metas     map[string]SnapshotMeta
	cancelled int
}

type memSink struct {
	s    *memSnaps
	meta SnapshotMeta
	buf  bytes.Buffer
}

func newMemSnaps() *memSnaps {
	return &memSnaps{closed: map[string][]byte{}, metas: map[string]SnapshotMeta{}}
}

func (s *memSnaps) Create(index, term uint64, c Configuration, ci uint64) (SnapshotSink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return &memSink{s: s, meta: SnapshotMeta{ID: fmt.Sprintf("%d-%d-%d", term, index, s.n), Index: index, Term: term, Configuration: c, ConfigurationIndex: ci}}, nil
}
func (s *memSnaps) List() ([]*SnapshotMeta, error) { return nil, nil }
func (s *memSnaps) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.metas[id]
	return &m, io.NopCloser(bytes.NewReader(s.closed[id])), nil
}
func (k *memSink) ID() string                  { return k.meta.ID }
func (k *memSink) Write(p []byte) (int, error) { return k.buf.Write(p) }
func (k *memSink) Close() error {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	k.s.closed[k.meta.ID] = k.buf.Bytes()
	k.s.metas[k.meta.ID] = k.meta
	return nil
}
func (k *memSink) Cancel() error {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	k.s.cancelled++
	return nil
}

// sentMsgs is a Transport that records what is sent.
type sentMsgs struct{ msgs []*Message }

func (s *sentMsgs) Send(_ ServerAddress, m *Message) error { s.msgs = append(s.msgs, m); return nil }
func (s *sentMsgs) Consumer() <-chan *Message              { return nil }
func (s *sentMsgs) LocalAddr() ServerAddress               { return "f" }
func (s *sentMsgs) Close() error                           { return nil }

func (s *sentMsgs) last(t *testing.T) *Message {
	t.Helper()
	require.NotEmpty(t, s.msgs)
	return s.msgs[len(s.msgs)-1]
}

func TestSnapshotReceiverChunks(t *testing.T) {
	var logs bytes.Buffer
	tr := &sentMsgs{}
	snaps := newMemSnaps()
	r := &Raft{conf: Config{LocalID: "f"}, trans: tr, logger: slog.New(slog.NewTextHandler(&logs, nil)),
		opCh: make(chan func(), 10), shutdownCh: make(chan struct{})}
	r.snaps = snaps
	rc := newSnapshotReceiver(r)

	data := bytes.Repeat([]byte("0123456789"), 10) // 100 bytes in chunks of 30
	conf := bootstrapConfig(serverIDs(3))
	term := uint64(2)
	chunk := func(id string, off int, sum uint64) recvChunk {
		end := min(off+30, len(data))
		c := &SnapshotChunk{ID: id, Offset: uint64(off), Data: data[off:end], Configuration: &conf, ConfigurationIndex: 1}
		if end == len(data) {
			c.Done, c.Size, c.Checksum = true, uint64(len(data)), sum
		}
		return recvChunk{m: &Message{Type: MsgSnapshot, From: "l", To: "f", Term: term, Index: 50, LogTerm: 2, Snapshot: c}, addr: "l"}
	}
	sum := crc64.Checksum(data, crcTable)
	ackOf := func() uint64 { m := tr.last(t); require.False(t, m.Reject); return m.Snapshot.Offset }

	rc.handle(chunk("A", 30, sum))
	require.Equal(t, uint64(0), ackOf(), "a transfer starts at offset 0")
	rc.handle(chunk("A", 0, sum))
	require.Equal(t, uint64(30), ackOf())
	rc.handle(chunk("A", 0, sum))
	require.Equal(t, uint64(30), ackOf(), "a duplicate chunk is re-acknowledged")
	rc.handle(chunk("A", 60, sum))
	require.Equal(t, uint64(30), ackOf(), "after a lost chunk, the sender is told where to resume")
	rc.handle(chunk("A", 30, sum))
	require.Equal(t, uint64(60), ackOf())
	require.Equal(t, 60, rc.cur.sink.(*memSink).buf.Len(), "nothing written twice")

	// The same leader, elected again, sends the same snapshot from the
	// start in a later term: it is told to resume.
	term = 3
	rc.handle(chunk("A", 0, sum))
	require.Equal(t, uint64(60), ackOf(), "resumed across terms")
	require.Equal(t, 0, snaps.cancelled)

	// A new transfer (another leader's snapshot) restarts.
	rc.handle(chunk("B", 0, sum))
	require.Equal(t, uint64(30), ackOf())
	require.Equal(t, 1, snaps.cancelled, "the old transfer's sink is cancelled")

	// A bad checksum is refused, naming the snapshot.
	rc.handle(chunk("B", 30, sum))
	rc.handle(chunk("B", 60, sum))
	rc.handle(chunk("B", 90, sum^1))
	require.True(t, tr.last(t).Reject)
	require.Contains(t, logs.String(), "snapshot B from l")
	require.Contains(t, logs.String(), "checksum")
	require.Empty(t, snaps.closed)
	require.Nil(t, rc.cur)

	// A whole, intact transfer is stored and reported to the loop.
	for off := 0; off < len(data); off += 30 {
		rc.handle(chunk("C", off, sum))
	}
	require.Len(t, snaps.closed, 1)
	for _, b := range snaps.closed {
		require.Equal(t, data, b)
	}
	require.Len(t, r.opCh, 1, "the core is told")
	n := len(tr.msgs)
	rc.handle(chunk("C", 90, sum))
	require.Len(t, tr.msgs, n, "a late copy of a finished transfer is ignored")
}
