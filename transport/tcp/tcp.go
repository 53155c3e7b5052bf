// Package tcp is a raft.Transport over TCP, optionally with TLS.
//
// # Wire format
//
// Each message is one frame: a 1-byte version (1), a 4-byte big-endian
// length, then that many bytes of raft.EncodeMessage output. A frame with an
// unknown version, a length above Options.MaxFrameSize, or bytes that
// raft.DecodeMessage rejects closes its connection; it is logged and counted
// in Stats.Malformed. A frame body is allocated as its bytes arrive (at most
// 1 MiB ahead of them), so a lying length field cannot force a large
// allocation.
//
// # Outbound
//
// Connections are one-way: a server writes frames on the connections it
// dials and reads frames on the ones it accepts. For every peer address there
// are two lanes, each with its own bounded queue, sender goroutine and
// connection: the bulk lane carries MsgAppend, MsgSnapshot and their answers, the fast lane
// everything else, so heartbeats and votes never wait behind a large append.
// Lanes live until Close (a server talks to the few addresses in its
// configuration).
// Send only enqueues; when a lane's queue is full the message is dropped
// (Stats.Dropped) and Send returns nil — Raft retransmits. A sender dials
// lazily, writes through a bufio.Writer with a write deadline per frame and
// flushes when its queue is empty (or every 256 frames), so bursts
// share system calls. After a dial or write error it waits a capped
// exponential backoff (10ms doubling to 1s) before dialing again; the frame
// being written and the unflushed batch are lost (Stats.Failed). A goroutine
// per outbound connection reads from it, so a peer that closes (a restart)
// is noticed before the next write rather than by losing it.
//
// # Inbound
//
// One goroutine per accepted connection decodes frames and offers them to the
// Consumer channel without blocking: when the channel is full the message is
// dropped (Stats.ReceiveDropped). Dropping rather than blocking keeps one
// connection's reader from stalling, so a flood of appends cannot hold
// heartbeats hostage in a shared back-pressured pipe, and Raft recovers
// from the loss. The Consumer channel is never closed.
package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelraft/raft"
)

// Defaults for zero Options fields.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultWriteTimeout   = 5 * time.Second
	DefaultMaxFrameSize   = 64 << 20
	DefaultQueueSize      = 1024
	DefaultConsumerBuffer = 4096
)

const (
	frameVersion = 1
	headerSize   = 5
	readChunk    = 1 << 20  // frame bodies grow at most this far ahead of the bytes read
	bufSize      = 64 << 10 // bufio sizes
	maxBatch     = 256      // frames written before a forced flush
	minBackoff   = 10 * time.Millisecond
	maxBackoff   = time.Second
)

// ErrClosed is returned (wrapped) by Send on a closed Transport.
var ErrClosed = errors.New("tcp: transport closed")

// errMalformed marks frames that close their connection and count as
// malformed.
var errMalformed = errors.New("tcp: malformed frame")

// Options configures a Transport. Zero fields take the defaults.
type Options struct {
	// Advertise is the address other servers reach this one at; it is what
	// LocalAddr returns. It defaults to the listener's address, which must
	// then not be unspecified (0.0.0.0 or ::).
	Advertise raft.ServerAddress
	// DialTimeout bounds a dial, TLS handshake included, and the TLS
	// handshake of an accepted connection (default DefaultDialTimeout).
	DialTimeout time.Duration
	// WriteTimeout bounds each frame write and flush (default
	// DefaultWriteTimeout). A peer that stops reading is disconnected after it.
	WriteTimeout time.Duration
	// MaxFrameSize is the largest frame body accepted or sent (default
	// DefaultMaxFrameSize, at most 4 GiB-1). Servers should agree on it.
	MaxFrameSize int
	// QueueSize is the capacity of each of a peer's two outbound queues
	// (default DefaultQueueSize).
	QueueSize int
	// ConsumerBuffer is the capacity of the Consumer channel (default
	// DefaultConsumerBuffer).
	ConsumerBuffer int
	// TLS, when set, is used both to listen and to dial. For mutual TLS set
	// Certificates, RootCAs, ClientCAs and ClientAuth.
	TLS *tls.Config
	// Logger receives errors (malformed frames, dial and write failures).
	// Default: silent.
	Logger *slog.Logger
}

// Stats counts what a Transport did.
type Stats struct {
	Sent           uint64 // messages written and flushed to a connection
	Dropped        uint64 // messages Send dropped because the peer's queue was full
	Failed         uint64 // queued messages lost to dial, write or encode errors
	Received       uint64 // messages decoded and put on the Consumer channel
	ReceiveDropped uint64 // messages decoded but dropped: Consumer channel full
	Malformed      uint64 // inbound frames rejected (version, length, decoding)
	Reconnects     uint64 // connections dialed to a peer after its lane's first
}

// Transport is a raft.Transport over TCP. Its methods are safe for
// concurrent use.
type Transport struct {
	opts   Options
	log    *slog.Logger
	ln     net.Listener
	addr   raft.ServerAddress
	ch     chan *raft.Message
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	mu    sync.RWMutex
	peers map[raft.ServerAddress]*peer
	conns map[net.Conn]struct{} // every open connection, closed by Close

	sent, dropped, failed, received, recvDropped, malformed, reconnects atomic.Uint64
}

var _ raft.Transport = (*Transport)(nil)

type peer struct{ fast, bulk *lane }

// lane is one outbound queue, sender goroutine and connection to a peer.
type lane struct {
	addr   raft.ServerAddress
	name   string
	queue  chan *raft.Message
	dialed bool // a connection was dialed before
}

// New listens on bindAddr and returns a Transport.
func New(bindAddr string, opts Options) (*Transport, error) {
	if opts.DialTimeout < 0 || opts.WriteTimeout < 0 || opts.MaxFrameSize < 0 ||
		opts.QueueSize < 0 || opts.ConsumerBuffer < 0 {
		return nil, errors.New("tcp: negative option")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opts.MaxFrameSize, DefaultMaxFrameSize)
	def(&opts.QueueSize, DefaultQueueSize)
	def(&opts.ConsumerBuffer, DefaultConsumerBuffer)
	opts.MaxFrameSize = min(opts.MaxFrameSize, math.MaxUint32)
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen: %w", err)
	}
	addr := opts.Advertise
	if addr == "" {
		if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("tcp: listener address %v is not advertisable: set Options.Advertise", ta)
		}
		addr = raft.ServerAddress(ln.Addr().String())
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	t := &Transport{
		opts:  opts,
		log:   lg.With("transport", "tcp", "local", string(addr)),
		ln:    ln,
		addr:  addr,
		ch:    make(chan *raft.Message, opts.ConsumerBuffer),
		peers: make(map[raft.ServerAddress]*peer),
		conns: make(map[net.Conn]struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Send queues m for target and returns at once. When the queue for target
// and m's class is full, m is dropped and Send returns nil. Send fails with
// an error wrapping ErrClosed once t is closed. m must not be modified after
// Send: it is encoded later, by the sender goroutine.
func (t *Transport) Send(target raft.ServerAddress, m *raft.Message) error {
	if t.closed.Load() {
		return fmt.Errorf("tcp: send to %s: %w", target, ErrClosed)
	}
	if m == nil || target == "" {
		return errors.New("tcp: send: nil message or empty target")
	}
	t.mu.RLock()
	p := t.peers[target]
	t.mu.RUnlock()
	if p == nil {
		var err error
		if p, err = t.newPeer(target); err != nil {
			return err
		}
	}
	l := p.fast
	if m.Type == raft.MsgAppend || m.Type == raft.MsgAppendResp || m.Type == raft.MsgSnapshot || m.Type == raft.MsgSnapshotResp {
		l = p.bulk
	}
	select {
	case l.queue <- m:
	default:
		t.dropped.Add(1)
	}
	return nil
}

func (t *Transport) newPeer(target raft.ServerAddress) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, fmt.Errorf("tcp: send to %s: %w", target, ErrClosed)
	}
	if p := t.peers[target]; p != nil {
		return p, nil
	}
	mk := func(name string) *lane {
		return &lane{addr: target, name: name, queue: make(chan *raft.Message, t.opts.QueueSize)}
	}
	p := &peer{fast: mk("fast"), bulk: mk("bulk")}
	t.peers[target] = p
	t.wg.Add(2)
	go t.runLane(p.fast)
	go t.runLane(p.bulk)
	return p, nil
}

// Consumer returns the channel on which incoming messages arrive. It is
// never closed.
func (t *Transport) Consumer() <-chan *raft.Message { return t.ch }

// LocalAddr returns the advertised address.
func (t *Transport) LocalAddr() raft.ServerAddress { return t.addr }

// Addr returns the listener's actual address (useful with port 0).
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Sent: t.sent.Load(), Dropped: t.dropped.Load(), Failed: t.failed.Load(),
		Received: t.received.Load(), ReceiveDropped: t.recvDropped.Load(),
		Malformed: t.malformed.Load(), Reconnects: t.reconnects.Load(),
	}
}

// Close stops the listener, closes every connection and waits for every
// goroutine of t to exit. Queued messages are discarded. Close is
// idempotent and returns the listener's close error, if any.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	for c := range conns {
		c.Close()
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// track registers c so that Close closes it. It closes c and returns false
// if t is closed.
func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// sleep waits d or until Close; it reports whether t is still open.
func (t *Transport) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-t.ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, minBackoff), maxBackoff)
}

// outConn is a dialed connection and what its sender needs with it.
type outConn struct {
	net.Conn
	bw   *bufio.Writer
	dead chan struct{} // closed when the peer closes or sends anything
}

// runLane is a lane's sender goroutine.
func (t *Transport) runLane(l *lane) {
	defer t.wg.Done()
	log := t.log.With("peer", string(l.addr), "lane", l.name)
	bw := bufio.NewWriterSize(nil, bufSize)
	var c *outConn
	defer func() {
		if c != nil {
			t.untrack(c.Conn)
		}
	}()
	var backoff time.Duration
	for {
		var m *raft.Message
		select {
		case <-t.ctx.Done():
			return
		case m = <-l.queue:
		}
		if c != nil {
			select {
			case <-c.dead:
				// A restart, or a peer refusing us after the handshake
				// (mutual TLS): back off a little so refusal is no hot loop.
				backoff = nextBackoff(backoff)
				log.Debug("peer closed connection", "backoff", backoff)
				t.untrack(c.Conn)
				c = nil
			default:
			}
		}
		if c == nil {
			if backoff > 0 && !t.sleep(backoff) {
				return
			}
			conn, err := t.dial(l.addr)
			if err != nil {
				if t.ctx.Err() != nil {
					return
				}
				t.failed.Add(1)
				backoff = nextBackoff(backoff)
				log.Warn("dial failed", "err", err, "backoff", backoff)
				continue
			}
			if !t.track(conn) {
				return
			}
			if l.dialed {
				t.reconnects.Add(1)
			}
			l.dialed = true
			bw.Reset(conn)
			c = &outConn{Conn: conn, bw: bw, dead: make(chan struct{})}
			t.wg.Add(1)
			go t.watch(c)
		}
		n, err := t.writeBatch(c, m, l.queue, log)
		if err != nil {
			t.failed.Add(uint64(n))
			if t.ctx.Err() != nil {
				return
			}
			backoff = nextBackoff(backoff)
			log.Warn("write failed", "err", err, "lost", n, "backoff", backoff)
			t.untrack(c.Conn)
			c = nil
			continue
		}
		t.sent.Add(uint64(n))
		backoff = 0
	}
}

func (t *Transport) dial(addr raft.ServerAddress) (net.Conn, error) {
	d := &net.Dialer{Timeout: t.opts.DialTimeout}
	if t.opts.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: t.opts.TLS}
		return td.DialContext(t.ctx, "tcp", string(addr))
	}
	return d.DialContext(t.ctx, "tcp", string(addr))
}

// watch reads from an outbound connection, on which the peer never writes,
// to notice when the peer closes it.
func (t *Transport) watch(c *outConn) {
	defer t.wg.Done()
	defer close(c.dead)
	var b [1]byte
	c.Read(b[:]) // returns at EOF, on a reset, on unexpected data, or when the conn is closed
}

// writeBatch writes m and whatever else is queued, up to maxBatch frames,
// and flushes. It returns the number of frames in the batch.
func (t *Transport) writeBatch(c *outConn, m *raft.Message, q <-chan *raft.Message, log *slog.Logger) (int, error) {
	n := 0
	for {
		body, err := raft.EncodeMessage(m)
		if err == nil && len(body) > t.opts.MaxFrameSize {
			err = fmt.Errorf("%v message of %d bytes exceeds MaxFrameSize %d", m.Type, len(body), t.opts.MaxFrameSize)
		}
		if err != nil {
			t.failed.Add(1)
			log.Error("cannot send message", "err", err)
		} else {
			var hdr [headerSize]byte
			hdr[0] = frameVersion
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)))
			if err := c.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout)); err != nil {
				return n + 1, err
			}
			c.bw.Write(hdr[:]) // bufio.Writer errors are sticky: checked below
			if _, err := c.bw.Write(body); err != nil {
				return n + 1, err
			}
			n++
		}
		if n < maxBatch {
			select {
			case m = <-q:
				continue
			default:
			}
		}
		if err := c.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout)); err != nil {
			return n, err
		}
		return n, c.bw.Flush()
	}
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var backoff time.Duration
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = nextBackoff(backoff)
			t.log.Error("accept failed", "err", err, "backoff", backoff)
			if !t.sleep(backoff) {
				return
			}
			continue
		}
		backoff = 0
		t.mu.Lock()
		ok := t.conns != nil
		if ok {
			t.conns[conn] = struct{}{}
			t.wg.Add(1)
		}
		t.mu.Unlock()
		if !ok {
			conn.Close()
			return
		}
		go t.serve(conn)
	}
}

// serve reads frames from an accepted connection until it fails.
func (t *Transport) serve(conn net.Conn) {
	defer t.wg.Done()
	defer t.untrack(conn)
	log := t.log.With("remote", conn.RemoteAddr().String())
	if tc, ok := conn.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(t.ctx, t.opts.DialTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			log.Warn("TLS handshake failed", "err", err)
			return
		}
	}
	br := bufio.NewReaderSize(conn, bufSize)
	var hdr [headerSize]byte
	for {
		m, err := readMessage(br, &hdr, uint32(t.opts.MaxFrameSize))
		if err != nil {
			switch {
			case errors.Is(err, errMalformed):
				t.malformed.Add(1)
				log.Error("closing connection", "err", err)
			case t.ctx.Err() == nil && !errors.Is(err, io.EOF):
				log.Debug("connection ended", "err", err)
			}
			return
		}
		select {
		case t.ch <- m:
			t.received.Add(1)
		default:
			t.recvDropped.Add(1)
		}
	}
}

// readMessage reads one frame from r and decodes it. Errors wrapping
// errMalformed mean the frame is invalid; others are I/O errors (io.EOF
// only at a frame boundary).
func readMessage(r io.Reader, hdr *[headerSize]byte, maxSize uint32) (*raft.Message, error) {
	body, err := readFrame(r, hdr, maxSize)
	if err != nil {
		return nil, err
	}
	m, err := raft.DecodeMessage(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return m, nil
}

// readFrame reads one frame's body. The buffer grows as bytes arrive, never
// more than readChunk ahead of them.
func readFrame(r io.Reader, hdr *[headerSize]byte, maxSize uint32) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != frameVersion {
		return nil, fmt.Errorf("%w: unknown version %d", errMalformed, hdr[0])
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if uint64(n) > uint64(maxSize) {
		return nil, fmt.Errorf("%w: length %d exceeds maximum %d", errMalformed, n, maxSize)
	}
	b := make([]byte, 0, min(n, readChunk))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), len(b))) // double, capped at n
		}
		k, err := io.ReadFull(r, b[len(b):min(n, cap(b))])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b, nil
}
