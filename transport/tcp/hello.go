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

// mode is what a connection's frames carry: one group's messages, a frame
// each (a Transport), or batches of group-tagged messages (a
// HostTransport). Both sides of a hello must be in the same mode.
type mode uint8

const (
	modeSingle mode = 0 // a Transport; a hello without a mode field
	modeHost   mode = 1 // a HostTransport
)

func (m mode) String() string {
	switch m {
	case modeSingle:
		return "single-group"
	case modeHost:
		return "host"
	}
	return fmt.Sprintf("mode %d", uint8(m))
}

// extMode is the tag of the extension field that names the sender's mode.
// The extension is a sequence of fields, each a 1-byte tag, a 1-byte
// length and that many bytes; unknown tags are skipped and a field cut
// short by the end of the extension ends it, so the extension bytes of
// any release (or none) parse. A hello or reply without a mode field is
// in modeSingle, which is what every release before host mode sends.
const extMode = 'm'

// appendExt appends the 2-byte extension length and the extension that
// announces m: none for modeSingle, so a Transport's hello is byte for
// byte what it was before modes existed.
func appendExt(b []byte, m mode) []byte {
	if m == modeSingle {
		return append(b, 0, 0)
	}
	return append(b, 0, 3, extMode, 1, byte(m))
}

// reply is the acceptor's answer to a hello: the version it chose, or a
// refusal, and the range it speaks, so the dialer can say why it was
// refused, and the mode it is in.
type reply struct {
	status  uint8
	version uint8 // meaningful only when status is replyAccepted
	versions
	mode mode
}

// appendHello appends the hello announcing v in modeSingle, with no
// extension.
func appendHello(b []byte, v versions) []byte { return appendHelloMode(b, v, modeSingle) }

// appendHelloMode appends the hello announcing v and m.
func appendHelloMode(b []byte, v versions, m mode) []byte {
	b = append(b, helloMagic[:]...)
	return appendExt(append(b, v.min, v.max), m)
}

// appendReply appends rep, announcing rep.mode.
func appendReply(b []byte, rep reply) []byte {
	b = append(b, replyMagic[:]...)
	return appendExt(append(b, rep.status, rep.version, rep.min, rep.max), rep.mode)
}

// readHello reads a hello from r and its extension. Errors wrapping
// errMalformed mean the bytes are not a hello, or announce an invalid
// range or too long an extension; others are I/O errors from r. Bytes that
// already differ from the magic are malformed even when r ends or times
// out before the whole hello arrives.
func readHello(r io.Reader) (versions, mode, error) {
	var b [helloSize]byte
	if err := readFixed(r, b[:], helloMagic); err != nil {
		return versions{}, 0, err
	}
	v := versions{b[4], b[5]}
	if !v.valid() {
		return versions{}, 0, fmt.Errorf("%w: hello announces invalid version range %v", errMalformed, v)
	}
	m, err := readExt(r, b[6:8])
	return v, m, err
}

// readReply reads a reply from r and its extension. Errors are as
// readHello's; a reply accepting a version outside the range it announces
// is malformed. That the version and mode are ones the reader speaks is
// for the caller to check.
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
	m, err := readExt(r, b[8:10])
	if err != nil {
		return reply{}, err
	}
	rep.mode = m
	return rep, nil
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

// readExt reads the extension whose big-endian length is in l, after
// checking it against maxHelloExt, and returns the mode it names
// (modeSingle when it names none). See extMode for the format.
func readExt(r io.Reader, l []byte) (mode, error) {
	n := int(l[0])<<8 | int(l[1])
	if n > maxHelloExt {
		return 0, fmt.Errorf("%w: hello extension of %d bytes exceeds %d", errMalformed, n, maxHelloExt)
	}
	if n == 0 {
		return modeSingle, nil
	}
	var buf [maxHelloExt]byte
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return parseExt(buf[:n]), nil
}

// parseExt returns the mode ext names, modeSingle when none.
func parseExt(ext []byte) mode {
	m := modeSingle
	for len(ext) >= 2 {
		tag, n := ext[0], int(ext[1])
		if len(ext) < 2+n {
			break
		}
		if tag == extMode && n >= 1 {
			m = mode(ext[2])
		}
		ext = ext[2+n:]
	}
	return m
}

// errRefused marks a hello that ended for want of a common version; such
// errors also wrap raft.ErrUnsupportedVersion.
var errRefused = errors.New("no protocol version in common")

// errModeMismatch marks a hello refused because the two sides are in
// different modes (a Transport and a HostTransport); such errors also wrap
// raft.ErrUnsupportedVersion.
var errModeMismatch = errors.New("mode mismatch: single-group and host transports do not talk")

// refusedInHello reports whether err ended a hello in a refusal, for want
// of a common version or mode: what Stats.VersionRefused counts.
func refusedInHello(err error) bool {
	return errors.Is(err, errRefused) || errors.Is(err, errModeMismatch)
}

// sayHello is the dialer's half: it sends t's range and mode on c, a
// connection just dialed to addr, and returns the version the acceptor
// chose. Both the hello and the reply must complete within DialTimeout. A
// reply in another mode than t's is a refusal (errModeMismatch), even one
// that accepts.
func (t *Transport) sayHello(c net.Conn, addr raft.ServerAddress) (uint8, error) {
	if err := c.SetDeadline(time.Now().Add(t.opts.DialTimeout)); err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	var b [helloSize + 3]byte
	if _, err := c.Write(appendHelloMode(b[:0], t.versions, t.mode)); err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	rep, err := readReply(c)
	if err != nil {
		return 0, fmt.Errorf("tcp: hello to %s: %w", addr, err)
	}
	if rep.mode != t.mode {
		// Whether the peer refused (this build) or accepted (a release
		// before modes, which ignores the mode field): nothing is sent.
		return 0, fmt.Errorf("tcp: hello to %s: %w: peer is a %v transport speaking protocol versions %v, this server a %v transport speaking %v: %w",
			addr, errModeMismatch, rep.mode, rep.versions, t.mode, t.versions, raft.ErrUnsupportedVersion)
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
// the version chosen. When the ranges share no version, or the hello is in
// another mode than t, it sends a refusal and returns an error wrapping
// errRefused (no version) or errModeMismatch (another mode), and
// raft.ErrUnsupportedVersion.
func (t *Transport) answerHello(c net.Conn, r io.Reader) (uint8, error) {
	remote := c.RemoteAddr()
	if err := c.SetDeadline(time.Now().Add(t.opts.DialTimeout)); err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: %w", remote, err)
	}
	peer, pm, err := readHello(r)
	if err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: %w", remote, err)
	}
	v, ok := negotiate(t.versions, peer)
	sameMode := pm == t.mode
	rep := reply{status: replyAccepted, version: v, versions: t.versions, mode: t.mode}
	if !ok || !sameMode {
		rep.status, rep.version = replyRefused, 0
	}
	var b [replySize + 3]byte
	if _, err := c.Write(appendReply(b[:0], rep)); err != nil {
		return 0, fmt.Errorf("tcp: hello from %s: reply: %w", remote, err)
	}
	if !sameMode {
		return 0, fmt.Errorf("tcp: hello from %s: %w: peer is a %v transport speaking protocol versions %v, this server a %v transport speaking %v: %w",
			remote, errModeMismatch, pm, peer, t.mode, t.versions, raft.ErrUnsupportedVersion)
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
