package raft

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// Unit tests of the session table (session.go): each rule, expiry
// determinism, log time, the snapshot header, the entry format.

func regData(ts, ttl int64) []byte {
	e := sessionEntry{op: sessionRegister, time: ts, ttl: ttl}
	return e.encode()
}

func cmdData(ts int64, session, seq uint64, cmd string) []byte {
	e := sessionEntry{op: sessionCommand, time: ts, session: session, seq: seq, payload: []byte(cmd)}
	return e.encode()
}

func closeData(ts int64, session uint64) []byte {
	e := sessionEntry{op: sessionClose, time: ts, session: session}
	return e.encode()
}

// tableRunner applies session entries to a table one at a time, as the
// simulator does, with an FSM that records commands and answers
// "<n>:<cmd>", n counting the commands it applied.
type tableRunner struct {
	t       *sessionTable
	index   uint64
	applied []string
}

func newTableRunner() *tableRunner { return &tableRunner{t: newSessionTable()} }

func (r *tableRunner) apply(data []byte) (any, error) {
	r.index++
	st := r.t.begin(r.index, data)
	var resp any
	if st.kind == stepApply {
		r.applied = append(r.applied, string(st.cmd))
		resp = fmt.Sprintf("%d:%s", len(r.applied), st.cmd)
	}
	return r.t.finish(st, resp)
}

func (r *tableRunner) register(t testing.TB, ts, ttl int64) uint64 {
	t.Helper()
	resp, err := r.apply(regData(ts, ttl))
	require.NoError(t, err)
	id, ok := resp.(uint64)
	require.True(t, ok, "a register answers the session ID, got %T", resp)
	require.Equal(t, r.index, id, "the session ID is the register entry's index")
	return id
}

// Dissertation §6.3: a command is applied once per sequence number; a
// retry of the last one gets the cached response without the FSM seeing
// it; an older one is refused.
func TestSessionSequenceRules(t *testing.T) {
	r := newTableRunner()
	s := r.register(t, 100, 1000)

	resp, err := r.apply(cmdData(101, s, 1, "a"))
	require.NoError(t, err)
	require.Equal(t, "1:a", resp, "seq > last: applied")

	resp, err = r.apply(cmdData(102, s, 1, "a"))
	require.NoError(t, err)
	require.Equal(t, "1:a", resp, "seq == last: the cached response")
	require.Equal(t, []string{"a"}, r.applied, "seq == last: the FSM does not see it")

	resp, err = r.apply(cmdData(103, s, 3, "b"))
	require.NoError(t, err)
	require.Equal(t, "2:b", resp, "seq may skip numbers")

	_, err = r.apply(cmdData(104, s, 2, "c"))
	require.ErrorIs(t, err, ErrSessionStale, "seq < last")
	_, err = r.apply(cmdData(104, s, 1, "a"))
	require.ErrorIs(t, err, ErrSessionStale, "seq < last, even a retry of an applied one")
	require.Equal(t, []string{"a", "b"}, r.applied, "stale commands are not applied")

	resp, err = r.apply(cmdData(105, s, 3, "b"))
	require.NoError(t, err)
	require.Equal(t, "2:b", resp, "the cache holds the last applied command's response")
}

// Commands in an unknown or closed session are refused with
// ErrSessionExpired and never applied; closing twice is refused too.
func TestSessionUnknownAndClosed(t *testing.T) {
	r := newTableRunner()
	s := r.register(t, 100, 1000)
	_, err := r.apply(cmdData(101, s+7, 1, "x"))
	require.ErrorIs(t, err, ErrSessionExpired, "unknown session")

	_, err = r.apply(cmdData(101, s, 1, "a"))
	require.NoError(t, err)
	_, err = r.apply(closeData(102, s))
	require.NoError(t, err)
	_, err = r.apply(cmdData(103, s, 1, "a"))
	require.ErrorIs(t, err, ErrSessionExpired, "a retry after close")
	_, err = r.apply(cmdData(103, s, 2, "b"))
	require.ErrorIs(t, err, ErrSessionExpired, "a new command after close")
	_, err = r.apply(closeData(104, s))
	require.ErrorIs(t, err, ErrSessionExpired, "closing a closed session")
	require.Equal(t, []string{"a"}, r.applied)
}

// A session expires when log time passes its last activity plus its TTL:
// at exactly last+TTL it lives, one nanosecond later it is gone for good.
// Every command counts as activity.
func TestSessionExpiry(t *testing.T) {
	r := newTableRunner()
	s := r.register(t, 1000, 50)
	_, err := r.apply(cmdData(1050, s, 1, "a"))
	require.NoError(t, err, "at last activity + TTL the session lives")
	_, err = r.apply(cmdData(1100, s, 1, "a"))
	require.NoError(t, err, "the command at 1050 was activity: live until 1100")
	_, err = r.apply(cmdData(1151, s, 2, "b"))
	require.ErrorIs(t, err, ErrSessionExpired, "log time passed 1100 + 50")
	require.Equal(t, []string{"a"}, r.applied)
	require.Empty(t, r.t.sessions, "an expired session is forgotten")

	// Another session's entries move log time too.
	s1 := r.register(t, 2000, 10)
	s2 := r.register(t, 2005, 1000)
	_, err = r.apply(cmdData(2011, s2, 1, "c"))
	require.NoError(t, err)
	_, err = r.apply(cmdData(2011, s1, 1, "d"))
	require.ErrorIs(t, err, ErrSessionExpired, "s1 expired at log time 2011 whoever moved it")
	_, err = r.apply(closeData(2011, s1))
	require.ErrorIs(t, err, ErrSessionExpired)
}

// Log time is the highest timestamp applied: a leader whose clock is
// behind neither brings it back nor revives a session.
func TestSessionLogTimeMonotonic(t *testing.T) {
	r := newTableRunner()
	s := r.register(t, 5000, 100)
	_, err := r.apply(cmdData(5200, s, 1, "a")) // expires s: 5200-5000 > 100
	require.ErrorIs(t, err, ErrSessionExpired)
	s2 := r.register(t, 10, 100) // a new leader's clock is far behind
	require.Equal(t, int64(5200), r.t.logTime, "log time never goes back")
	_, err = r.apply(cmdData(20, s, 1, "a"))
	require.ErrorIs(t, err, ErrSessionExpired, "an expired session stays expired")
	_, err = r.apply(cmdData(20, s2, 1, "b"))
	require.NoError(t, err, "s2 started at log time 5200, not 10")
	_, err = r.apply(cmdData(5301, s2, 2, "c"))
	require.ErrorIs(t, err, ErrSessionExpired, "s2 expires 100 after log time 5200 (activity at 5200)")

	// An unstamped entry (time 0) does not move log time.
	r2 := newTableRunner()
	r2.register(t, 700, 5)
	r2.apply(cmdData(0, 9, 1, "x"))
	require.Equal(t, int64(700), r2.t.logTime)
}

// Two tables fed the same entries agree after every entry, in what they
// answer and in their encoded state, whatever the timestamps do; a third
// restored from the first's snapshot half-way agrees too.
func TestSessionTablesAgree(t *testing.T) {
	outcomes := map[string]int{}
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		entries := randomSessionEntries(rng, 400)
		a, b := newTableRunner(), newTableRunner()
		var c *tableRunner
		for i, data := range entries {
			before := len(a.applied)
			ra, ea := a.apply(data)
			rb, eb := b.apply(data)
			outcomes[outcome(ra, ea, len(a.applied) > before)]++
			require.Equal(t, ra, rb, "seed %d entry %d", seed, i)
			require.Equal(t, fmt.Sprint(ea), fmt.Sprint(eb), "seed %d entry %d", seed, i)
			if c != nil {
				rc, ec := c.apply(data)
				require.Equal(t, ra, rc, "seed %d entry %d, restored table", seed, i)
				require.Equal(t, fmt.Sprint(ea), fmt.Sprint(ec), "seed %d entry %d, restored table", seed, i)
			}
			ha, hb := mustHeader(t, a.t), mustHeader(t, b.t)
			require.Equal(t, ha, hb, "seed %d entry %d: the tables differ", seed, i)
			if i == len(entries)/2 {
				c = &tableRunner{t: roundTrip(t, a.t), index: a.index, applied: append([]string(nil), a.applied...)}
			}
			if c != nil {
				require.Equal(t, ha, mustHeader(t, c.t), "seed %d entry %d: the restored table differs", seed, i)
			}
		}
		require.Equal(t, a.applied, b.applied)
	}
	for _, o := range []string{"registered", "applied", "cached", "stale", "expired", "closed"} {
		require.Positive(t, outcomes[o], "no entry was %s: %v", o, outcomes)
	}
}

func outcome(resp any, err error, applied bool) string {
	switch {
	case applied:
		return "applied"
	case errors.Is(err, ErrSessionStale):
		return "stale"
	case errors.Is(err, ErrSessionExpired):
		return "expired"
	case err != nil:
		return err.Error()
	}
	switch resp.(type) {
	case uint64:
		return "registered"
	case nil:
		return "closed"
	}
	return "cached"
}

// randomSessionEntries draws a stream of registers, commands (new,
// retried, stale, in unknown sessions) and closes, with timestamps from
// leaders whose clocks disagree.
func randomSessionEntries(rng *rand.Rand, n int) [][]byte {
	var out [][]byte
	var ids []uint64
	last := map[uint64]uint64{}
	now := int64(1_000_000)
	for i := 0; i < n; i++ {
		now += rng.Int64N(40)
		ts := max(now+rng.Int64N(200)-100, 0) // clock skew
		index := uint64(i + 1)
		switch k := rng.IntN(10); {
		case k == 0 || len(ids) == 0:
			out = append(out, regData(ts, 20+rng.Int64N(300)))
			ids = append(ids, index)
		case k == 1:
			out = append(out, closeData(ts, ids[rng.IntN(len(ids))]))
		default:
			s := ids[rng.IntN(len(ids))]
			if rng.IntN(20) == 0 {
				s = index + 3 // unknown
			}
			seq := last[s] + 1
			switch rng.IntN(4) {
			case 0:
				seq = max(last[s], 1) // a retry
			case 1:
				seq = uint64(rng.IntN(int(last[s]) + 2)) // perhaps stale
				seq = max(seq, 1)
			}
			last[s] = max(last[s], seq)
			out = append(out, cmdData(ts, s, seq, fmt.Sprintf("c%d", i)))
		}
	}
	return out
}

func mustHeader(t *testing.T, tb *sessionTable) []byte {
	t.Helper()
	b, err := encodeSnapshotHeader(tb)
	require.NoError(t, err)
	return b
}

// roundTrip encodes a table into a snapshot header and reads it back.
func roundTrip(t *testing.T, tb *sessionTable) *sessionTable {
	t.Helper()
	hdr := mustHeader(t, tb)
	got, err := readSnapshotHeader(bytes.NewReader(append(hdr, "fsm"...)))
	require.NoError(t, err)
	return got
}

// The snapshot header keeps log time, every live session and its cached
// response; expired sessions are left out; the reader stops at the FSM's
// first byte.
func TestSessionSnapshotRoundTrip(t *testing.T) {
	r := newTableRunner()
	live := r.register(t, 1000, 1_000_000)
	short := r.register(t, 1000, 10)
	_, err := r.apply(cmdData(1001, live, 4, "a"))
	require.NoError(t, err)
	empty := r.register(t, 1020, 500) // no command yet; short expires at 1020
	hdr := mustHeader(t, r.t)

	rd := bytes.NewReader(append(hdr, "FSM bytes"...))
	got, err := readSnapshotHeader(rd)
	require.NoError(t, err)
	rest := make([]byte, 100)
	n, _ := rd.Read(rest)
	require.Equal(t, "FSM bytes", string(rest[:n]), "the FSM gets exactly what follows the header")
	require.Equal(t, int64(1020), got.logTime)
	require.Len(t, got.sessions, 2, "the expired session is left out")
	require.NotContains(t, got.sessions, short)
	require.Equal(t, *r.t.sessions[live], *got.sessions[live])
	require.Equal(t, *r.t.sessions[empty], *got.sessions[empty])

	// The restored table answers a retry as the original does.
	r2 := &tableRunner{t: got, index: r.index}
	want, err := r.apply(cmdData(1030, live, 4, "a"))
	require.NoError(t, err)
	resp, err := r2.apply(cmdData(1030, live, 4, "a"))
	require.NoError(t, err)
	require.Equal(t, want, resp)
	require.Empty(t, r2.applied)
}

// Responses a session keeps: each kind comes back equal from the first
// answer, a retry, and a retry after a snapshot round trip.
func TestSessionResponses(t *testing.T) {
	for name, tc := range map[string]struct{ fsm, want any }{
		"nil":         {nil, nil},
		"bytes":       {[]byte("v"), []byte("v")},
		"empty bytes": {[]byte{}, []byte(nil)},
		"string":      {"v", "v"},
		"empty":       {"", ""},
		"error":       {errors.New("no such key"), errors.New("no such key")},
		"other type":  {42, errors.New("raft: the FSM answered a session command with a value of type int; a session keeps only nil, []byte, string or error responses")},
	} {
		t.Run(name, func(t *testing.T) {
			tb := newSessionTable()
			tb.begin(1, regData(10, 100))
			first, err := tb.finish(tb.begin(2, cmdData(11, 1, 1, "c")), tc.fsm)
			require.NoError(t, err)
			require.Equal(t, tc.want, first)
			retry, err := tb.finish(tb.begin(3, cmdData(12, 1, 1, "c")), "not asked")
			require.NoError(t, err)
			require.Equal(t, tc.want, retry)
			restored := roundTrip(t, tb)
			after, err := restored.finish(restored.begin(4, cmdData(13, 1, 1, "c")), "not asked")
			require.NoError(t, err)
			require.Equal(t, tc.want, after)
			require.Equal(t, fmt.Sprintf("%T", tc.want), fmt.Sprintf("%T", after))
		})
	}
	// A caller modifying the bytes it got does not change the cache.
	tb := newSessionTable()
	tb.begin(1, regData(10, 100))
	first, _ := tb.finish(tb.begin(2, cmdData(11, 1, 1, "c")), []byte("abc"))
	first.([]byte)[0] = 'X'
	retry, _ := tb.finish(tb.begin(3, cmdData(12, 1, 1, "c")), nil)
	require.Equal(t, []byte("abc"), retry)
}

// Sessions nobody closes are swept out as registers come, so an
// abandoned session costs memory only until it expires.
func TestSessionSweep(t *testing.T) {
	r := newTableRunner()
	for i := int64(0); i < 10_000; i++ {
		r.register(t, i*10, 100)
		require.LessOrEqual(t, len(r.t.sessions), 2*minSweepAt+11, "after %d registers", i+1)
	}
}

// A batch's session steps, finished in log order after one FSM call: a
// retry in the same batch gets the response of the command before it.
func TestSessionBatchTwoPass(t *testing.T) {
	fsm := &recordingBatchFSM{}
	a := newApplier(fsm, 0, newSessionTable(), func() {})
	a.sessions.begin(1, regData(10, 1000))
	entries := []Log{
		{Index: 2, Term: 1, Type: LogSession, Data: cmdData(11, 1, 1, "a")},
		{Index: 3, Term: 1, Type: LogCommand, Data: []byte("plain")},
		{Index: 4, Term: 1, Type: LogSession, Data: cmdData(12, 1, 1, "a")},
		{Index: 5, Term: 1, Type: LogSession, Data: cmdData(13, 1, 2, "b")},
		{Index: 6, Term: 1, Type: LogSession, Data: cmdData(14, 1, 1, "a")},
		{Index: 7, Term: 1, Type: LogSession, Data: closeData(15, 1)},
		{Index: 8, Term: 1, Type: LogSession, Data: cmdData(16, 1, 2, "b")},
	}
	res := a.applyEntries(entries)
	require.Equal(t, 1, fsm.calls, "one ApplyBatch call")
	require.Equal(t, []string{"2:a", "3:plain", "5:b"}, fsm.got, "the FSM sees each command once, as a LogCommand at its index")
	require.Equal(t, "2:a", res[0].resp)
	require.Equal(t, "3:plain", res[1].resp)
	require.Equal(t, "2:a", res[2].resp, "a retry in the same batch")
	require.Equal(t, "5:b", res[3].resp)
	require.ErrorIs(t, res[4].err, ErrSessionStale)
	require.NoError(t, res[5].err)
	require.ErrorIs(t, res[6].err, ErrSessionExpired, "after close, in the same batch")
}

type recordingBatchFSM struct {
	calls int
	got   []string
}

func (f *recordingBatchFSM) Apply(l *Log) any { panic("ApplyBatch expected") }
func (f *recordingBatchFSM) ApplyBatch(ls []*Log) []any {
	f.calls++
	out := make([]any, len(ls))
	for i, l := range ls {
		if l.Type != LogCommand {
			panic("the FSM got a non-command entry")
		}
		s := fmt.Sprintf("%d:%s", l.Index, l.Data)
		f.got = append(f.got, s)
		out[i] = s
	}
	return out
}
func (f *recordingBatchFSM) Snapshot() (FSMSnapshot, error) { return nil, errors.New("no") }
func (f *recordingBatchFSM) Restore(io.ReadCloser) error    { return nil }

func crc32Sum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Entry validation: well-formed entries of each operation pass, and every
// malformed one is refused with an error (validateEntry is what loadLog
// and the wire decoder call).
func TestSessionEntryValidation(t *testing.T) {
	good := [][]byte{regData(5, 1), cmdData(5, 3, 1, ""), cmdData(5, 3, 9, "payload"), closeData(0, 3)}
	for _, d := range good {
		require.NoError(t, validateEntry(&Log{Index: 9, Type: LogSession, Data: d}))
		e, err := decodeSessionEntry(d)
		require.NoError(t, err)
		require.Equal(t, d, e.encode(), "round trip")
	}
	patch := func(d []byte, at int, v ...byte) []byte {
		d = bytes.Clone(d)
		copy(d[at:], v)
		return d
	}
	neg := []byte{0x80, 0, 0, 0, 0, 0, 0, 0}
	bad := map[string][]byte{
		"empty":                 nil,
		"short header":          regData(5, 1)[:33],
		"version 0":             patch(regData(5, 1), 0, 0),
		"version 2":             patch(regData(5, 1), 0, 2),
		"operation 0":           patch(regData(5, 1), 1, 0),
		"operation 4":           patch(regData(5, 1), 1, 4),
		"negative timestamp":    patch(regData(5, 1), 2, neg...),
		"register with session": patch(regData(5, 1), 10+7, 1),
		"register with seq":     patch(regData(5, 1), 18+7, 1),
		"register TTL 0":        regData(5, 0),
		"register negative TTL": patch(regData(5, 1), 26, neg...),
		"register payload":      append(regData(5, 1), 'x'),
		"command session 0":     cmdData(5, 0, 1, "x"),
		"command seq 0":         cmdData(5, 1, 0, "x"),
		"command with TTL":      patch(cmdData(5, 1, 1, "x"), 26+7, 1),
		"close session 0":       closeData(5, 0),
		"close with seq":        patch(closeData(5, 1), 18+7, 1),
		"close payload":         append(closeData(5, 1), 'x'),
	}
	for name, d := range bad {
		require.Error(t, validateEntry(&Log{Index: 9, Type: LogSession, Data: d}), name)
	}
	// And the table refuses one that got past, alike on every server.
	st := newSessionTable().begin(4, []byte("junk"))
	require.Equal(t, stepDone, st.kind)
	require.ErrorContains(t, st.err, "session entry 4")
}

// A damaged header is a clear error, never a panic: every truncation and
// every single-bit flip of a real header is refused (the checksum covers
// the body, the prefix checks cover the rest).
func TestSnapshotHeaderDamage(t *testing.T) {
	r := newTableRunner()
	s := r.register(t, 100, 1000)
	r.apply(cmdData(101, s, 1, "a"))
	r.register(t, 102, 1000)
	hdr := mustHeader(t, r.t)
	for n := 0; n < len(hdr); n++ {
		_, err := readSnapshotHeader(bytes.NewReader(hdr[:n]))
		require.ErrorIs(t, err, ErrSnapshotCorrupt, "truncated to %d bytes", n)
	}
	for i := 0; i < len(hdr)*8; i++ {
		d := bytes.Clone(hdr)
		d[i/8] ^= 1 << (i % 8)
		_, err := readSnapshotHeader(bytes.NewReader(d))
		if i/8 == 8 && d[8] > snapshotHeaderVersion {
			// The version byte is outside the checksum: a flip that reads
			// as a newer version is refused as one (the store's own
			// checksum is what tells bit rot there).
			require.ErrorIs(t, err, ErrUnsupportedVersion, "bit %d flipped", i)
			continue
		}
		require.ErrorIs(t, err, ErrSnapshotCorrupt, "bit %d flipped", i)
	}
	_, err := readSnapshotHeader(bytes.NewReader([]byte("gob or json, not keel's")))
	require.ErrorContains(t, err, "not a keel snapshot")
}

// Length fields cannot make the reader allocate what is not there: a
// header claiming 64 MiB, or a body claiming 2^60 sessions or a 4 GiB
// response, costs no more than the bytes that arrive.
func TestSnapshotHeaderBoundedAllocation(t *testing.T) {
	r := newTableRunner()
	s := r.register(t, 100, 1000)
	r.apply(cmdData(101, s, 1, "a"))
	hdr := mustHeader(t, r.t)

	huge := bytes.Clone(hdr[:snapshotPrefixBytes])
	binary.BigEndian.PutUint64(huge[9:], 64<<20) // within the bound, far beyond what follows
	sessions := bytes.Clone(hdr)
	copy(sessions[snapshotPrefixBytes+8:], []byte{0x10, 0, 0, 0, 0, 0, 0, 0})
	resp := bytes.Clone(hdr)
	copy(resp[snapshotPrefixBytes+16+33:], []byte{0xff, 0xff, 0xff, 0xff})
	for name, d := range map[string][]byte{"body length": append(huge, hdr[snapshotPrefixBytes:]...), "session count": sessions, "response length": resp} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := readSnapshotHeader(bytes.NewReader(d))
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, ErrSnapshotCorrupt, name)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "%s: allocated for a length field", name)
	}
	// The checksum passes, so the field checks themselves must refuse.
	for name, body := range map[string][]byte{
		"session count": func() []byte { b := bytes.Clone(hdr[snapshotPrefixBytes:]); b[8] = 0x10; return b }(),
		"response length": func() []byte {
			b := bytes.Clone(hdr[snapshotPrefixBytes:])
			copy(b[16+33:], []byte{0xff, 0xff, 0xff, 0xff})
			return b
		}(),
		"log time": func() []byte { b := bytes.Clone(hdr[snapshotPrefixBytes:]); b[0] = 0x80; return b }(),
	} {
		_, err := decodeSessionState(body, crc32Sum(body))
		require.Error(t, err, name)
	}
}

// FuzzDecodeSessionEntry: any bytes give an entry or an error, never a
// panic; what decodes encodes back to the same bytes.
func FuzzDecodeSessionEntry(f *testing.F) {
	f.Add(regData(1, 1))
	f.Add(cmdData(1<<40, 7, 3, "put k v"))
	f.Add(closeData(0, 7))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeSessionEntry(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.encode(), b) {
			t.Fatalf("round trip changed %x into %x", b, e.encode())
		}
		if validateEntry(&Log{Index: 1, Type: LogSession, Data: b}) != nil {
			t.Fatal("decoded but not valid")
		}
	})
}

// FuzzReadSnapshotHeader: any bytes give a table or an error, never a
// panic; a table read encodes and reads back the same.
func FuzzReadSnapshotHeader(f *testing.F) {
	r := newTableRunner()
	s := r.register(f, 100, 1000)
	r.apply(cmdData(101, s, 1, "a"))
	r.register(f, 102, 1000)
	hdr, _ := encodeSnapshotHeader(r.t)
	f.Add(hdr)
	empty, _ := encodeSnapshotHeader(newSessionTable())
	f.Add(empty)
	f.Add(hdr[:30])
	f.Add([]byte("keelsnap"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := readSnapshotHeader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrSnapshotCorrupt) {
				t.Fatalf("error %v is not an ErrSnapshotCorrupt", err)
			}
			return
		}
		again, err := encodeSnapshotHeader(tb)
		if err != nil {
			t.Fatal(err)
		}
		tb2, err := readSnapshotHeader(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		again2, _ := encodeSnapshotHeader(tb2)
		if !bytes.Equal(again, again2) {
			t.Fatal("a header read back differs")
		}
		if tb.logTime < 0 {
			t.Fatal("negative log time")
		}
	})
}

// The formats are pinned: a session entry and a snapshot header written
// independently of this package (by hand, from the format comments in
// session.go) decode to what they say, and encode back byte for byte.
func TestSessionFormatsPinned(t *testing.T) {
	entry, _ := hex.DecodeString("010217979cfe362a0001000000000000000500000000000000030000000000000000707574206b2076")
	e, err := decodeSessionEntry(entry)
	require.NoError(t, err)
	require.Equal(t, sessionEntry{op: sessionCommand, time: 1700000000000000001, session: 5, seq: 3, payload: []byte("put k v")}, e)
	require.Equal(t, entry, e.encode())

	hdr, _ := hex.DecodeString("6b65656c736e617001000000000000008c4691333f00000000000003e80000000000000003" +
		"000000000000000300000000000001f40000000000000384000000000000000202000000026f6b" +
		"0000000000000009000000003b9aca0000000000000003e800000000000000000000000000" +
		"000000000000000c000000000000000700000000000003e70000000000000001030000000b6e6f2073756368206b6579")
	tb, err := readSnapshotHeader(bytes.NewReader(hdr))
	require.NoError(t, err)
	require.Equal(t, int64(1000), tb.logTime)
	require.Equal(t, map[uint64]*clientSession{
		3:  {id: 3, ttl: 500, lastActive: 900, lastSeq: 2, resp: sessionResponse{kind: respString, data: []byte("ok")}},
		9:  {id: 9, ttl: 1_000_000_000, lastActive: 1000},
		12: {id: 12, ttl: 7, lastActive: 999, lastSeq: 1, resp: sessionResponse{kind: respError, data: []byte("no such key")}},
	}, tb.sessions)
	require.Equal(t, hdr, mustHeader(t, tb))
}
