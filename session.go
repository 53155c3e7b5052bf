package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// Client sessions (Raft dissertation §6.3): the session table, the
// LogSession entry format and the session part of every snapshot. Pure:
// no clock, goroutines, I/O or global randomness (lint_test.go checks it),
// so that every server applying the same entries reaches the same table.
// The applier owns the table (apply.go); the public calls are in
// session_api.go; reading and writing the snapshot header in
// snapshot_header.go.
//
// The rules, applied in log order, with the log time as the only clock:
//
//   - log time is the highest timestamp of the LogSession entries applied
//     so far (each stamped with the leader's wall clock when it appended
//     it), so it never goes back, even under a new leader whose clock is
//     behind;
//   - a register entry at index i creates session i, with the TTL the
//     entry carries and last activity = log time;
//   - a session expires once log time - last activity > TTL; an expired,
//     closed or unknown session is refused with ErrSessionExpired, and an
//     expired one is then forgotten;
//   - a command (session, seq) on a live session counts as activity; then
//     seq > last applied seq: the FSM applies it, its response is cached
//     and last = seq; seq == last: the cached response, the FSM sees
//     nothing; seq < last: ErrSessionStale, the FSM sees nothing;
//   - a close entry removes a live session (ErrSessionExpired if none).

// LogSession entry format, big-endian, 34 bytes then the payload:
//
//	[0]      version (1)
//	[1]      operation: 1 register, 2 command, 3 close
//	[2:10]   timestamp: the leader's wall clock, Unix nanoseconds (< 2^63)
//	[10:18]  session ID: 0 for register, > 0 otherwise
//	[18:26]  sequence number: > 0 for command, 0 otherwise
//	[26:34]  TTL in nanoseconds: in (0, 2^63) for register, 0 otherwise
//	[34:]    command: the FSM's payload; register and close: nothing
const (
	sessionEntryVersion     = 1
	sessionEntryHeaderBytes = 34
	sessionTimeOffset       = 2
)

// sessionOp is what a LogSession entry does.
type sessionOp uint8

const (
	sessionRegister sessionOp = 1 + iota
	sessionCommand
	sessionClose
)

func (op sessionOp) String() string {
	switch op {
	case sessionRegister:
		return "register"
	case sessionCommand:
		return "command"
	case sessionClose:
		return "close"
	default:
		return fmt.Sprintf("sessionOp(%d)", uint8(op))
	}
}

// sessionEntry is a decoded LogSession entry.
type sessionEntry struct {
	op      sessionOp
	time    int64 // Unix nanoseconds; 0 until the leader stamps it
	session uint64
	seq     uint64
	ttl     int64  // nanoseconds
	payload []byte // shares the entry's Data
}

// encode returns the entry's Data; the payload is copied.
func (e *sessionEntry) encode() []byte {
	b := make([]byte, sessionEntryHeaderBytes+len(e.payload))
	b[0] = sessionEntryVersion
	b[1] = byte(e.op)
	binary.BigEndian.PutUint64(b[2:], uint64(e.time))
	binary.BigEndian.PutUint64(b[10:], e.session)
	binary.BigEndian.PutUint64(b[18:], e.seq)
	binary.BigEndian.PutUint64(b[26:], uint64(e.ttl))
	copy(b[sessionEntryHeaderBytes:], e.payload)
	return b
}

// stampSessionEntry sets the timestamp of an encoded entry: the leader's
// driver does it just before proposing, so the core needs no clock.
func stampSessionEntry(data []byte, unixNanos int64) {
	if len(data) >= sessionEntryHeaderBytes {
		binary.BigEndian.PutUint64(data[sessionTimeOffset:], uint64(max(unixNanos, 0)))
	}
}

// stampForwarded returns m with its session entries stamped with now: a
// leader gives proposals a follower forwarded its own clock, as it does
// its own (the follower's stamp is not the leader's log time). It copies
// what it changes, since the sender may share m's entries.
func stampForwarded(m *Message, now int64) *Message {
	out := m
	for i := range m.Entries {
		if m.Entries[i].Type != LogSession {
			continue
		}
		if out == m {
			c := *m
			c.Entries = slices.Clone(m.Entries)
			out = &c
		}
		d := slices.Clone(m.Entries[i].Data)
		stampSessionEntry(d, now)
		out.Entries[i].Data = d
	}
	return out
}

// decodeSessionEntry decodes and checks a LogSession entry's Data; every
// field must be what its operation allows.
func decodeSessionEntry(b []byte) (sessionEntry, error) {
	if len(b) < sessionEntryHeaderBytes {
		return sessionEntry{}, fmt.Errorf("session entry of %d bytes, shorter than its %d-byte header", len(b), sessionEntryHeaderBytes)
	}
	if b[0] != sessionEntryVersion {
		return sessionEntry{}, fmt.Errorf("session entry version %d, want %d", b[0], sessionEntryVersion)
	}
	e := sessionEntry{op: sessionOp(b[1]), session: binary.BigEndian.Uint64(b[10:]), seq: binary.BigEndian.Uint64(b[18:])}
	ts, ttl := binary.BigEndian.Uint64(b[2:]), binary.BigEndian.Uint64(b[26:])
	if ts > math.MaxInt64 {
		return sessionEntry{}, fmt.Errorf("session entry timestamp %d out of range", ts)
	}
	if ttl > math.MaxInt64 {
		return sessionEntry{}, fmt.Errorf("session entry TTL %d out of range", ttl)
	}
	e.time, e.ttl = int64(ts), int64(ttl)
	payload := b[sessionEntryHeaderBytes:]
	switch e.op {
	case sessionRegister:
		if e.session != 0 || e.seq != 0 || e.ttl <= 0 || len(payload) != 0 {
			return sessionEntry{}, fmt.Errorf("register entry with session %d, seq %d, TTL %d, %d payload bytes: want 0, 0, > 0, 0", e.session, e.seq, e.ttl, len(payload))
		}
	case sessionCommand:
		if e.session == 0 || e.seq == 0 || e.ttl != 0 {
			return sessionEntry{}, fmt.Errorf("command entry with session %d, seq %d, TTL %d: want > 0, > 0, 0", e.session, e.seq, e.ttl)
		}
		e.payload = payload
	case sessionClose:
		if e.session == 0 || e.seq != 0 || e.ttl != 0 || len(payload) != 0 {
			return sessionEntry{}, fmt.Errorf("close entry with session %d, seq %d, TTL %d, %d payload bytes: want > 0, 0, 0, 0", e.session, e.seq, e.ttl, len(payload))
		}
	default:
		return sessionEntry{}, fmt.Errorf("unknown session operation %d", b[1])
	}
	return e, nil
}

// sessionTable is the replicated state of every client session. The
// applier owns it; it changes only by begin/finish in log order, and by
// replacement from a snapshot.
type sessionTable struct {
	// logTime is the highest timestamp of the entries applied (Unix ns).
	logTime int64
	// sessions by ID (the index of the register entry). Invariant: for
	// each, lastActive <= logTime.
	sessions map[uint64]*clientSession
	// sweepAt is the size at which a register first sweeps out the
	// expired sessions, so that sessions nobody closes cost O(1)
	// amortised each.
	sweepAt int
	// bugs is set by the simulator only.
	bugs sessionBugs
}

// sessionBugs switches on session bugs, one per field, so that the
// simulator can prove its checkers catch them (sim_bugs_test.go). Like
// plantedBugs it is test-only: only the simulator sets it.
type sessionBugs struct {
	// ApplyRetries applies a retry of the last command again instead of
	// answering it from the cache.
	ApplyRetries bool
	// ApplyStale applies a command below the last one instead of refusing
	// it.
	ApplyStale bool
	// ForgetInSnapshot leaves the sessions out of snapshots.
	ForgetInSnapshot bool
}

// minSweepAt is the smallest table that gets swept.
const minSweepAt = 64

type clientSession struct {
	id         uint64
	ttl        int64 // nanoseconds of log time without activity before it expires
	lastActive int64 // log time of its register or latest command
	lastSeq    uint64
	resp       sessionResponse // the response to lastSeq
}

func (s *clientSession) expired(logTime int64) bool { return logTime-s.lastActive > s.ttl }

func newSessionTable() *sessionTable {
	return &sessionTable{sessions: map[uint64]*clientSession{}, sweepAt: minSweepAt}
}

// sessionStepKind is what the caller of begin does next.
type sessionStepKind uint8

const (
	stepDone   sessionStepKind = iota // the entry is done: result or err
	stepApply                         // the FSM applies cmd, finish caches its response
	stepCached                        // finish returns the cached response
)

// sessionStep is the table's decision on one entry.
type sessionStep struct {
	kind   sessionStepKind
	cmd    []byte // stepApply: the FSM's payload
	sess   *clientSession
	result any // stepDone: a register's session ID (uint64), else nil
	err    error
}

// begin applies the LogSession entry at index to the table and says what
// follows. For a batch, the caller may begin every entry, let the FSM
// apply the commands, then finish every step in the same (log) order: a
// cached response then reads what an earlier command of the same batch
// stored.
func (t *sessionTable) begin(index uint64, data []byte) sessionStep {
	e, err := decodeSessionEntry(data)
	if err != nil {
		// Validated when it entered the log; every server refuses alike.
		return sessionStep{err: fmt.Errorf("raft: session entry %d: %w", index, err)}
	}
	t.logTime = max(t.logTime, e.time)
	switch e.op {
	case sessionRegister:
		t.register(index, e.ttl)
		return sessionStep{result: index}
	case sessionClose:
		if t.live(e.session) == nil {
			return sessionStep{err: fmt.Errorf("%w: session %d", ErrSessionExpired, e.session)}
		}
		delete(t.sessions, e.session)
		return sessionStep{}
	}
	s := t.live(e.session)
	if s == nil {
		return sessionStep{err: fmt.Errorf("%w: session %d", ErrSessionExpired, e.session)}
	}
	s.lastActive = t.logTime
	switch {
	case e.seq > s.lastSeq || e.seq == s.lastSeq && t.bugs.ApplyRetries || e.seq < s.lastSeq && t.bugs.ApplyStale:
		s.lastSeq = max(s.lastSeq, e.seq)
		return sessionStep{kind: stepApply, cmd: e.payload, sess: s}
	case e.seq == s.lastSeq:
		return sessionStep{kind: stepCached, sess: s}
	default:
		return sessionStep{err: fmt.Errorf("%w: session %d command %d, after command %d", ErrSessionStale, e.session, e.seq, s.lastSeq)}
	}
}

// finish completes a step and returns what the client gets: for stepApply
// the FSM's response resp, kept for retries, in the form every later retry
// gets too (see newSessionResponse).
func (t *sessionTable) finish(st sessionStep, resp any) (any, error) {
	switch st.kind {
	case stepApply:
		st.sess.resp = newSessionResponse(resp)
		return st.sess.resp.value(), nil
	case stepCached:
		return st.sess.resp.value(), nil
	default:
		return st.result, st.err
	}
}

// live returns the session, or nil if it is unknown or expired (an
// expired one is forgotten).
func (t *sessionTable) live(id uint64) *clientSession {
	s := t.sessions[id]
	if s == nil {
		return nil
	}
	if s.expired(t.logTime) {
		delete(t.sessions, id)
		return nil
	}
	return s
}

func (t *sessionTable) register(id uint64, ttl int64) {
	if len(t.sessions) >= t.sweepAt {
		t.sweep()
		t.sweepAt = max(2*len(t.sessions), minSweepAt)
	}
	t.sessions[id] = &clientSession{id: id, ttl: ttl, lastActive: t.logTime}
}

// sweep forgets every expired session. Forgetting one changes nothing a
// client can see: expired and unknown sessions are refused alike.
func (t *sessionTable) sweep() {
	for id, s := range t.sessions {
		if s.expired(t.logTime) {
			delete(t.sessions, id)
		}
	}
}

// dropFrom forgets the sessions with an ID at or above index: a Restore at
// index installs a snapshot that may come from a longer log, and register
// entries from index on will reuse those IDs.
func (t *sessionTable) dropFrom(index uint64) {
	for id := range t.sessions {
		if id >= index {
			delete(t.sessions, id)
		}
	}
}

// liveIDs returns the IDs of the live sessions, in order.
func (t *sessionTable) liveIDs() []uint64 {
	ids := make([]uint64, 0, len(t.sessions))
	for id, s := range t.sessions {
		if !s.expired(t.logTime) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// sessionResponse is a response kept for retries. The FSM may return nil,
// a []byte, a string or an error for a session command; every ApplySession
// future for it — the first answer, a retry, a retry after the table was
// restored from a snapshot — gets the same value back: nil, a copy of the
// bytes (nil when empty), the string, or an error with the same message
// (errors.New). Anything else is kept as such an error, naming the type.
type sessionResponse struct {
	kind respKind
	data []byte
}

type respKind uint8

const (
	respNil respKind = iota
	respBytes
	respString
	respError
	numRespKinds
)

func newSessionResponse(v any) sessionResponse {
	switch v := v.(type) {
	case nil:
		return sessionResponse{}
	case []byte:
		return sessionResponse{kind: respBytes, data: cloneNonEmpty(v)}
	case string:
		return sessionResponse{kind: respString, data: cloneNonEmpty([]byte(v))}
	case error:
		return sessionResponse{kind: respError, data: cloneNonEmpty([]byte(v.Error()))}
	default:
		msg := fmt.Sprintf("raft: the FSM answered a session command with a value of type %T; a session keeps only nil, []byte, string or error responses", v)
		return sessionResponse{kind: respError, data: []byte(msg)}
	}
}

func cloneNonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

// value returns a fresh copy of the response: callers may keep or modify
// it.
func (r sessionResponse) value() any {
	switch r.kind {
	case respBytes:
		return cloneNonEmpty(r.data)
	case respString:
		return string(r.data)
	case respError:
		return errors.New(string(r.data))
	default:
		return nil
	}
}

// The snapshot header: keel writes it before the FSM's bytes in every
// snapshot, and reads it back before FSM.Restore sees the rest.
//
//	[0:8]    magic "keelsnap"
//	[8]      version (1)
//	[9:17]   body length in bytes, big-endian (<= maxSessionStateBytes)
//	[17:21]  CRC-32C of the body
//	body:    log time (8), session count (8), then per session in ID
//	         order: ID (8), TTL (8), last activity (8), last seq (8),
//	         response kind (1), response length (4), response bytes
const (
	snapshotHeaderVersion = 1
	snapshotPrefixBytes   = 21
	sessionRecordBytes    = 37
	// maxSessionStateBytes bounds the body: a length above it is damage.
	maxSessionStateBytes = 1 << 32
)

var snapshotMagic = [8]byte{'k', 'e', 'e', 'l', 's', 'n', 'a', 'p'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeSnapshotHeader returns the header of a snapshot taken with table
// t: its live sessions and log time.
func encodeSnapshotHeader(t *sessionTable) ([]byte, error) {
	ids := t.liveIDs()
	if t.bugs.ForgetInSnapshot {
		ids = nil
	}
	b := make([]byte, snapshotPrefixBytes, snapshotPrefixBytes+16+len(ids)*sessionRecordBytes)
	b = binary.BigEndian.AppendUint64(b, uint64(t.logTime))
	b = binary.BigEndian.AppendUint64(b, uint64(len(ids)))
	for _, id := range ids {
		s := t.sessions[id]
		if uint64(len(s.resp.data)) > math.MaxUint32 {
			return nil, fmt.Errorf("raft: session %d's cached response is %d bytes, more than a snapshot holds", id, len(s.resp.data))
		}
		b = binary.BigEndian.AppendUint64(b, id)
		b = binary.BigEndian.AppendUint64(b, uint64(s.ttl))
		b = binary.BigEndian.AppendUint64(b, uint64(s.lastActive))
		b = binary.BigEndian.AppendUint64(b, s.lastSeq)
		b = append(b, byte(s.resp.kind))
		b = binary.BigEndian.AppendUint32(b, uint32(len(s.resp.data)))
		b = append(b, s.resp.data...)
	}
	body := b[snapshotPrefixBytes:]
	if uint64(len(body)) > maxSessionStateBytes {
		return nil, fmt.Errorf("raft: the session table takes %d bytes, more than a snapshot holds (%d)", len(body), uint64(maxSessionStateBytes))
	}
	copy(b, snapshotMagic[:])
	b[8] = snapshotHeaderVersion
	binary.BigEndian.PutUint64(b[9:], uint64(len(body)))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(body, castagnoli))
	return b, nil
}

// parseSnapshotPrefix checks the header's fixed prefix and returns the
// body's length and checksum.
func parseSnapshotPrefix(p []byte) (bodyLen uint64, sum uint32, err error) {
	if len(p) != snapshotPrefixBytes {
		return 0, 0, fmt.Errorf("snapshot header prefix of %d bytes, want %d", len(p), snapshotPrefixBytes)
	}
	if err := checkSnapshotMagic(p); err != nil {
		return 0, 0, err
	}
	if p[8] > snapshotHeaderVersion {
		return 0, 0, fmt.Errorf("%w: snapshot header version %d, this build reads up to %d", ErrUnsupportedVersion, p[8], snapshotHeaderVersion)
	}
	if p[8] == 0 {
		return 0, 0, errors.New("snapshot header version 0")
	}
	bodyLen = binary.BigEndian.Uint64(p[9:])
	if bodyLen < 16 || bodyLen > maxSessionStateBytes {
		return 0, 0, fmt.Errorf("snapshot header claims a body of %d bytes, want 16 to %d", bodyLen, uint64(maxSessionStateBytes))
	}
	return bodyLen, binary.BigEndian.Uint32(p[17:]), nil
}

// checkSnapshotMagic reports whether p, the start of a snapshot (at most 8
// bytes are looked at), can be the start of keel's header.
func checkSnapshotMagic(p []byte) error {
	n := min(len(p), len(snapshotMagic))
	if string(p[:n]) != string(snapshotMagic[:n]) {
		return fmt.Errorf("not a keel snapshot: it starts with %q, not %q", p[:n], snapshotMagic[:n])
	}
	return nil
}

// decodeSessionState decodes a header's body into a table, checking its
// checksum and every field. Lengths are checked against the bytes there
// before anything is allocated for them.
func decodeSessionState(body []byte, sum uint32) (*sessionTable, error) {
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("snapshot header checksum %08x, want %08x", got, sum)
	}
	if len(body) < 16 {
		return nil, fmt.Errorf("snapshot header body of %d bytes, shorter than 16", len(body))
	}
	logTime, count := binary.BigEndian.Uint64(body), binary.BigEndian.Uint64(body[8:])
	if logTime > math.MaxInt64 {
		return nil, fmt.Errorf("snapshot header log time %d out of range", logTime)
	}
	rest := body[16:]
	if count > uint64(len(rest))/sessionRecordBytes {
		return nil, fmt.Errorf("snapshot header claims %d sessions in %d bytes", count, len(rest))
	}
	t := newSessionTable()
	t.logTime = int64(logTime)
	var prev uint64
	for i := uint64(0); i < count; i++ {
		s, n, err := decodeSessionRecord(rest, t.logTime)
		if err != nil {
			return nil, fmt.Errorf("snapshot header session %d of %d: %w", i+1, count, err)
		}
		if s.id <= prev {
			return nil, fmt.Errorf("snapshot header session %d of %d: ID %d after %d, want increasing", i+1, count, s.id, prev)
		}
		prev = s.id
		t.sessions[s.id] = s
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("snapshot header has %d bytes after its %d sessions", len(rest), count)
	}
	t.sweepAt = max(2*len(t.sessions), minSweepAt)
	return t, nil
}

// decodeSessionRecord decodes one session at the start of b and returns
// the bytes it took.
func decodeSessionRecord(b []byte, logTime int64) (*clientSession, int, error) {
	if len(b) < sessionRecordBytes {
		return nil, 0, fmt.Errorf("%d bytes, shorter than a session record", len(b))
	}
	s := &clientSession{id: binary.BigEndian.Uint64(b), lastSeq: binary.BigEndian.Uint64(b[24:])}
	ttl, last := binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
	kind, n := respKind(b[32]), binary.BigEndian.Uint32(b[33:])
	switch {
	case s.id == 0:
		return nil, 0, errors.New("session ID 0")
	case ttl == 0 || ttl > math.MaxInt64:
		return nil, 0, fmt.Errorf("session %d: TTL %d out of range", s.id, ttl)
	case last > uint64(logTime):
		return nil, 0, fmt.Errorf("session %d: last activity %d after the log time %d", s.id, last, logTime)
	case kind >= numRespKinds:
		return nil, 0, fmt.Errorf("session %d: unknown response kind %d", s.id, kind)
	case kind == respNil && n != 0:
		return nil, 0, fmt.Errorf("session %d: nil response of %d bytes", s.id, n)
	case uint64(n) > uint64(len(b)-sessionRecordBytes):
		return nil, 0, fmt.Errorf("session %d: response of %d bytes, %d left", s.id, n, len(b)-sessionRecordBytes)
	}
	s.ttl, s.lastActive = int64(ttl), int64(last)
	s.resp = sessionResponse{kind: kind, data: cloneNonEmpty(b[sessionRecordBytes : sessionRecordBytes+int(n)])}
	return s, sessionRecordBytes + int(n), nil
}
