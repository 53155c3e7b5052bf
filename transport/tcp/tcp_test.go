package tcp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTransport(t testing.TB, opts Options) *Transport {
	t.Helper()
	tr, err := New("127.0.0.1:0", opts)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func heartbeat(from raft.ServerID, commit uint64) *raft.Message {
	return &raft.Message{Type: raft.MsgHeartbeat, From: from, Term: 3, Commit: commit, Context: []byte("ctx")}
}

func appendMsg(from raft.ServerID, index uint64, payload []byte) *raft.Message {
	m := &raft.Message{Type: raft.MsgAppend, From: from, Term: 3, Index: index, LogTerm: 2, Commit: index}
	if payload != nil {
		m.Entries = []raft.Log{{Index: index + 1, Term: 3, Type: raft.LogCommand, Data: payload}}
	}
	return m
}

// recv waits up to d for the next message on tr.
func recv(t testing.TB, tr *Transport, d time.Duration) *raft.Message {
	t.Helper()
	select {
	case m := <-tr.Consumer():
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
		return nil
	}
}

// waitFor polls cond until it holds, failing after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

func TestRoundTrip(t *testing.T) {
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	msgs := []*raft.Message{
		{Type: raft.MsgAppend, From: "a", FromAddr: a.LocalAddr(), To: "b", Term: 7, Index: 10, LogTerm: 6, Commit: 9,
			Entries: []raft.Log{{Index: 11, Term: 7, Type: raft.LogCommand, Data: []byte("x=1")}, {Index: 12, Term: 7, Type: raft.LogNoop}}},
		{Type: raft.MsgVote, From: "a", FromAddr: a.LocalAddr(), To: "b", Term: 8, Index: 12, LogTerm: 7, Transfer: true},
		{Type: raft.MsgHeartbeatResp, From: "a", Term: 8, Context: []byte{1, 2, 3}, Reject: true, RejectHint: 4},
	}
	for _, m := range msgs {
		require.NoError(t, a.Send(b.LocalAddr(), m))
		got := recv(t, b, 5*time.Second)
		want, err := raft.DecodeMessage(mustEncode(t, m)) // normalizes nil vs empty slices as the codec does
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, m.Type, got.Type)
		require.Equal(t, m.Entries, got.Entries)
	}
	// And back.
	require.NoError(t, b.Send(a.LocalAddr(), heartbeat("b", 5)))
	require.Equal(t, uint64(5), recv(t, a, 5*time.Second).Commit)
	waitFor(t, 5*time.Second, "sent counter", func() bool { return a.Stats().Sent == uint64(len(msgs)) })
	waitFor(t, 5*time.Second, "received counter", func() bool { return b.Stats().Received == uint64(len(msgs)) })
}

func mustEncode(t testing.TB, m *raft.Message) []byte {
	b, err := raft.EncodeMessage(m)
	require.NoError(t, err)
	return b
}

// Many messages of both classes, sent interleaved from several goroutines
// per class in turn: all arrive, and each class arrives in send order.
func TestManyMessagesOrderedPerClass(t *testing.T) {
	const n = 3000
	a := newTransport(t, Options{QueueSize: 2 * n})
	b := newTransport(t, Options{ConsumerBuffer: 4 * n})
	payload := bytes.Repeat([]byte("p"), 512)
	for i := 1; i <= n; i++ {
		require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", uint64(i))))
		require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", uint64(i), payload)))
	}
	var lastHB, lastApp uint64
	for range 2 * n {
		m := recv(t, b, 10*time.Second)
		switch m.Type {
		case raft.MsgHeartbeat:
			require.Equal(t, lastHB+1, m.Commit, "heartbeats out of order")
			lastHB = m.Commit
		case raft.MsgAppend:
			require.Equal(t, lastApp+1, m.Index, "appends out of order")
			require.Equal(t, payload, m.Entries[0].Data)
			lastApp = m.Index
		default:
			t.Fatalf("unexpected %v", m.Type)
		}
	}
	require.Equal(t, uint64(n), lastHB)
	require.Equal(t, uint64(n), lastApp)
	st := a.Stats()
	require.Zero(t, st.Dropped)
	require.Zero(t, st.Failed)
	waitFor(t, 5*time.Second, "received counter", func() bool { return b.Stats().Received == 2*n })
}

type countFSM struct {
	mu sync.Mutex
	n  int
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}
func (f *countFSM) applied() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("not needed") }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

func TestClusterOverTCP(t *testing.T) {
	ids := []raft.ServerID{"a", "b", "c"}
	var trans []*Transport
	var conf raft.Configuration
	for _, id := range ids {
		tr := newTransport(t, Options{})
		trans = append(trans, tr)
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: tr.LocalAddr()})
	}
	var rafts []*raft.Raft
	var fsms []*countFSM
	for i, id := range ids {
		cfg := raft.DefaultConfig()
		cfg.LocalID = id
		cfg.HeartbeatInterval = 20 * time.Millisecond
		cfg.ElectionTimeout = 200 * time.Millisecond
		store, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
		require.NoError(t, raft.BootstrapCluster(cfg, store, store, snaps, conf))
		fsm := &countFSM{}
		r, err := raft.NewRaft(cfg, fsm, store, store, snaps, trans[i])
		require.NoError(t, err)
		rafts = append(rafts, r)
		fsms = append(fsms, fsm)
	}
	defer func() {
		for i, r := range rafts {
			require.NoError(t, r.Shutdown())
			require.NoError(t, trans[i].Close())
		}
	}()

	var leader *raft.Raft
	waitFor(t, 10*time.Second, "a leader", func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const cmds = 20
	for i := range cmds {
		require.NoError(t, leader.Apply(ctx, fmt.Appendf(nil, "cmd-%d", i)).Error())
	}
	waitFor(t, 10*time.Second, "every server to apply every command", func() bool {
		for _, f := range fsms {
			if f.applied() != cmds {
				return false
			}
		}
		return true
	})
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	addr := b.LocalAddr()
	require.NoError(t, a.Send(addr, heartbeat("a", 1)))
	require.Equal(t, uint64(1), recv(t, b, 5*time.Second).Commit)

	require.NoError(t, b.Close())
	b2, err := New(string(addr), Options{})
	require.NoError(t, err)
	defer b2.Close()

	// Keep sending until one arrives: messages sent while the peer was down
	// or before the old connection's close was noticed may be lost.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for i := uint64(2); ; i++ {
		require.NoError(t, a.Send(addr, heartbeat("a", i)))
		select {
		case m := <-b2.Consumer():
			require.Equal(t, raft.MsgHeartbeat, m.Type)
			// The flow is steady again: the next ones arrive in order.
			for j := uint64(1); j <= 10; j++ {
				require.NoError(t, a.Send(addr, heartbeat("a", 1000+j)))
			}
			for j := uint64(1); j <= 10; j++ {
				m := recv(t, b2, 5*time.Second)
				for m.Commit < 1000 { // stragglers from the loop above
					m = recv(t, b2, 5*time.Second)
				}
				require.Equal(t, 1000+j, m.Commit)
			}
			require.GreaterOrEqual(t, a.Stats().Reconnects, uint64(1))
			return
		case <-tick.C:
		case <-deadline:
			t.Fatal("no message after the peer restarted")
		}
	}
}

// writeRaw dials tr, writes a protocol 1 hello and data, and returns the
// connection. The hello's reply is left unread (expectClosedByPeer reads
// past it).
func writeRaw(t *testing.T, tr *Transport, data []byte) net.Conn {
	t.Helper()
	return writeBare(t, tr, append(appendHello(nil, versions{1, 1}), data...))
}

// writeBare dials tr, writes data, no hello first, and returns the
// connection.
func writeBare(t *testing.T, tr *Transport, data []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", string(tr.LocalAddr()))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write(data)
	require.NoError(t, err)
	return c
}

func frame(version byte, length uint32, body []byte) []byte {
	f := []byte{version, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[1:], length)
	return append(f, body...)
}

// expectClosedByPeer waits for the transport to close c, reading past
// whatever it wrote first (a hello reply).
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		err = io.EOF // Copy reports a clean close as no error
	}
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection not closed by the transport: %v", err)
}

func TestConnectionCutMidFrame(t *testing.T) {
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	body := mustEncode(t, heartbeat("x", 1))
	full := frame(frameVersion, uint32(len(body)), body)

	// One connection stays open holding half a frame, one is cut mid-header,
	// one is cut mid-body.
	open := writeRaw(t, b, full[:len(full)/2])
	writeRaw(t, b, full[:3]).Close()
	writeRaw(t, b, full[:len(full)-1]).Close()

	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 42)))
	m := recv(t, b, 5*time.Second)
	require.Equal(t, raft.ServerID("a"), m.From)

	// The half-open one completes its frame and is delivered.
	_, err := open.Write(full[len(full)/2:])
	require.NoError(t, err)
	m = recv(t, b, 5*time.Second)
	require.Equal(t, raft.ServerID("x"), m.From)
	require.Zero(t, b.Stats().Malformed, "a cut connection is not a malformed frame")
}

func TestMalformedFrames(t *testing.T) {
	b := newTransport(t, Options{MaxFrameSize: 1 << 20})
	good := mustEncode(t, heartbeat("x", 1))
	cases := map[string][]byte{
		"huge length":     frame(frameVersion, 0xFFFFFFFF, []byte("abc")),
		"over max":        frame(frameVersion, 1<<20+1, nil),
		"unknown version": frame(9, uint32(len(good)), good),
		"garbage body":    frame(frameVersion, 16, bytes.Repeat([]byte{0xc1}, 16)),
		"empty body":      frame(frameVersion, 0, nil),
		"garbage":         []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"invalid message": frame(frameVersion, uint32(len(mustEncode(t, &raft.Message{Type: 99, From: "x"}))),
			mustEncode(t, &raft.Message{Type: 99, From: "x"})),
	}
	want := uint64(0)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			expectClosedByPeer(t, writeRaw(t, b, data))
			want++
			waitFor(t, 5*time.Second, "malformed count", func() bool { return b.Stats().Malformed == want })
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
	// Still serving.
	a := newTransport(t, Options{})
	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 1)))
	require.Equal(t, raft.ServerID("a"), recv(t, b, 5*time.Second).From)
	waitFor(t, 5*time.Second, "received counter", func() bool { return b.Stats().Received == 1 })
}

// A frame that claims 60 MiB but carries 100 bytes must not allocate 60 MiB.
func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	data := frame(frameVersion, 60<<20, make([]byte, 100))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := (&frameReader{r: bytes.NewReader(data), max: DefaultMaxFrameSize, version: frameVersion}).readFrame()
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes for a truncated 60 MiB frame", alloc)
	require.Less(t, alloc, uint64(4<<20))

	// A real large frame still reads whole.
	big := bytes.Repeat([]byte{7}, 3<<20+5)
	got, err := (&frameReader{r: bytes.NewReader(frame(frameVersion, uint32(len(big)), big)), max: DefaultMaxFrameSize, version: frameVersion}).readFrame()
	require.NoError(t, err)
	require.Equal(t, big, got)
}

// slowListener accepts connections and never reads from them.
func slowListener(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln
}

func TestSlowPeerDoesNotDelayHeartbeats(t *testing.T) {
	slow := slowListener(t)
	slowAddr := raft.ServerAddress(slow.Addr().String())
	a := newTransport(t, Options{QueueSize: 64, WriteTimeout: 30 * time.Second})
	b := newTransport(t, Options{})

	// Heartbeats reaching b go to hbs; everything else is discarded.
	hbs := make(chan time.Time, 16)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case m := <-b.Consumer():
				if m.Type == raft.MsgHeartbeat {
					hbs <- time.Now()
				}
			case <-stop:
				return
			}
		}
	}()
	// Every millisecond, a large append and a heartbeat to the slow peer and
	// four large appends (1 MiB) to b: more than the bulk lane to b carries,
	// so its queue stays full.
	payload := bytes.Repeat([]byte("a"), 256<<10)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			a.Send(slowAddr, appendMsg("a", i, payload))
			a.Send(slowAddr, heartbeat("a", i))
			for j := range uint64(4) {
				a.Send(b.LocalAddr(), appendMsg("a", 4*i+j, payload))
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	waitFor(t, 10*time.Second, "the slow peer's queues to fill", func() bool { return a.Stats().Dropped > 0 })

	a.mu.RLock()
	bulkToB := a.peers[b.LocalAddr()].bulk.queue
	a.mu.RUnlock()
	var worst, total, first time.Duration
	backlog := 0 // appends queued for b when each heartbeat was sent
	const rounds = 30
	for i := range rounds + 1 {
		backlog += len(bulkToB)
		start := time.Now()
		require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", uint64(i))))
		select {
		case at := <-hbs:
			lat := at.Sub(start)
			if i == 0 { // includes dialing the fast lane
				first = lat
				continue
			}
			total += lat
			worst = max(worst, lat)
		case <-time.After(5 * time.Second):
			t.Fatal("heartbeat not delivered")
		}
	}
	t.Logf("heartbeat latency to a healthy peer while a slow peer is stuck and appends flood: first (with dial) %v, then mean %v, max %v; mean append backlog to b %.1f messages; dropped so far %d",
		first, total/rounds, worst, float64(backlog)/(rounds+1), a.Stats().Dropped)
	require.Less(t, max(first, worst), 200*time.Millisecond)
}

func TestMutualTLS(t *testing.T) {
	caCert, caKey := newCA(t)
	serverCfg := tlsConfig(t, caCert, caKey, true)
	a := newTransport(t, Options{TLS: serverCfg})
	b := newTransport(t, Options{TLS: tlsConfig(t, caCert, caKey, true)})
	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 1)))
	require.Equal(t, raft.ServerID("a"), recv(t, b, 5*time.Second).From)
	require.NoError(t, b.Send(a.LocalAddr(), appendMsg("b", 1, []byte("over tls"))))
	require.Equal(t, []byte("over tls"), recv(t, a, 5*time.Second).Entries[0].Data)

	// A client without a certificate is refused.
	noCert := tlsConfig(t, caCert, caKey, false)
	c, err := tls.Dial("tcp", string(b.LocalAddr()), noCert)
	if err == nil {
		defer c.Close()
		body := mustEncode(t, heartbeat("intruder", 1))
		c.Write(frame(frameVersion, uint32(len(body)), body))
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Read(make([]byte, 1))
	}
	require.Error(t, err)
	// A plain TCP client speaking frames is refused too.
	body := mustEncode(t, heartbeat("plain", 1))
	expectClosedByPeer(t, writeRaw(t, b, frame(frameVersion, uint32(len(body)), body)))
	waitFor(t, 5*time.Second, "received counter", func() bool { return b.Stats().Received == 1 })
	require.Zero(t, b.Stats().ReceiveDropped)
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keel test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

// tlsConfig returns a config trusting ca, with (withCert) a leaf certificate
// for 127.0.0.1 good for both server and client authentication, requiring
// client certificates.
func tlsConfig(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, withCert bool) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cfg := &tls.Config{
		RootCAs:    pool,
		ClientCAs:  pool,
		ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
	if !withCert {
		return cfg
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "keel server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	return cfg
}

func TestSendAfterCloseAndOptions(t *testing.T) {
	a, err := New("127.0.0.1:0", Options{})
	require.NoError(t, err)
	require.NoError(t, a.Send("127.0.0.1:1", heartbeat("a", 1))) // unreachable: dropped later, not an error
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	require.ErrorIs(t, a.Send("127.0.0.1:1", heartbeat("a", 1)), ErrClosed)

	_, err = New("0.0.0.0:0", Options{})
	require.ErrorContains(t, err, "Advertise")
	c, err := New("0.0.0.0:0", Options{Advertise: "127.0.0.1:9"})
	require.NoError(t, err)
	require.Equal(t, raft.ServerAddress("127.0.0.1:9"), c.LocalAddr())
	require.NoError(t, c.Close())
	_, err = New("127.0.0.1:0", Options{QueueSize: -1})
	require.Error(t, err)
}

func FuzzDecodeFrame(f *testing.F) {
	good, err := raft.EncodeMessage(appendMsg("a", 4, []byte("data")))
	require.NoError(f, err)
	f.Add(frame(frameVersion, uint32(len(good)), good))
	f.Add(append(frame(frameVersion, uint32(len(good)), good), frame(frameVersion, uint32(len(good)), good)...))
	f.Add(frame(frameVersion, 0xFFFFFFFF, good))
	f.Add(frame(2, uint32(len(good)), good))
	f.Add(frame(frameVersion, uint32(len(good)), good[:len(good)/2]))
	f.Add(frame(frameVersion, 3, []byte{0xdc, 0xff, 0xff}))
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := &frameReader{r: bytes.NewReader(data), max: 1 << 16, version: frameVersion}
		var prev *raft.Message
		var prevEnc []byte
		for {
			m, err := fr.readMessage()
			if prev != nil {
				// Reading the next frame, into the same buffer, left the
				// previous message as it was.
				b, err := raft.EncodeMessage(prev)
				if err != nil || !bytes.Equal(b, prevEnc) {
					t.Fatalf("message changed by the next read (%v)", err)
				}
			}
			if err != nil {
				if !errors.Is(err, errMalformed) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if m == nil {
				t.Fatal("nil message without error")
			}
			// A decoded message re-encodes to a frame that decodes again.
			b, err := raft.EncodeMessage(m)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if _, err := (&frameReader{r: bytes.NewReader(frame(frameVersion, uint32(len(b)), b)), max: 1 << 20, version: frameVersion}).readMessage(); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			prev, prevEnc = m, b
		}
	})
}
