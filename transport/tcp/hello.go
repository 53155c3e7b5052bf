package tcp

// The hello: how a dialed connection agrees on the protocol version its
// frames carry. The package doc's "Wire format" section is the
// specification; this file is the only code that reads or writes it.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/keelraft/raft"
)

const (
	helloSize = 8  // magic, min, max, extension length
	replySize = 10 // magic, status, version, min, max, extension length
	// maxHelloExt bounds the extension bytes a hello or reply may announce.
	// Extensions are read in a fixed buffer and discarded, so the bound is
	// about time on the wire, not memory.
	maxHelloExt = 1024

	replyAccepted = 0
	replyRefused  = 1 // no version in common
)

// The magics start with 0xFE, which is above any protocol version a frame
// can carry (New refuses ranges reaching it), so a pre-hello peer's frame,
// or a hello read as a frame, is told apart by its first byte. The last
// byte tells a hello from a reply.
var (
	helloMagic = [4]byte{0xFE, 'K', 'L', 'H'}
	replyMagic = [4]byte{0xFE, 'K', 'L', 'R'}
)

// versions is a range of protocol versions, both ends included.
type versions struct{ min, max uint8 }

func (v versions) String() string { return fmt.Sprintf("%d-%d", v.min, v.max) }

// valid reports whether v is a range a peer may announce.
func (v versions) valid() bool { return v.min >= 1 && v.min <= v.max && v.max < helloMagic[0] }

// negotiate returns the highest version in both a and b, or false when
// they share none.
func negotiate(a, b versions) (uint8, bool) {
	v := min(a.max, b.max)
	return v, v >= max(a.min, b.min)
}

// reply is the acceptor's answer to a hello: the version it chose, or a
// refusal, and the range it speaks, so the dialer can say why it was
// refused.
type reply struct {
	status  uint8
	version uint8 // meaningful only when status is replyAccepted
	versions
}

// appendHello appends the hello announcing v, with no extension.
func appendHello(b []byte, v versions) []byte {
	b = append(b, helloMagic[:]...)
	return append(b, v.min, v.max, 0, 0)
}

// appendReply appends rep, with no extension.
func appendReply(b []byte, rep reply) []byte {
	b = append(b, replyMagic[:]...)
	return append(b, rep.status, rep.version, rep.min, rep.max, 0, 0)
}

// readHello reads a hello from r and skips its extension. Errors wrapping
// errMalformed mean the bytes are not a hello, or announce an invalid
// range or too long an extension; others are I/O errors from r. Bytes that
// already differ from the magic are malformed even when r ends or times
// out before the whole hello arrives.
func readHello(r io.Reader) (versions, error) {
	var b [helloSize]byte
	if err := readFixed(r, b[:], helloMagic); err != nil {
		return versions{}, err
	}
	v := versions{b[4], b[5]}
	if !v.valid() {
		return versions{}, fmt.Errorf("%w: hello announces invalid version range %v", errMalformed, v)
	}
	return v, skipExt(r, b[6:8])
}

// readReply reads a reply from r and skips its extension. Errors are as
// readHello's; a reply accepting a version outside the range it announces
// is malformed. That the version is one the reader speaks is for the
// caller to check.
func readReply(r io.Reader) (reply, error) {
	var b [replySize]byte
	if err := readFixed(r, b[:], replyMagic); err != nil {
		return reply{}, err
	}
	rep := reply{status: b[4], version: b[5], versions: versions{b[6], b[7]}}
	switch {
	case !rep.valid():
		return reply{}, fmt.Errorf("%w: hello reply announces invalid version range %v", errMalformed, rep.versions)
	case rep.status == replyAccepted && (rep.version < rep.min || rep.version > rep.max):
		return reply{}, fmt.Errorf("%w: hello reply accepts version %d outside its range %v", errMalformed, rep.version, rep.versions)
	case rep.status != replyAccepted && rep.status != replyRefused:
		return reply{}, fmt.Errorf("%w: hello reply has unknown status %d", errMalformed, rep.status)
	}
	return rep, skipExt(r, b[8:10])
}

// readFixed fills b from r and checks that it starts with magic.
func readFixed(r io.Reader, b []byte, magic [4]byte) error {
	n, err := io.ReadFull(r, b)
	k := min(n, len(magic))
	if string(b[:k]) != string(magic[:k]) {
		return fmt.Errorf("%w: not a hello (starts % x)", errMalformed, b[:k])
	}
	return err
}

// skipExt discards the extension whose big-endian length is in l, after
// checking it against maxHelloExt.
func skipExt(r io.Reader, l []byte) error {
	n := int(l[0])<<8 | int(l[1])
	if n > maxHelloExt {
		return fmt.Errorf("%w: hello extension of %d bytes exceeds %d", errMalformed, n, maxHelloExt)
	}
	var buf [256]byte
	for n > 0 {
		k, err := io.ReadFull(r, buf[:min(n, len(buf))])
		n -= k
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// errRefused marks a hello that ended for want of a common version; such
// errors also wrap raft.ErrUnsupportedVersion.
var errRefused = errors.New("no protocol version in common")

// sayHello is the dialer's half: it sends t's range on c, a connection
// just dialed to addr, and returns the version the acceptor chose. Both
// the hello and the reply must complete within DialTimeout.
func (t *Transport) sayHello(c net.Conn, addr raft.ServerAddress) (uint8, error) {
	if err := c.SetDeadline(time.Now().Add(t.opts.DialTimeout)); err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	var b [helloSize]byte
	if _, err := c.Write(appendHello(b[:0], t.versions)); err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	rep, err := readReply(c)
	if err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	if rep.status == replyRefused {
		return 0, fmt.Errorf("tcp: hello to %s: %w: peer speaks protocol versions %v, this server %v: %w",
			addr, errRefused, rep.versions, t.versions, raft.ErrUnsupportedVersion)
	}
	if rep.version < t.versions.min || rep.version > t.versions.max {
		return 0, fmt.Errorf("tcp: hello to %s: %w: peer chose protocol version %d, this server speaks %v",
			addr, errMalformed, rep.version, t.versions)
	}
	// Frames set their own write deadlines; the watch goroutine's read
	// must not time out.
	if err := c.SetDeadline(time.Time{}); err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	return rep.version, nil
}

// answerHello is the acceptor's half: it reads the hello from r (c's
// reader, which frames are read through next), answers on c, and returns
// the version chosen. When the ranges share no version it sends a refusal
// and returns an error wrapping errRefused and raft.ErrUnsupportedVersion.
func (t *Transport) answerHello(c net.Conn, r io.Reader) (uint8, error) {
	remote := c.RemoteAddr()
	if err := c.SetDeadline(time.Now().Add(t.opts.DialTimeout)); err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: %w", remote, err)
	}
	peer, err := readHello(r)
	if err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: %w", remote, err)
	}
	v, ok := negotiate(t.versions, peer)
	rep := reply{status: replyAccepted, version: v, versions: t.versions}
	if !ok {
		rep.status, rep.version = replyRefused, 0
	}
	var b [replySize]byte
	if _, err := c.Write(appendReply(b[:0], rep)); err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: reply: %w", remote, err)
	}
	if !ok {
		return 0, fmt.Errorf("tcp: hello from %s: %w: peer speaks protocol versions %v, this server %v: %w",
			remote, errRefused, peer, t.versions, raft.ErrUnsupportedVersion)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: %w", remote, err)
	}
	return v, nil
}
