package tcp

// The receiving side: accepted connections, frames read from them, and the
// Consumer channel bounded by bytes.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
)

// inbox accounts for the bytes of the messages in the Consumer channel. Only
// offer sends on the channel, under mu, and records each message's size in
// sizes in channel order; since the channel is FIFO, the consumer has taken
// the oldest n-len(ch) of them, whose bytes offer releases before it counts
// a new message. The count can only lag the consumer, never run ahead of
// it, so it never undercounts.
type inbox[T any] struct {
	mu    sync.Mutex
	ch    chan T
	limit int64
	sizes []int64 // ring of cap(ch)+1: the sizes of the n messages offered and perhaps not taken
	head  int
	n     int
	bytes int64 // the sum of those sizes
}

// offer puts m on the channel unless it is full by count or, while not
// empty, m would take it beyond its byte limit. It reports whether it did.
func (b *inbox[T]) offer(m T, size int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.release()
	if b.n > 0 && b.bytes+size > b.limit {
		return false
	}
	select {
	case b.ch <- m:
	default:
		return false
	}
	// n <= cap(ch) before this message (the consumer may have taken one
	// since len was read), so the ring has room.
	b.sizes[(b.head+b.n)%len(b.sizes)] = size
	b.n++
	b.bytes += size
	return true
}

// release uncounts the messages the consumer took. b.mu must be held.
func (b *inbox[T]) release() {
	for taken := b.n - len(b.ch); taken > 0; taken-- {
		b.bytes -= b.sizes[b.head]
		b.head = (b.head + 1) % len(b.sizes)
		b.n--
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
			t.conns[conn] = false
			t.connsIn++
			t.connsChanged()
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
	version, err := t.answerHello(conn, br)
	if err != nil {
		switch {
		case refusedInHello(err):
			count(&t.versionRefused, t.m.versionRefused, 1)
			log.Error("refusing peer: no common protocol version or mode", "err", err)
		case errors.Is(err, errMalformed):
			count(&t.malformed, t.m.malform, 1)
			log.Error("closing connection", "err", err)
		case t.ctx.Err() == nil:
			log.Debug("connection ended in the hello", "err", err)
		}
		return
	}
	fr := &frameReader{r: br, max: uint32(t.opts.MaxFrameSize), version: version, read: t.m.read}
	if t.mode == modeHost {
		t.serveGroups(fr, log)
		return
	}
	for {
		m, err := fr.readMessage()
		if err != nil {
			switch {
			case errors.Is(err, errMalformed):
				count(&t.malformed, t.m.malform, 1)
				log.Error("closing connection", "err", err)
			case t.ctx.Err() == nil && !errors.Is(err, io.EOF):
				log.Debug("connection ended", "err", err)
			}
			return
		}
		if t.inbox.offer(m, msgSize(m)) {
			count(&t.received, t.m.received, 1)
		} else {
			count(&t.recvDropped, t.m.recvDropped, 1)
		}
	}
}

// frameReader reads frames from r, reusing one body buffer of at most
// maxKeptBuf bytes.
type frameReader struct {
	r       io.Reader
	max     uint32          // the largest body accepted
	version uint8           // the connection's negotiated version: the only one its frames may carry
	read    metrics.Counter // counts the bytes of the frames read; nil without a Sink
	hdr     [headerSize]byte
	buf     []byte
}

// readMessage reads one frame and decodes it. Errors wrapping errMalformed
// mean the frame is invalid; others are I/O errors (io.EOF only at a frame
// boundary). The message shares no memory with the frame buffer:
// raft.DecodeMessage copies byte slices (TestDecodeDoesNotAlias checks it).
func (fr *frameReader) readMessage() (*raft.Message, error) {
	body, err := fr.readFrame()
	if err != nil {
		return nil, err
	}
	m, err := raft.DecodeMessage(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return m, nil
}

// readFrame reads one frame's body, valid until the next readFrame. A body
// that fits fr's buffer is read into it; a larger one grows as bytes arrive,
// never more than readChunk ahead of them, and replaces the buffer only if
// it is at most maxKeptBuf.
func (fr *frameReader) readFrame() ([]byte, error) {
	hdr := fr.hdr[:]
	if _, err := io.ReadFull(fr.r, hdr); err != nil {
		return nil, err
	}
	if hdr[0] != fr.version {
		return nil, fmt.Errorf("%w: version %d, but the connection negotiated %d", errMalformed, hdr[0], fr.version)
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if uint64(n) > uint64(fr.max) {
		return nil, fmt.Errorf("%w: length %d exceeds maximum %d", errMalformed, n, fr.max)
	}
	b := fr.buf[:0]
	if cap(b) < min(n, readChunk) {
		b = make([]byte, 0, min(n, readChunk))
	}
	for len(b) < n {
		if len(b) == cap(b) { // double, capped at n
			b = append(make([]byte, 0, min(n, 2*len(b))), b...)
		}
		k, err := io.ReadFull(fr.r, b[len(b):min(n, cap(b))])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	if cap(b) <= maxKeptBuf {
		fr.buf = b[:0]
	}
	add(fr.read, uint64(headerSize+n))
	return b, nil
}
