// Package tcp is a raft.Transport over TCP, optionally with TLS, and a
// raft.HostTransport (NewHost) that carries the messages of many Raft
// groups of one process over one set of connections per peer host.
//
// # Wire format
//
// A dialed connection opens with a hello, then carries frames one way.
// All integers are big-endian.
//
// The dialer writes the hello: the magic FE 4B 4C 48 ("\xfeKLH"), the
// lowest and the highest protocol version it speaks (1 byte each), and a
// 2-byte extension length n followed by n bytes that this version ignores,
// so a later hello can say more without breaking this one; n above 1024
// is refused (the extension's format is in "Host mode" below; a Transport
// sends none). The acceptor answers with a reply: the magic FE 4B 4C 52
// ("\xfeKLR"), a status (0 accepted, 1 refused: no version in common), the
// chosen version (0 when refused), the lowest and highest version it
// speaks, and a 2-byte extension length with the same rule. The chosen
// version is the highest both ranges hold. Both sides bound the exchange
// by DialTimeout; the dialer waits for the reply before writing any frame.
// A range is valid when 1 <= lowest <= highest < 0xFE, so the magic's
// first byte is never a frame's, and a pre-hello peer's frame (or any
// other bytes) is told apart at once. A transport speaks
// raft.MinProtocolVersion to raft.ProtocolVersion.
//
// An acceptor that reads anything but a valid hello closes the connection
// and counts it in Stats.Malformed. When the ranges share no version the
// acceptor sends the refusal and closes, the dialer closes on reading it,
// and each logs both ranges (the error wraps raft.ErrUnsupportedVersion)
// and counts it in Stats.VersionRefused; the dialer loses the message it
// dialed for and backs off as after a failed dial. PeerVersions reports
// what each live outbound connection negotiated.
//
// Each message is then one frame: a 1-byte version, which is always the
// version the hello chose, a 4-byte length, then that many bytes of the
// body. Versions 1 and, in tests only, 2 have the same body:
// raft.EncodeMessage's output. A frame with any other version than the
// connection's, a length above Options.MaxFrameSize, or bytes that
// raft.DecodeMessage rejects closes its connection; it is logged and counted
// in Stats.Malformed. A frame body is allocated as its bytes arrive (at most
// 1 MiB ahead of them), so a lying length field cannot force a large
// allocation. Senders encode with their own reused msgpack encoder, set up
// as raft.EncodeMessage's is, so the bytes are the same (a test compares
// them).
//
// # Host mode
//
// A HostTransport is the same transport in host mode: the same lanes,
// queues, connections, bounds, deadlines, backoff and counters, per peer
// host rather than per peer server, with messages tagged by group and
// written in batch frames. Host and single-group mode do not interoperate,
// and the hello says which one a side is in.
//
// The hello's and the reply's extension is a sequence of fields, each a
// 1-byte tag, a 1-byte length and that many bytes of value; a reader skips
// fields with tags it does not know and stops at a field cut short by the
// end of the extension, so any extension bytes parse. The mode field has
// tag 0x6D ('m') and a 1-byte value: 0 single-group, 1 host. A hello or
// reply without one is in single-group mode, which is what a Transport
// sends (no extension at all: its hello is byte for byte that of releases
// before host mode) and what releases before host mode send. An acceptor
// refuses a hello in another mode than its own, with status 1 and its own
// mode in the reply; a dialer refuses a reply in another mode than its
// own, whether it accepts (a release before host mode, which ignores the
// field) or refuses, and writes no frame. Both log both sides' modes and
// version ranges with an error wrapping raft.ErrUnsupportedVersion, count
// Stats.VersionRefused, and the dialer loses the message as after a
// version refusal. A Transport of this build refuses a HostTransport
// likewise; one of an earlier release sees a refusal (status 1) and logs
// it as a version refusal.
//
// In host mode each frame (same header: version, length) carries a batch:
// a 4-byte count n >= 1, then n messages, each a 4-byte length l > 8 and
// l bytes of raft.EncodeGroupMessage's output: the 8-byte group ID, never
// 0, then raft.EncodeMessage's bytes. A sender drains what is queued in a
// lane (up to 256 messages) into batch frames: a frame is closed when the
// next message would take its body past MaxFrameSize, or once it reaches
// 1 MiB (so frame buffers stay reusable), and the next starts; all of a
// drain's frames share one flush. A message whose item alone exceeds
// MaxFrameSize is not sent (Stats.Failed). A reader checks a batch's
// structure before decoding any of it: a count of 0 or beyond what the
// bytes can hold, a length past the frame, a group ID 0, or bytes left
// after the n-th message close the connection (Stats.Malformed) with
// nothing of the frame delivered; a message that raft.DecodeMessage
// rejects closes it too, after the messages before it in the frame.
// Messages are decoded and offered to the Consumer one at a time, so a
// batch holds no more memory than its frame. Stats.Frames counts frames
// written, so Stats.Sent/Stats.Frames is the mean batch.
//
// # Outbound
//
// Connections are one-way after the hello: a server writes frames on the
// connections it dials and reads frames on the ones it accepts. For every peer address there
// are two lanes, each with its own bounded queue, sender goroutine and
// connection: the bulk lane carries MsgAppend, MsgSnapshot and their answers, the fast lane
// everything else, so heartbeats and votes never wait behind a large append.
// Lanes live until Close (a server talks to the few addresses in its
// configuration).
// Send only enqueues; when a lane's queue is full, by count (QueueSize) or
// by bytes (QueueBytes), the message is dropped (Stats.Dropped) and Send
// returns nil — Raft retransmits. A sender dials
// lazily, writes through a bufio.Writer with a write deadline per frame and
// flushes when its queue is empty (or every 256 frames), so bursts
// share system calls. After a dial or write error it waits a capped
// exponential backoff (10ms doubling to 1s) before dialing again; the frame
// being written and the unflushed batch are lost (Stats.Failed). A goroutine
// per outbound connection reads from it once the hello is done, so a peer
// that closes (a restart) is noticed before the next write rather than by
// losing it.
//
// # Inbound
//
// One goroutine per accepted connection decodes frames and offers them to the
// Consumer channel without blocking: when the channel is full, by count
// (ConsumerBuffer) or by bytes (ConsumerBytes), the message is dropped
// (Stats.ReceiveDropped). Dropping rather than blocking keeps one
// connection's reader from stalling, so a flood of appends cannot hold
// heartbeats hostage in a shared back-pressured pipe, and Raft recovers
// from the loss. The Consumer channel is never closed.
//
// # Memory bounds
//
// Every queue is bounded in messages and in bytes, the bytes of a message
// being estimated cheaply as its byte slices (entries' Data, Context, a
// snapshot chunk's Data) and strings plus a fixed overhead per message and
// per entry (see Options.QueueBytes). Each lane's queue holds at most
// QueueSize messages and QueueBytes bytes (default 16 MiB), so a peer costs
// at most 2×QueueBytes of queued messages plus the one each sender is
// writing; the messages waiting in the Consumer channel total at most
// ConsumerBytes (default 64 MiB). Either bound admits one message into an
// empty queue whatever its size, so a message larger than the bound is
// delayed, never starved. Beyond that a connection holds its 64 KiB bufio
// buffer, the frame it is reading or writing (at most MaxFrameSize) and a
// frame buffer it reuses for the next frame, which is kept only while it is
// at most 2 MiB: a buffer grown for a larger frame is dropped after it.
package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
)

// Defaults for zero Options fields.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultWriteTimeout   = 5 * time.Second
	DefaultMaxFrameSize   = 64 << 20
	DefaultQueueSize      = 1024
	DefaultQueueBytes     = 16 << 20
	DefaultConsumerBuffer = 4096
	DefaultConsumerBytes  = 64 << 20
)

const (
	headerSize = 5
	readChunk  = 1 << 20  // frame bodies grow at most this far ahead of the bytes read
	bufSize    = 64 << 10 // bufio sizes
	maxBatch   = 256      // frames written before a forced flush
	maxKeptBuf = 2 << 20  // a frame buffer larger than this is not reused
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
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
	// DialTimeout bounds a dial, TLS handshake included, the TLS
	// handshake of an accepted connection, and, separately, each side of
	// the hello that follows (default DefaultDialTimeout).
	DialTimeout time.Duration
	// WriteTimeout bounds each frame write and flush (default
	// DefaultWriteTimeout). A peer that stops reading is disconnected after it.
	WriteTimeout time.Duration
	// MaxFrameSize is the largest frame body accepted or sent (default
	// DefaultMaxFrameSize, at most 4 GiB-1). Servers should agree on it.
	MaxFrameSize int
	// QueueSize is the capacity in messages of each of a peer's two
	// outbound queues (default DefaultQueueSize). Send drops a message that
	// finds its queue full (Stats.Dropped).
	QueueSize int
	// QueueBytes bounds the bytes of the messages waiting in each of a
	// peer's two outbound queues (default DefaultQueueBytes, 16 MiB). A
	// message's bytes are estimated as the lengths of its byte slices and
	// strings (entries' Data, Context, a snapshot chunk's Data and ID, the
	// addresses) plus 256 bytes per message, 64 per entry and 64 per server
	// of a snapshot chunk's configuration. Send drops a message that would
	// take its queue beyond QueueBytes and counts it in Stats.Dropped, as
	// when the queue is full by count, except that a message is always
	// admitted into an empty queue, so one larger than QueueBytes is sent,
	// alone, rather than never. Dropping is correct: Raft tolerates lost
	// messages (the leader resends appends from where the follower's answer
	// says its log ends, heartbeats and votes are repeated), and a queue
	// that full only adds latency to everything behind it. A message leaves
	// the count when the lane's sender takes it to write it; messages are
	// not copied, so entries Raft still holds in its log cache are shared,
	// not duplicated, while queued.
	//
	// The default, 16 MiB, is sixteen appends of Raft's default
	// MaxAppendBytes (1 MiB) or 64 snapshot chunks of its default 256 KiB,
	// and a backlog of about 130 ms at 1 Gbit/s: a queue that holds more
	// belongs to a connection that is down (its sender then discards a
	// message per dial attempt), stalled, or far slower than the leader,
	// where queuing more only delays what follows and holds memory. A peer
	// then costs at most 32 MiB of queued messages (two lanes) rather than
	// 2×QueueSize frames of up to MaxFrameSize. It is half Raft's default
	// MaxInflightBytes (32 MiB), the leader's own window per follower, most
	// of which is normally in socket buffers or at the follower; set
	// QueueBytes to at least MaxInflightBytes if appends inside that window
	// must never be dropped on a slow link (a drop costs the leader a
	// rejected append and a probe).
	QueueBytes int
	// ConsumerBuffer is the capacity in messages of the Consumer channel
	// (default DefaultConsumerBuffer).
	ConsumerBuffer int
	// ConsumerBytes bounds the bytes (estimated as for QueueBytes) of the
	// decoded messages waiting in the Consumer channel, received and not yet
	// taken by the consumer (default DefaultConsumerBytes, 64 MiB). A
	// message that would take them beyond it is dropped and counted in
	// Stats.ReceiveDropped, as when the channel is full by count, except
	// that a message is always admitted into an empty channel. Raft
	// recovers from the loss as from any other. The default is twice
	// Raft's default MaxInflightBytes (32 MiB), which bounds the appends a
	// leader has in flight to this server, so with Raft's defaults the
	// bound is a safety net that a working cluster does not reach; without
	// it the channel could hold ConsumerBuffer frames of MaxFrameSize.
	ConsumerBytes int
	// TLS, when set, is used both to listen and to dial. For mutual TLS set
	// Certificates, RootCAs, ClientCAs and ClientAuth.
	TLS *tls.Config
	// Logger receives errors (malformed frames, dial and write failures).
	// Default: silent.
	Logger *slog.Logger
	// Metrics, when set, receives the transport's figures, subsystem
	// "tcp". Per lane, with labels peer (the peer's address) and lane
	// (fast or bulk), made when Send first sees the peer:
	//
	//   - messages_sent, messages_dropped, messages_failed, reconnects
	//     (counters): what Stats counts as Sent, Dropped, Failed and
	//     Reconnects, from the same counters.
	//   - dials, dial_failures (counters): connections dialed, and dials
	//     that failed (connecting, the TLS handshake or the hello).
	//   - frames_written (counter), written (counter, bytes): frames and
	//     their bytes written to the connection (Stats.Frames); a
	//     HostTransport's frames are batches of messages.
	//   - batch_frames (histogram): messages per flush, which for a
	//     Transport are frames.
	//   - queued (gauge, bytes): the bytes waiting in the lane's queue.
	//
	// For the whole transport, made by New:
	//
	//   - messages_received, messages_receive_dropped, malformed_frames
	//     (counters): Stats' Received, ReceiveDropped and Malformed.
	//   - read (counter, bytes): bytes of the frames read.
	//   - connections (gauge, label direction = in or out): open
	//     connections, accepted and dialed.
	//
	//   - version_refused (counter): Stats' VersionRefused.
	//
	// Nil reports nothing, at no cost.
	Metrics metrics.Sink

	// versions, when set (tests only, export_test.go), is the range of
	// protocol versions spoken instead of raft.MinProtocolVersion to
	// raft.ProtocolVersion, to play an older or a newer release.
	versions versions
}

// Stats counts what a Transport did. Options.Metrics reports the same
// counts, per peer and lane for the outbound ones.
type Stats struct {
	Sent           uint64 // messages written and flushed to a connection
	Dropped        uint64 // messages Send dropped because the peer's queue was full (count or bytes)
	Failed         uint64 // queued messages lost to dial, write or encode errors
	Received       uint64 // messages decoded and put on the Consumer channel
	ReceiveDropped uint64 // messages decoded but dropped: Consumer channel full (count or bytes)
	Malformed      uint64 // inbound frames rejected (version, length, decoding), and accepted connections that opened with no valid hello
	Reconnects     uint64 // connections dialed to a peer after its lane's first
	VersionRefused uint64 // connections, dialed or accepted, closed in the hello for want of a common protocol version or mode
	Frames         uint64 // frames written to connections: one per message for a Transport, one per batch for a HostTransport
}

// Transport is a raft.Transport over TCP. Its methods are safe for
// concurrent use.
type Transport struct {
	opts   Options
	log    *slog.Logger
	ln     net.Listener
	addr   raft.ServerAddress
	mode   mode               // modeSingle for a Transport, modeHost inside a HostTransport
	ch     chan *raft.Message // the Consumer channel in modeSingle
	inbox  inbox[*raft.Message]
	gch    chan raft.GroupMessage // the Consumer channel in modeHost
	ginbox inbox[raft.GroupMessage]
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	mu    sync.RWMutex
	peers map[raft.ServerAddress]*peer
	conns map[net.Conn]bool // every open connection, closed by Close: true if dialed (outbound)
	// connsIn and connsOut count conns by direction, for the connections
	// gauges; mu guards them.
	connsIn, connsOut int

	// Stats' counters. The lanes' instruments count the outbound ones
	// per lane too, and m's the inbound ones, in the same calls (count).
	sent, dropped, failed, received, recvDropped, malformed, reconnects, versionRefused, frames atomic.Uint64

	versions versions // the protocol versions t speaks

	m transportMetrics
}

var _ raft.Transport = (*Transport)(nil)

// New listens on bindAddr and returns a Transport.
func New(bindAddr string, opts Options) (*Transport, error) {
	return newMode(bindAddr, opts, modeSingle)
}

// newMode is New for either mode.
func newMode(bindAddr string, opts Options, md mode) (*Transport, error) {
	if opts.DialTimeout < 0 || opts.WriteTimeout < 0 || opts.MaxFrameSize < 0 ||
		opts.QueueSize < 0 || opts.QueueBytes < 0 || opts.ConsumerBuffer < 0 || opts.ConsumerBytes < 0 {
		return nil, errors.New("tcp: negative option")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opts.MaxFrameSize, DefaultMaxFrameSize)
	def(&opts.QueueSize, DefaultQueueSize)
	def(&opts.QueueBytes, DefaultQueueBytes)
	def(&opts.ConsumerBuffer, DefaultConsumerBuffer)
	def(&opts.ConsumerBytes, DefaultConsumerBytes)
	opts.MaxFrameSize = min(opts.MaxFrameSize, math.MaxUint32)
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	vs := opts.versions
	if vs == (versions{}) {
		vs = versions{raft.MinProtocolVersion, raft.ProtocolVersion}
	}
	if !vs.valid() {
		return nil, fmt.Errorf("tcp: invalid protocol version range %v", vs)
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
		mode:  md,
		peers: make(map[raft.ServerAddress]*peer),
		conns: make(map[net.Conn]bool),
		m:     newTransportMetrics(opts.Metrics),

		versions: vs,
	}
	if md == modeHost {
		t.gch = make(chan raft.GroupMessage, opts.ConsumerBuffer)
		t.ginbox = inbox[raft.GroupMessage]{ch: t.gch, limit: int64(opts.ConsumerBytes), sizes: make([]int64, opts.ConsumerBuffer+1)}
	} else {
		t.ch = make(chan *raft.Message, opts.ConsumerBuffer)
		t.inbox = inbox[*raft.Message]{ch: t.ch, limit: int64(opts.ConsumerBytes), sizes: make([]int64, opts.ConsumerBuffer+1)}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Send queues m for target and returns at once. When the queue for target
// and m's class is full (Options.QueueSize, Options.QueueBytes), m is
// dropped and Send returns nil. Send fails with
// an error wrapping ErrClosed once t is closed. m must not be modified after
// Send: it is encoded later, by the sender goroutine.
func (t *Transport) Send(target raft.ServerAddress, m *raft.Message) error {
	return t.send(target, 0, m)
}

// send is Send of a message of group g (0 in modeSingle).
func (t *Transport) send(target raft.ServerAddress, g raft.GroupID, m *raft.Message) error {
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
	size := msgSize(m)
	if !l.reserve(size, int64(t.opts.QueueBytes)) {
		count(&t.dropped, l.m.dropped, 1)
		return nil
	}
	select {
	case l.queue <- queued{m, size, g}:
		l.queueChanged()
	default:
		l.bytes.Add(-size)
		l.queueChanged() // a Set since the reserve may have counted size
		count(&t.dropped, l.m.dropped, 1)
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
		l := &lane{addr: target, name: name, queue: make(chan queued, t.opts.QueueSize)}
		l.m.init(t.m.sink, target, name)
		return l
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
		VersionRefused: t.versionRefused.Load(), Frames: t.frames.Load(),
	}
}

// PeerVersions returns, for every peer this transport has a live outbound
// connection to, the protocol version negotiated in that connection's
// hello. A peer has two lanes, each with its own connection and hello;
// when both are live and disagree (a moment in a peer's restart) the lower
// is reported, so a peer shows the newer version only once everything
// sent to it uses it. A peer whose connections are down, not yet dialed or
// refused in the hello has no entry. It says what this server sends; what
// a peer sends here is in the peer's own PeerVersions.
func (t *Transport) PeerVersions() map[raft.ServerAddress]uint8 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	vs := make(map[raft.ServerAddress]uint8)
	for addr, p := range t.peers {
		for _, l := range []*lane{p.fast, p.bulk} {
			c := l.live.Load()
			if c == nil {
				continue
			}
			if v, ok := vs[addr]; !ok || c.version < v {
				vs[addr] = c.version
			}
		}
	}
	return vs
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
	t.connsIn, t.connsOut = 0, 0
	t.connsChanged()
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

// track registers c, dialed (out) or accepted, so that Close closes it. It
// closes c and returns false if t is closed.
func (t *Transport) track(c net.Conn, out bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		c.Close()
		return false
	}
	t.conns[c] = out
	if out {
		t.connsOut++
	} else {
		t.connsIn++
	}
	t.connsChanged()
	return true
}

// untrack closes c and forgets it.
func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	if out, ok := t.conns[c]; ok {
		delete(t.conns, c)
		if out {
			t.connsOut--
		} else {
			t.connsIn--
		}
		t.connsChanged()
	}
	t.mu.Unlock()
	c.Close()
}

// connsChanged reports the connection counts. t.mu must be held, which
// orders the Sets.
func (t *Transport) connsChanged() {
	if t.m.connsIn != nil {
		t.m.connsIn.Set(float64(t.connsIn))
	}
	if t.m.connsOut != nil {
		t.m.connsOut.Set(float64(t.connsOut))
	}
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
	bw      *bufio.Writer
	dead    chan struct{} // closed when the peer closes or sends anything
	version uint8         // negotiated in the hello; every frame carries it
}

// runLane is a lane's sender goroutine.
func (t *Transport) runLane(l *lane) {
	defer t.wg.Done()
	log := t.log.With("peer", string(l.addr), "lane", l.name)
	bw := bufio.NewWriterSize(nil, bufSize)
	enc := newEncoder()
	var c *outConn
	drop := func() {
		l.live.CompareAndSwap(c, nil)
		t.untrack(c.Conn)
		c = nil
	}
	defer func() {
		if c != nil {
			drop()
		}
	}()
	var backoff time.Duration
	for {
		var q queued
		select {
		case <-t.ctx.Done():
			return
		case q = <-l.queue:
			l.take(q)
		}
		if c != nil {
			select {
			case <-c.dead:
				// A restart, or a peer refusing us after the handshake
				// (mutual TLS): back off a little so refusal is no hot loop.
				backoff = nextBackoff(backoff)
				log.Debug("peer closed connection", "backoff", backoff)
				drop()
			default:
			}
		}
		if c == nil {
			if backoff > 0 && !t.sleep(backoff) {
				return
			}
			conn, err := t.dial(l.addr)
			var version uint8
			if err == nil {
				// Tracked before the hello, so that Close interrupts it.
				if !t.track(conn, true) {
					return
				}
				if version, err = t.sayHello(conn, l.addr); err != nil {
					t.untrack(conn)
				}
			}
			if err != nil {
				if t.ctx.Err() != nil {
					return
				}
				add(l.m.dialFailures, 1)
				count(&t.failed, l.m.failed, 1)
				backoff = nextBackoff(backoff)
				if refusedInHello(err) {
					count(&t.versionRefused, t.m.versionRefused, 1)
					log.Error("peer refused in the hello: no common protocol version or mode", "err", err, "backoff", backoff)
				} else {
					log.Warn("dial failed", "err", err, "backoff", backoff)
				}
				continue
			}
			add(l.m.dials, 1)
			if l.dialed {
				count(&t.reconnects, l.m.reconnects, 1)
			}
			l.dialed = true
			bw.Reset(conn)
			c = &outConn{Conn: conn, bw: bw, dead: make(chan struct{}), version: version}
			l.live.Store(c)
			t.wg.Add(1)
			go t.watch(c, l)
		}
		var n int
		var err error
		if t.mode == modeHost {
			n, err = t.writeGroupBatch(c, enc, q, l, log)
		} else {
			n, err = t.writeBatch(c, enc, q.m, l, log)
		}
		if err != nil {
			count(&t.failed, l.m.failed, uint64(n))
			if t.ctx.Err() != nil {
				return
			}
			backoff = nextBackoff(backoff)
			log.Warn("write failed", "err", err, "lost", n, "backoff", backoff)
			drop()
			continue
		}
		if l.m.batch != nil {
			l.m.batch.Observe(float64(n))
		}
		count(&t.sent, l.m.sent, uint64(n))
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

// watch reads from an outbound connection, on which the peer writes
// nothing after its hello reply, to notice when the peer closes it.
func (t *Transport) watch(c *outConn, l *lane) {
	defer t.wg.Done()
	defer close(c.dead)
	var b [1]byte
	c.Read(b[:]) // returns at EOF, on a reset, on unexpected data, or when the conn is closed
	// Dead now rather than when the sender next looks, so PeerVersions
	// stops reporting a peer that went away.
	l.live.CompareAndSwap(c, nil)
}

// writeBatch writes m and whatever else is queued in l, up to maxBatch
// frames, and flushes. It returns the number of frames in the batch.
func (t *Transport) writeBatch(c *outConn, enc *encoder, m *raft.Message, l *lane, log *slog.Logger) (int, error) {
	defer enc.done()
	n, bytes := 0, 0 // frames written to c.bw, and their bytes
	for {
		body, err := enc.encode(m)
		if err == nil && len(body) > t.opts.MaxFrameSize {
			err = fmt.Errorf("%v message of %d bytes exceeds MaxFrameSize %d", m.Type, len(body), t.opts.MaxFrameSize)
		}
		if err != nil {
			count(&t.failed, l.m.failed, 1)
			log.Error("cannot send message", "err", err)
		} else {
			var hdr [headerSize]byte
			hdr[0] = c.version
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)))
			if err := c.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout)); err != nil {
				t.wrote(l, n, bytes)
				return n + 1, err
			}
			c.bw.Write(hdr[:]) // bufio.Writer errors are sticky: checked below
			if _, err := c.bw.Write(body); err != nil {
				t.wrote(l, n, bytes)
				return n + 1, err
			}
			n++
			bytes += headerSize + len(body)
		}
		if n < maxBatch {
			select {
			case q := <-l.queue:
				m = l.take(q).m
				continue
			default:
			}
		}
		t.wrote(l, n, bytes)
		if err := c.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout)); err != nil {
			return n, err
		}
		return n, c.bw.Flush()
	}
}

// wireHandle is set up as package raft's, so that encoder writes what
// raft.EncodeMessage does (TestEncoderMatchesEncodeMessage checks it).
// MaxInitLen, which raft also sets, matters only to decoding.
var wireHandle = &codec.MsgpackHandle{WriteExt: true}

// encoder encodes messages into a buffer it reuses, a lane's.
type encoder struct {
	enc   *codec.Encoder
	buf   []byte
	batch []byte // modeHost: the batch frame being built, reused likewise
}

func newEncoder() *encoder {
	e := &encoder{buf: make([]byte, 0, 4<<10)}
	e.enc = codec.NewEncoderBytes(&e.buf, wireHandle)
	return e
}

// encode returns m encoded as raft.EncodeMessage would, in e's buffer: the
// bytes are valid until the next encode or done. Call done when through
// with a batch.
func (e *encoder) encode(m *raft.Message) ([]byte, error) {
	e.enc.ResetBytes(&e.buf)
	if err := e.enc.Encode(m); err != nil {
		return nil, fmt.Errorf("tcp: encode %v: %w", m.Type, err)
	}
	return e.buf, nil
}

// done drops e's buffer if a large message grew it beyond maxKeptBuf.
func (e *encoder) done() {
	if cap(e.buf) > maxKeptBuf {
		e.buf = make([]byte, 0, 4<<10)
	}
	if cap(e.batch) > maxKeptBuf {
		e.batch = nil
	}
}
