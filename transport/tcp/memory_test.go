package tcp

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/require"
)

// wireMessages is one message of every shape the transport carries.
func wireMessages() []*raft.Message {
	conf := &raft.Configuration{
		Servers: []raft.Server{{Suffrage: raft.Voter, ID: "a", Address: "10.0.0.1:7000"}, {Suffrage: raft.Nonvoter, ID: "b", Address: "10.0.0.2:7000"}},
		Old:     []raft.Server{{Suffrage: raft.Voter, ID: "a", Address: "10.0.0.1:7000"}},
	}
	return []*raft.Message{
		heartbeat("a", 7),
		appendMsg("a", 4, []byte("data")),
		appendMsg("a", 4, nil),
		appendMsg("a", 9, bytes.Repeat([]byte{0xfe}, 300<<10)),
		{Type: raft.MsgAppend, From: "a", FromAddr: "10.0.0.1:7000", To: "b", Term: 7, Index: 10, LogTerm: 6, Commit: 9,
			Entries: []raft.Log{{Index: 11, Term: 7, Type: raft.LogCommand, Data: []byte("x=1")}, {Index: 12, Term: 7, Type: raft.LogNoop}}},
		{Type: raft.MsgAppendResp, From: "b", Term: 7, Index: 12, Reject: true, RejectHint: 3, LogTerm: 2},
		{Type: raft.MsgVote, From: "a", Term: 8, Index: 12, LogTerm: 7, Transfer: true},
		{Type: raft.MsgHeartbeatResp, From: "b", Term: 8, Context: []byte{1, 2, 3}},
		{Type: raft.MsgSnapshot, From: "a", To: "b", Term: 3, Index: 100, LogTerm: 2, Snapshot: &raft.SnapshotChunk{
			ID: "2-100-1", Offset: 1 << 20, Data: bytes.Repeat([]byte("s"), 4096), Done: true, Size: 1<<20 + 4096,
			Checksum: 0xdeadbeef, Configuration: conf, ConfigurationIndex: 1}},
		{Type: raft.MsgSnapshotResp, From: "b", Term: 3, Snapshot: &raft.SnapshotChunk{ID: "2-100-1", Offset: 4096}},
	}
}

// The lanes' reused encoders write exactly what raft.EncodeMessage does,
// whatever they encoded before: tcp's wireHandle must stay in step with
// package raft's.
func TestEncoderMatchesEncodeMessage(t *testing.T) {
	enc := newEncoder()
	msgs := wireMessages()
	for range 2 {
		for _, m := range msgs {
			want, err := raft.EncodeMessage(m)
			require.NoError(t, err)
			got, err := enc.encode(m)
			require.NoError(t, err)
			require.Equal(t, want, got, "%v", m.Type)
			enc.done()
		}
		slices.Reverse(msgs)
	}
}

// A decoded message shares no memory with the frame buffer, which the next
// frame overwrites: the reader relies on raft.DecodeMessage copying.
func TestDecodeDoesNotAlias(t *testing.T) {
	for _, m := range wireMessages() {
		body := mustEncode(t, m)
		fr := &frameReader{r: bytes.NewReader(frame(frameVersion, uint32(len(body)), body)), max: DefaultMaxFrameSize, version: frameVersion}
		got, err := fr.readMessage()
		require.NoError(t, err)
		want, err := raft.DecodeMessage(body)
		require.NoError(t, err)
		buf := fr.buf[:cap(fr.buf)]
		for i := range buf {
			buf[i] = 0xc1 // as msgpack, "never used"
		}
		require.Equal(t, want, got, "%v changed when the frame buffer was overwritten", m.Type)
	}
}

// A frame reader reuses its buffer and keeps it only up to maxKeptBuf; so
// does an encoder.
func TestBuffersReusedAndCapped(t *testing.T) {
	small := mustEncode(t, appendMsg("a", 4, bytes.Repeat([]byte("p"), 128)))
	smallFrame := frame(frameVersion, uint32(len(small)), small)
	r := bytes.NewReader(nil)
	fr := &frameReader{r: r, max: DefaultMaxFrameSize, version: frameVersion}
	read := func(f []byte) []byte {
		r.Reset(f)
		b, err := fr.readFrame()
		require.NoError(t, err)
		return b
	}
	read(smallFrame)
	require.Zero(t, testing.AllocsPerRun(100, func() { read(smallFrame) }), "a small frame allocated")

	for _, n := range []int{maxKeptBuf - 100, maxKeptBuf + 1, 5 << 20} {
		big := bytes.Repeat([]byte{7}, n)
		require.Equal(t, big, read(frame(frameVersion, uint32(n), big)))
		require.LessOrEqual(t, cap(fr.buf), maxKeptBuf, "kept after a %d-byte frame", n)
		if n <= maxKeptBuf {
			require.GreaterOrEqual(t, cap(fr.buf), n, "a %d-byte frame's buffer was not kept", n)
		}
		require.Equal(t, small, read(smallFrame))
	}
	t.Logf("frame buffer kept after a 5 MiB frame: %d bytes", cap(fr.buf))

	enc := newEncoder()
	m := appendMsg("a", 4, bytes.Repeat([]byte("p"), 128))
	_, err := enc.encode(m)
	require.NoError(t, err)
	enc.done()
	allocs := testing.AllocsPerRun(100, func() {
		_, err := enc.encode(m)
		require.NoError(t, err)
		enc.done()
	})
	require.Zero(t, allocs, "encoding a small message allocated")
	for _, n := range []int{1 << 20, 5 << 20} {
		_, err := enc.encode(appendMsg("a", 4, make([]byte, n)))
		require.NoError(t, err)
		enc.done()
		require.LessOrEqual(t, cap(enc.buf), maxKeptBuf, "kept after encoding %d bytes", n)
	}
}

// A lane drops what would take its queue beyond QueueBytes, counting it,
// but admits a message of any size into an empty queue.
func TestQueueBytes(t *testing.T) {
	caCert, caKey := newCA(t)
	payload := bytes.Repeat([]byte("q"), 1000)
	size := msgSize(appendMsg("a", 1, payload))
	const fit = 10
	opts := func() Options {
		return Options{TLS: tlsConfig(t, caCert, caKey, true), DialTimeout: time.Minute, QueueBytes: fit * int(size)}
	}
	a, b := newTransport(t, opts()), newTransport(t, opts())

	// A peer that accepts and never answers the TLS handshake: its bulk
	// lane's sender takes one message and then waits in the dial, so
	// what is sent next stays queued.
	stuck := raft.ServerAddress(slowListener(t).Addr().String())
	require.NoError(t, a.Send(stuck, appendMsg("a", 0, payload)))
	a.mu.RLock()
	l := a.peers[stuck].bulk
	a.mu.RUnlock()
	waitFor(t, 5*time.Second, "the sender to take the first message", func() bool {
		return len(l.queue) == 0 && l.bytes.Load() == 0
	})
	for i := range uint64(fit + 5) {
		require.NoError(t, a.Send(stuck, appendMsg("a", i+1, payload)))
	}
	require.Equal(t, uint64(5), a.Stats().Dropped)
	require.Equal(t, fit, len(l.queue))
	require.Equal(t, fit*size, l.bytes.Load())
	// Into a queue that is not empty, a message larger than QueueBytes is
	// dropped too; the fast lane has its own bound.
	huge := bytes.Repeat([]byte("h"), 4*fit*len(payload))
	require.NoError(t, a.Send(stuck, appendMsg("a", 100, huge)))
	require.Equal(t, uint64(6), a.Stats().Dropped)
	require.NoError(t, a.Send(stuck, heartbeat("a", 1)))
	require.Equal(t, uint64(6), a.Stats().Dropped)

	// Into an empty queue it is admitted and delivered, twice in a row.
	for i := range uint64(2) {
		require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", 200+i, huge)))
		m := recv(t, b, 10*time.Second)
		require.Equal(t, 200+i, m.Index)
		require.Equal(t, huge, m.Entries[0].Data)
	}
	require.Equal(t, uint64(6), a.Stats().Dropped)
}

// The messages waiting in the Consumer channel total at most ConsumerBytes,
// but one is always admitted into an empty channel; what the consumer takes
// is released.
func TestConsumerBytes(t *testing.T) {
	payload := bytes.Repeat([]byte("c"), 1000)
	size := msgSize(appendMsg("a", 1, payload))
	const fit, sent = 10, 15
	a := newTransport(t, Options{})
	b := newTransport(t, Options{ConsumerBytes: fit * int(size)})
	for i := range uint64(sent) {
		require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", i+1, payload)))
	}
	settled := func(n uint64) func() bool {
		return func() bool { st := b.Stats(); return st.Received+st.ReceiveDropped == n }
	}
	waitFor(t, 10*time.Second, "every message to arrive", settled(sent))
	require.Equal(t, Stats{Received: fit, ReceiveDropped: sent - fit}, b.Stats())
	for i := range uint64(fit) {
		require.Equal(t, i+1, recv(t, b, time.Second).Index)
	}

	// Now empty: a message larger than ConsumerBytes is admitted, and while
	// it waits a small one is not.
	huge := bytes.Repeat([]byte("h"), 2*fit*len(payload))
	require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", 100, huge)))
	waitFor(t, 10*time.Second, "the large message", settled(sent+1))
	require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", 101, payload)))
	waitFor(t, 10*time.Second, "the small message", settled(sent+2))
	require.Equal(t, Stats{Received: fit + 1, ReceiveDropped: sent - fit + 1}, b.Stats())
	require.Equal(t, huge, recv(t, b, time.Second).Entries[0].Data)

	// Taken: its bytes are released.
	for i := range uint64(fit) {
		require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", 200+i, payload)))
	}
	waitFor(t, 10*time.Second, "the last messages", settled(sent+2+fit))
	require.Equal(t, uint64(2*fit+1), b.Stats().Received)
	for i := range uint64(fit) {
		require.Equal(t, 200+i, recv(t, b, time.Second).Index)
	}
	require.Zero(t, a.Stats().Dropped)
}

// Under concurrent offers and a concurrent consumer, the inbox's count
// always covers what is in the channel and releases exactly what was taken.
func TestInboxAccounting(t *testing.T) {
	const capacity, limit = 8, 1000
	ch := make(chan *raft.Message, capacity)
	in := &inbox[*raft.Message]{ch: ch, limit: limit, sizes: make([]int64, capacity+1)}
	for round := range 50 {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var consumed sync.WaitGroup
		consumed.Add(1)
		go func() {
			defer consumed.Done()
			for {
				select {
				case <-stop:
					return
				case <-ch:
				}
			}
		}()
		for p := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(p)))
				for range 200 {
					size := rng.Int64N(limit) + 1
					in.offer(&raft.Message{Term: uint64(size)}, size)
				}
			}()
		}
		wg.Wait()
		close(stop)
		consumed.Wait()

		in.mu.Lock()
		in.release()
		var left int64
		for len(ch) > 0 {
			left += int64((<-ch).Term) // the size it was offered with
		}
		require.Equal(t, left, in.bytes, "round %d", round)
		require.LessOrEqual(t, in.bytes, int64(limit))
		in.release()
		require.Zero(t, in.bytes)
		require.Zero(t, in.n)
		in.mu.Unlock()
	}
}

func TestNegativeByteOptions(t *testing.T) {
	_, err := New("127.0.0.1:0", Options{QueueBytes: -1})
	require.Error(t, err)
	_, err = New("127.0.0.1:0", Options{ConsumerBytes: -1})
	require.Error(t, err)
}
