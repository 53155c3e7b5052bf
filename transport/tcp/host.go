package tcp

// Host mode: a HostTransport is a Transport in modeHost, whose lanes carry
// group-tagged messages and write them in batch frames. The package doc's
// "Host mode" section is the specification; this file holds the batch
// frame's encoder and decoder and HostTransport's methods.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/keelraft/raft"
)

const (
	batchCountSize = 4 // a batch frame body's message count
	batchLenSize   = 4 // each message's length in a batch frame body
	groupIDSize    = 8 // the group ID in front of each message
	// minBatchItem is the fewest bytes a message takes in a batch body:
	// its length, its group ID and at least one byte of encoded message.
	minBatchItem = batchLenSize + groupIDSize + 1
	// batchTarget ends a batch frame once its body reaches this size, and
	// the next message starts a new frame of the same flush, so frame
	// buffers stay within maxKeptBuf and are reused.
	batchTarget = 1 << 20
)

// HostTransport is a raft.HostTransport over TCP: it carries the messages
// of every group of a multi-raft host, with one pair of lanes (fast and
// bulk, as Transport's) and so one pair of connections per peer host
// however many groups the two share. Messages of all groups queued for a
// peer's lane go out together, as batch frames, one flush per drain of
// the queue. Options, Stats, metrics, bounds, deadlines, backoff and
// dropping are Transport's; QueueSize, QueueBytes, ConsumerBuffer and
// ConsumerBytes bound the whole host's messages, not a group's. A
// HostTransport talks only to HostTransports: a Transport, of this build
// or an older one, is refused in the hello (Stats.VersionRefused). Its
// methods are safe for concurrent use.
type HostTransport struct {
	t *Transport
}

var _ raft.HostTransport = (*HostTransport)(nil)

// NewHost listens on bindAddr and returns a HostTransport.
func NewHost(bindAddr string, opts Options) (*HostTransport, error) {
	t, err := newMode(bindAddr, opts, modeHost)
	if err != nil {
		return nil, err
	}
	return &HostTransport{t: t}, nil
}

// Send queues m, a message of group g, for the host at target and returns
// at once; it is Transport.Send's contract with a group. g must not be 0.
func (h *HostTransport) Send(target raft.ServerAddress, g raft.GroupID, m *raft.Message) error {
	if g == 0 {
		return errors.New("tcp: send: group ID 0 is not valid")
	}
	return h.t.send(target, g, m)
}

// Consumer returns the channel on which every group's incoming messages
// arrive, bounded as Transport's (ConsumerBuffer, ConsumerBytes). It is
// never closed.
func (h *HostTransport) Consumer() <-chan raft.GroupMessage { return h.t.gch }

// LocalAddr returns the advertised address.
func (h *HostTransport) LocalAddr() raft.ServerAddress { return h.t.addr }

// Addr returns the listener's actual address (useful with port 0).
func (h *HostTransport) Addr() net.Addr { return h.t.Addr() }

// Stats returns the transport's counters. Sent, Dropped, Failed,
// Received and ReceiveDropped count messages, of all groups; Frames
// counts batch frames, so Sent/Frames is the mean batch.
func (h *HostTransport) Stats() Stats { return h.t.Stats() }

// PeerVersions is Transport.PeerVersions: the protocol version of each
// peer host with a live outbound connection.
func (h *HostTransport) PeerVersions() map[raft.ServerAddress]uint8 { return h.t.PeerVersions() }

// Close is Transport.Close: it returns once every goroutine has exited.
func (h *HostTransport) Close() error { return h.t.Close() }

// writeGroupBatch is writeBatch in modeHost: it writes q and whatever else
// is queued in l, up to maxBatch messages, as batch frames (one, unless
// they exceed batchTarget or MaxFrameSize), and flushes. It returns the
// number of messages in the batch, all of which are lost on an error.
func (t *Transport) writeGroupBatch(c *outConn, enc *encoder, q queued, l *lane, log *slog.Logger) (int, error) {
	defer enc.done()
	const start = headerSize + batchCountSize
	b := append(enc.batch[:0], make([]byte, start)...)
	n, inFrame := 0, 0    // messages in the batch, and in the frame b
	frames, bytes := 0, 0 // frames written to c.bw, and their bytes
	endFrame := func() error {
		b[0] = c.version
		binary.BigEndian.PutUint32(b[1:], uint32(len(b)-headerSize))
		binary.BigEndian.PutUint32(b[headerSize:], uint32(inFrame))
		if err := c.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout)); err != nil {
			return err
		}
		if _, err := c.bw.Write(b); err != nil {
			return err
		}
		frames++
		bytes += len(b)
		b, inFrame = b[:start], 0
		return nil
	}
	for {
		body, err := enc.encode(q.m)
		item := batchLenSize + groupIDSize + len(body)
		if err == nil && batchCountSize+item > t.opts.MaxFrameSize {
			err = fmt.Errorf("%v message of %d bytes exceeds MaxFrameSize %d in a batch frame", q.m.Type, len(body), t.opts.MaxFrameSize)
		}
		if err != nil {
			count(&t.failed, l.m.failed, 1)
			log.Error("cannot send message", "group", uint64(q.g), "err", err)
		} else {
			if inFrame > 0 && (len(b)-headerSize+item > t.opts.MaxFrameSize || len(b)-headerSize >= batchTarget) {
				if err := endFrame(); err != nil {
					t.wrote(l, frames, bytes)
					enc.batch = b
					return n, err
				}
			}
			b = binary.BigEndian.AppendUint32(b, uint32(groupIDSize+len(body)))
			b = binary.BigEndian.AppendUint64(b, uint64(q.g))
			b = append(b, body...)
			n++
			inFrame++
		}
		if n < maxBatch {
			select {
			case q = <-l.queue:
				l.take(q)
				continue
			default:
			}
		}
		var err2 error
		if inFrame > 0 {
			err2 = endFrame()
		}
		enc.batch = b
		t.wrote(l, frames, bytes)
		if err2 != nil {
			return n, err2
		}
		if n == 0 {
			return 0, nil
		}
		if err := c.SetWriteDeadline(time.Now().Add(t.opts.WriteTimeout)); err != nil {
			return n, err
		}
		return n, c.bw.Flush()
	}
}

// checkBatch checks the structure of a batch frame's body: a count of at
// least one, then that many messages, each a length of at least
// groupIDSize+1, a group ID other than 0 and the rest of its length,
// and nothing after them. It does not decode the messages. Errors wrap
// errMalformed.
func checkBatch(body []byte) (int, error) {
	if len(body) < batchCountSize {
		return 0, fmt.Errorf("%w: batch of %d bytes has no message count", errMalformed, len(body))
	}
	n := binary.BigEndian.Uint32(body)
	rest := body[batchCountSize:]
	if n == 0 {
		return 0, fmt.Errorf("%w: empty batch", errMalformed)
	}
	if uint64(n) > uint64(len(rest)/minBatchItem) {
		return 0, fmt.Errorf("%w: batch counts %d messages in %d bytes", errMalformed, n, len(rest))
	}
	for i := range n {
		if len(rest) < batchLenSize {
			return 0, fmt.Errorf("%w: batch cut short at message %d of %d", errMalformed, i+1, n)
		}
		l := binary.BigEndian.Uint32(rest)
		rest = rest[batchLenSize:]
		if l <= groupIDSize || uint64(l) > uint64(len(rest)) {
			return 0, fmt.Errorf("%w: batch message %d of %d has length %d, %d bytes left", errMalformed, i+1, n, l, len(rest))
		}
		if binary.BigEndian.Uint64(rest) == 0 {
			return 0, fmt.Errorf("%w: batch message %d of %d has group ID 0", errMalformed, i+1, n)
		}
		rest = rest[l:]
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("%w: %d bytes after the %d messages of a batch", errMalformed, len(rest), n)
	}
	return int(n), nil
}

// batchItems calls f on each message of body, a batch that checkBatch
// accepted, as raft.DecodeGroupMessage decodes it, and stops at the first
// that does not decode (its error wraps errMalformed) or when f returns
// false.
func batchItems(body []byte, f func(raft.GroupMessage) bool) error {
	rest := body[batchCountSize:]
	for i := 0; len(rest) > 0; i++ {
		l := binary.BigEndian.Uint32(rest)
		gm, err := raft.DecodeGroupMessage(rest[batchLenSize : batchLenSize+l])
		if err != nil {
			return fmt.Errorf("%w: batch message %d: %w", errMalformed, i+1, err)
		}
		if !f(gm) {
			return nil
		}
		rest = rest[batchLenSize+l:]
	}
	return nil
}

// readBatch reads one batch frame and calls f on each of its messages, in
// order, as they decode: messages are decoded and handed over one at a
// time, so a frame of many small messages holds no more memory than one
// message beyond the frame. A frame whose structure is malformed (see
// checkBatch) yields no message; one whose message does not decode yields
// those before it, then the error. Errors wrapping errMalformed mean the
// frame is invalid; others are I/O errors. The messages share no memory
// with the frame buffer.
func (fr *frameReader) readBatch(f func(raft.GroupMessage)) error {
	body, err := fr.readFrame()
	if err != nil {
		return err
	}
	if _, err := checkBatch(body); err != nil {
		return err
	}
	return batchItems(body, func(gm raft.GroupMessage) bool { f(gm); return true })
}

// serveGroups reads batch frames from an accepted connection in modeHost
// until it fails, offering each message to the Consumer channel.
func (t *Transport) serveGroups(fr *frameReader, log *slog.Logger) {
	offer := func(gm raft.GroupMessage) {
		if t.ginbox.offer(gm, msgSize(gm.Msg)) {
			count(&t.received, t.m.received, 1)
		} else {
			count(&t.recvDropped, t.m.recvDropped, 1)
		}
	}
	for {
		if err := fr.readBatch(offer); err != nil {
			switch {
			case errors.Is(err, errMalformed):
				count(&t.malformed, t.m.malform, 1)
				log.Error("closing connection", "err", err)
			case t.ctx.Err() == nil && !errors.Is(err, io.EOF):
				log.Debug("connection ended", "err", err)
			}
			return
		}
	}
}
