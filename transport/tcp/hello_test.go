package tcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// The version each (dialer, acceptor) pair of ranges settles on, over real
// transports; 0 is a refusal, which must hold in both directions.
func TestHelloNegotiation(t *testing.T) {
	cases := []struct {
		dialer, acceptor versions
		want             uint8
	}{
		{versions{1, 1}, versions{1, 1}, 1},
		{versions{1, 2}, versions{1, 1}, 1},
		{versions{1, 1}, versions{1, 2}, 1},
		{versions{1, 2}, versions{1, 2}, 2},
		{versions{2, 2}, versions{1, 1}, 0},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v to %v", tc.dialer, tc.acceptor), func(t *testing.T) {
			a := newTransport(t, WithVersions(Options{}, tc.dialer.min, tc.dialer.max))
			b := newTransport(t, WithVersions(Options{}, tc.acceptor.min, tc.acceptor.max))
			if tc.want == 0 {
				requireRefused(t, a, b)
				requireRefused(t, b, a)
				return
			}
			// Both lanes: each has its own connection and hello.
			require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 7)))
			require.NoError(t, a.Send(b.LocalAddr(), appendMsg("a", 3, []byte("entry"))))
			got := map[raft.MessageType]bool{}
			for range 2 {
				got[recv(t, b, 5*time.Second).Type] = true
			}
			require.Equal(t, map[raft.MessageType]bool{raft.MsgHeartbeat: true, raft.MsgAppend: true}, got)
			require.Equal(t, map[raft.ServerAddress]uint8{b.LocalAddr(): tc.want}, a.PeerVersions())
			require.Empty(t, b.PeerVersions(), "b dialed no one")
			a.mu.RLock()
			p := a.peers[b.LocalAddr()]
			a.mu.RUnlock()
			require.Equal(t, tc.want, p.fast.live.Load().version)
			require.Equal(t, tc.want, p.bulk.live.Load().version)
			for _, tr := range []*Transport{a, b} {
				st := tr.Stats()
				require.Zero(t, st.Malformed)
				require.Zero(t, st.VersionRefused)
			}
		})
	}
}

// requireRefused sends from a to b, whose ranges share no version, and
// checks that the hello fails on both sides, that nothing is delivered,
// and that a reports no version for b.
func requireRefused(t *testing.T, a, b *Transport) {
	t.Helper()
	aRefused, bRefused := a.Stats().VersionRefused, b.Stats().VersionRefused
	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 1)))
	waitFor(t, 5*time.Second, "both sides to count the refusal", func() bool {
		return a.Stats().VersionRefused > aRefused && b.Stats().VersionRefused > bRefused
	})
	waitFor(t, 5*time.Second, "the refused message to count as failed", func() bool { return a.Stats().Failed >= 1 })
	require.Empty(t, a.PeerVersions())
	select {
	case m := <-b.Consumer():
		t.Fatalf("a refused peer delivered %v", m.Type)
	default:
	}
	require.Zero(t, b.Stats().Received)
	require.Zero(t, a.Stats().Sent)
	require.Zero(t, b.Stats().Malformed, "a refusal is not a malformed hello")
}

// dialHello dials tr, sends a hello for vs and returns the connection and
// the reply.
func dialHello(t *testing.T, tr *Transport, vs versions) (net.Conn, reply) {
	t.Helper()
	c := writeBare(t, tr, appendHello(nil, vs))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	rep, err := readReply(c)
	require.NoError(t, err)
	return c, rep
}

// The reply carries the choice and the acceptor's range; after it, only
// frames of the chosen version are accepted.
func TestHelloFrameVersionMustMatch(t *testing.T) {
	body := mustEncode(t, heartbeat("x", 1))
	b := newTransport(t, WithVersions(Options{}, 1, 2))

	c, rep := dialHello(t, b, versions{1, 2})
	require.Equal(t, reply{status: replyAccepted, version: 2, versions: versions{1, 2}}, rep)
	_, err := c.Write(frame(2, uint32(len(body)), body))
	require.NoError(t, err)
	require.Equal(t, raft.ServerID("x"), recv(t, b, 5*time.Second).From)
	_, err = c.Write(frame(1, uint32(len(body)), body)) // not what was negotiated
	require.NoError(t, err)
	expectClosedByPeer(t, c)
	waitFor(t, 5*time.Second, "malformed count", func() bool { return b.Stats().Malformed == 1 })

	// A v1-only reader refuses version 2 frames: a wrong negotiation
	// cannot go unnoticed.
	old := newTransport(t, WithVersions(Options{}, 1, 1))
	c, rep = dialHello(t, old, versions{1, 2})
	require.Equal(t, reply{status: replyAccepted, version: 1, versions: versions{1, 1}}, rep)
	_, err = c.Write(frame(2, uint32(len(body)), body))
	require.NoError(t, err)
	expectClosedByPeer(t, c)
	waitFor(t, 5*time.Second, "malformed count", func() bool { return old.Stats().Malformed == 1 })
	require.Zero(t, old.Stats().Received)

	// The refusal, as the dialer reads it.
	c, rep = dialHello(t, old, versions{2, 3})
	require.Equal(t, reply{status: replyRefused, versions: versions{1, 1}}, rep)
	expectClosedByPeer(t, c)
	waitFor(t, 5*time.Second, "refusal count", func() bool { return old.Stats().VersionRefused == 1 })
}

// Connections that do not open with a hello are malformed and closed: a
// pre-hello peer's frame, garbage, a bad range, an oversized extension. A
// hello's extension within the bound is skipped.
func TestHelloMalformed(t *testing.T) {
	body := mustEncode(t, heartbeat("x", 1))
	b := newTransport(t, Options{DialTimeout: 500 * time.Millisecond}) // "one wrong byte" waits for it
	withExt := func(vs versions, n int) []byte {
		h := appendHello(nil, vs)
		h[6], h[7] = byte(n>>8), byte(n)
		return h
	}
	cases := map[string][]byte{
		"pre-hello frame":    frame(frameVersion, uint32(len(body)), body),
		"http":               []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"reply as hello":     appendReply(nil, reply{version: 1, versions: versions{1, 1}}),
		"one wrong byte":     {0xFE, 'K', 'X'},
		"min above max":      appendHello(nil, versions{2, 1}),
		"version 0":          appendHello(nil, versions{0, 1}),
		"max is the magic":   appendHello(nil, versions{1, 0xFE}),
		"extension too long": withExt(versions{1, 1}, maxHelloExt+1),
	}
	want := uint64(0)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			expectClosedByPeer(t, writeBare(t, b, data))
			want++
			waitFor(t, 5*time.Second, "malformed count", func() bool { return b.Stats().Malformed == want })
		})
	}

	ext := append(withExt(versions{1, 3}, maxHelloExt), bytes.Repeat([]byte{0xAB}, maxHelloExt)...)
	c := writeBare(t, b, append(ext, frame(frameVersion, uint32(len(body)), body)...))
	require.Equal(t, raft.ServerID("x"), recv(t, b, 5*time.Second).From)
	rep, err := readReply(c)
	require.NoError(t, err)
	require.Equal(t, uint8(1), rep.version)
	require.Equal(t, want, b.Stats().Malformed)
	require.Zero(t, b.Stats().VersionRefused)
}

// An acceptor waits for a hello no longer than DialTimeout, and a silent
// connection is not counted as malformed.
func TestHelloDeadline(t *testing.T) {
	b := newTransport(t, Options{DialTimeout: 100 * time.Millisecond})
	start := time.Now()
	expectClosedByPeer(t, writeBare(t, b, nil))
	require.Less(t, time.Since(start), 3*time.Second)
	require.Zero(t, b.Stats().Malformed)
}

// fakeAcceptor accepts connections, reads a hello from each and answers
// with answer's bytes, then holds the connection open until the test ends.
func fakeAcceptor(t *testing.T, answer []byte) raft.ServerAddress {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := readHello(c); err == nil {
					c.Write(answer)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return raft.ServerAddress(ln.Addr().String())
}

// The dialer's side: a refusal counts as one, a bad or missing reply as a
// dial failure only; neither leaves a live connection.
func TestHelloDialerReplies(t *testing.T) {
	cases := map[string]struct {
		answer  []byte
		refused bool
	}{
		"refused":            {appendReply(nil, reply{status: replyRefused, versions: versions{3, 4}}), true},
		"version not spoken": {appendReply(nil, reply{version: 3, versions: versions{3, 4}}), false},
		"garbage":            {[]byte("HTTP/1.1 400 Bad Request\r\n\r\n"), false},
		"no reply":           {nil, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := newTransport(t, Options{DialTimeout: 200 * time.Millisecond})
			addr := fakeAcceptor(t, tc.answer)
			require.NoError(t, a.Send(addr, heartbeat("a", 1)))
			a.mu.RLock()
			fast := a.peers[addr].fast
			a.mu.RUnlock()
			waitFor(t, 5*time.Second, "the hello to fail", func() bool { return a.Stats().Failed == 1 })
			require.Nil(t, fast.live.Load())
			require.Empty(t, a.PeerVersions())
			require.Zero(t, a.Stats().Sent)
			if tc.refused {
				require.EqualValues(t, 1, a.Stats().VersionRefused)
			} else {
				require.Zero(t, a.Stats().VersionRefused)
			}
		})
	}
}

func TestVersionsOption(t *testing.T) {
	for _, vs := range []versions{{0, 1}, {2, 1}, {1, 0xFE}} {
		_, err := New("127.0.0.1:0", WithVersions(Options{}, vs.min, vs.max))
		require.ErrorContains(t, err, "protocol version range", "%v", vs)
	}
	tr := newTransport(t, Options{})
	require.Equal(t, versions{raft.MinProtocolVersion, raft.ProtocolVersion}, tr.versions)
}

func FuzzHello(f *testing.F) {
	f.Add(appendHello(nil, versions{1, 1}))
	f.Add(appendHello(nil, versions{1, 2}))
	f.Add(append(appendHello(nil, versions{1, 2})[:6], 0, 3, 'e', 'x', 't'))
	f.Add(append(appendHello(nil, versions{1, 2})[:6], 0xFF, 0xFF))
	f.Add(appendReply(nil, reply{version: 2, versions: versions{1, 2}}))
	f.Add(appendReply(nil, reply{status: replyRefused, versions: versions{2, 2}}))
	f.Add(append(appendReply(nil, reply{version: 1, versions: versions{1, 1}})[:8], 0, 1, 'x'))
	f.Add(frame(frameVersion, 3, []byte{0x80, 0x80, 0x80}))
	f.Add(appendHelloMode(nil, versions{1, 2}, modeHost))
	f.Add(appendReply(nil, reply{status: replyRefused, versions: versions{1, 1}, mode: modeHost}))
	f.Add(append(appendHello(nil, versions{1, 2})[:6], 0, 5, 'x', 1, 0, extMode, 1))    // mode field cut short
	f.Add(append(appendHello(nil, versions{1, 2})[:6], 0, 6, 'x', 1, 0, extMode, 1, 1)) // after an unknown field
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{0xFE, 'K'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		checkParse(t, data, helloMagic, helloSize, func() error {
			vs, _, err := readHello(r)
			if err == nil && (!vs.valid() || vs != (versions{data[4], data[5]})) {
				t.Fatalf("hello %v accepted from % x", vs, data)
			}
			return err
		})
		r.Reset(data)
		checkParse(t, data, replyMagic, replySize, func() error {
			rep, err := readReply(r)
			if err == nil && (!rep.valid() || rep.status > replyRefused ||
				rep.status == replyAccepted && (rep.version < rep.min || rep.version > rep.max) ||
				rep != (reply{data[4], data[5], versions{data[6], data[7]}, rep.mode})) {
				t.Fatalf("reply %+v accepted from % x", rep, data)
			}
			return err
		})
		// What the encoders write parses back.
		if len(data) < 3 {
			return
		}
		vs := versions{data[0], data[1]}
		if vs.valid() {
			md := mode(data[2] % 3)
			got, gotMode, err := readHello(bytes.NewReader(appendHelloMode(nil, vs, md)))
			if err != nil || got != vs || gotMode != md {
				t.Fatalf("hello %v %v round trip: %v %v, %v", vs, md, got, gotMode, err)
			}
			rep := reply{status: data[2] % 2, versions: vs, mode: md}
			if rep.status == replyAccepted {
				rep.version = vs.min + (data[2]/2)%(vs.max-vs.min+1)
			}
			got2, err := readReply(bytes.NewReader(appendReply(nil, rep)))
			if err != nil || got2 != rep {
				t.Fatalf("reply %+v round trip: %+v, %v", rep, got2, err)
			}
		}
	})
}

// checkParse runs parse, which reads data, and checks what any hello or
// reply parser must do: refuse as malformed what does not start with
// magic, succeed only on a whole base of size bytes, return nothing but
// malformed or end-of-input errors, and allocate nothing in proportion to
// an announced extension length.
func checkParse(t *testing.T, data []byte, magic [4]byte, size int, parse func() error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := parse()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 2<<10 {
		t.Fatalf("parsing %d bytes allocated %d", len(data), n)
	}
	k := min(len(data), len(magic))
	if !bytes.Equal(data[:k], magic[:k]) && !errors.Is(err, errMalformed) {
		t.Fatalf("% x is not a hello but parsed with %v", data, err)
	}
	switch {
	case err == nil:
		if len(data) < size {
			t.Fatalf("parsed %d bytes, short of %d", len(data), size)
		}
		if ext := int(data[size-2])<<8 | int(data[size-1]); len(data) < size+ext || ext > maxHelloExt {
			t.Fatalf("parsed % x without its extension of %d", data, ext)
		}
	case errors.Is(err, errMalformed), err == io.EOF, err == io.ErrUnexpectedEOF:
	default:
		t.Fatalf("unexpected error %v", err)
	}
}
