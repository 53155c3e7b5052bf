package inmem

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitFor = 5 * time.Second // upper bound on any expected delivery

func newNet(t testing.TB, seed uint64) *Network {
	t.Helper()
	n := NewNetwork(seed)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}

func newTr(t testing.TB, n *Network, addr raft.ServerAddress, opts ...Option) *Transport {
	t.Helper()
	tr, err := n.NewTransport(addr, opts...)
	require.NoError(t, err)
	return tr
}

// msg returns a valid message from tr numbered seq (in Commit).
func msg(from *Transport, seq uint64) *raft.Message {
	return &raft.Message{
		Type: raft.MsgHeartbeat, From: raft.ServerID(from.LocalAddr()),
		FromAddr: from.LocalAddr(), Term: 1, Commit: seq,
	}
}

func send(t testing.TB, from *Transport, to *Transport, seq uint64) {
	t.Helper()
	require.NoError(t, from.Send(to.LocalAddr(), msg(from, seq)))
}

// recv waits (up to waitFor) for the next message on tr.
func recv(t testing.TB, tr *Transport) *raft.Message {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case m := <-tr.Consumer():
		return m
	case <-timer.C:
		require.FailNow(t, "no message", "at %s within %v", tr.LocalAddr(), waitFor)
		return nil
	}
}

func recvSeqs(t testing.TB, tr *Transport, count int) []uint64 {
	t.Helper()
	var seqs []uint64
	for range count {
		seqs = append(seqs, recv(t, tr).Commit)
	}
	return seqs
}

// drain returns the messages that arrive at tr until none has for quiet.
func drain(tr *Transport, quiet time.Duration) []*raft.Message {
	var ms []*raft.Message
	timer := time.NewTimer(quiet)
	defer timer.Stop()
	for {
		select {
		case m := <-tr.Consumer():
			ms = append(ms, m)
			timer.Reset(quiet)
		case <-timer.C:
			return ms
		}
	}
}

// requireNone fails if anything arrives at tr within d.
func requireNone(t testing.TB, tr *Transport, d time.Duration) {
	t.Helper()
	ms := drain(tr, d)
	require.Empty(t, ms, "unexpected messages at %s", tr.LocalAddr())
}

func TestRoundTrip(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	require.Equal(t, raft.ServerAddress("a"), a.LocalAddr())
	sent := &raft.Message{
		Type: raft.MsgAppend, From: "a", FromAddr: "a", To: "b", Term: 7,
		Index: 10, LogTerm: 6, Commit: 9, Reject: true, RejectHint: 3,
		Entries: []raft.Log{
			{Index: 11, Term: 7, Type: raft.LogCommand, Data: []byte("x")},
			{Index: 12, Term: 7, Type: raft.LogNoop, Data: []byte("yz")},
		},
		Context: []byte("ctx"), Transfer: true,
	}
	want := *sent
	want.Entries = slices.Clone(sent.Entries)
	for i := range want.Entries {
		want.Entries[i].Data = slices.Clone(want.Entries[i].Data)
	}
	require.NoError(t, a.Send("b", sent))
	sent.Entries[0].Data[0] = 'Q' // the transport must have copied (encoded) it
	got := recv(t, b)
	require.Equal(t, &want, got)
	require.NotSame(t, sent, got)
	st := n.Stats()
	require.Equal(t, uint64(1), st.Sent)
	require.Equal(t, uint64(1), st.Delivered)
	require.Zero(t, st.Dropped.Total())
}

func TestZeroDelayInOrder(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	const count = 1000
	want := make([]uint64, count)
	for i := range uint64(count) {
		send(t, a, b, i)
		want[i] = i
	}
	require.Equal(t, want, recvSeqs(t, b, count))
}

func TestMalformedAndNil(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	require.Error(t, a.Send("b", nil))
	// Encodes fine but fails DecodeMessage's validation: dropped, counted.
	require.NoError(t, a.Send("b", &raft.Message{From: "a"}))
	require.Equal(t, uint64(1), n.Stats().Dropped.Malformed)
	requireNone(t, b, 20*time.Millisecond)
}

func TestUnknownAddress(t *testing.T) {
	n := newNet(t, 1)
	a := newTr(t, n, "a")
	require.NoError(t, a.Send("nobody", msg(a, 1)))
	require.Equal(t, uint64(1), n.Stats().Dropped.Unreachable)
}

// connectivity sends one message over every ordered pair and reports which
// arrived.
func connectivity(t *testing.T, ts ...*Transport) map[string]bool {
	t.Helper()
	for _, from := range ts {
		for _, to := range ts {
			if from != to {
				send(t, from, to, 0)
			}
		}
	}
	got := map[string]bool{}
	for _, to := range ts {
		for _, m := range drain(to, 30*time.Millisecond) {
			got[string(m.FromAddr)+">"+string(to.LocalAddr())] = true
		}
	}
	return got
}

func expect(ts []*Transport, ok func(from, to raft.ServerAddress) bool) map[string]bool {
	want := map[string]bool{}
	for _, from := range ts {
		for _, to := range ts {
			if from != to && ok(from.LocalAddr(), to.LocalAddr()) {
				want[string(from.LocalAddr())+">"+string(to.LocalAddr())] = true
			}
		}
	}
	return want
}

func all(raft.ServerAddress, raft.ServerAddress) bool { return true }

func TestPartition(t *testing.T) {
	n := newNet(t, 1)
	ts := []*Transport{newTr(t, n, "a"), newTr(t, n, "b"), newTr(t, n, "c"), newTr(t, n, "d"), newTr(t, n, "e")}
	require.Equal(t, expect(ts, all), connectivity(t, ts...))

	n.Partition([]raft.ServerAddress{"a", "b"}, []raft.ServerAddress{"c", "d"})
	group := map[raft.ServerAddress]int{"a": 1, "b": 1, "c": 2, "d": 2} // e: none
	require.Equal(t, expect(ts, func(f, to raft.ServerAddress) bool {
		return group[f] != 0 && group[f] == group[to]
	}), connectivity(t, ts...))
	require.Equal(t, uint64(20-4), n.Stats().Dropped.Partitioned)

	// A later Partition replaces the earlier one.
	n.Partition([]raft.ServerAddress{"a", "b", "c", "d", "e"})
	require.Equal(t, expect(ts, all), connectivity(t, ts...))

	require.Panics(t, func() { n.Partition([]raft.ServerAddress{"a"}, []raft.ServerAddress{"a", "b"}) })
}

func TestCut(t *testing.T) {
	n := newNet(t, 1)
	ts := []*Transport{newTr(t, n, "a"), newTr(t, n, "b"), newTr(t, n, "c")}
	n.Cut("a", "b")
	require.Equal(t, expect(ts, func(f, to raft.ServerAddress) bool {
		return !(f == "a" && to == "b")
	}), connectivity(t, ts...))
	require.Equal(t, uint64(1), n.Stats().Dropped.Cut)
	n.Restore("a", "b")
	require.Equal(t, expect(ts, all), connectivity(t, ts...))
}

func TestIsolateRejoin(t *testing.T) {
	n := newNet(t, 1)
	ts := []*Transport{newTr(t, n, "a"), newTr(t, n, "b"), newTr(t, n, "c")}
	n.Isolate("b")
	require.Equal(t, expect(ts, func(f, to raft.ServerAddress) bool {
		return f != "b" && to != "b"
	}), connectivity(t, ts...))
	require.Equal(t, uint64(4), n.Stats().Dropped.Partitioned)
	n.Rejoin("b")
	require.Equal(t, expect(ts, all), connectivity(t, ts...))
}

func TestHeal(t *testing.T) {
	n := newNet(t, 1)
	ts := []*Transport{newTr(t, n, "a"), newTr(t, n, "b"), newTr(t, n, "c")}
	n.Partition([]raft.ServerAddress{"a"}, []raft.ServerAddress{"b"})
	n.Cut("b", "a")
	n.Isolate("a")
	require.NoError(t, n.SetDropRate(0.5))
	require.NoError(t, n.SetDuplicateRate(1))
	require.NoError(t, n.SetReorderRate(1))
	n.Heal()

	require.Equal(t, expect(ts, all), connectivity(t, ts...))
	// Rates are zero again: every message exactly once, in order.
	a, b := ts[0], ts[1]
	for i := range uint64(10) {
		send(t, a, b, i)
	}
	require.Equal(t, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, recvSeqs(t, b, 10))
	requireNone(t, b, 20*time.Millisecond)
	st := n.Stats()
	require.Zero(t, st.Dropped.Total())
	require.Zero(t, st.Duplicated)
	require.Zero(t, st.Reordered)
}

func TestDropRate(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	require.NoError(t, n.SetDropRate(1))
	for i := range uint64(100) {
		send(t, a, b, i)
	}
	require.Equal(t, uint64(100), n.Stats().Dropped.Random)
	requireNone(t, b, 20*time.Millisecond)

	require.NoError(t, n.SetDropRate(0))
	for i := range uint64(100) {
		send(t, a, b, i)
	}
	require.Len(t, recvSeqs(t, b, 100), 100)
	requireNone(t, b, 20*time.Millisecond)
	require.Equal(t, uint64(100), n.Stats().Dropped.Random)

	// In between, roughly the rate.
	require.NoError(t, n.SetDropRate(0.5))
	for i := range uint64(1000) {
		send(t, a, b, i)
	}
	dropped := n.Stats().Dropped.Random - 100
	require.InDelta(t, 500, float64(dropped), 100)
	require.Len(t, drain(b, 20*time.Millisecond), 1000-int(dropped))
}

func TestDuplicateRate(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	require.NoError(t, n.SetDuplicateRate(1))
	for i := range uint64(10) {
		require.NoError(t, a.Send("b", &raft.Message{
			Type: raft.MsgAppend, From: "a", Index: 4, Commit: i,
			Entries: []raft.Log{{Index: 5, Data: []byte("data")}},
		}))
	}
	got := drain(b, 30*time.Millisecond)
	require.Len(t, got, 20)
	for i := range uint64(10) {
		x, y := got[2*i], got[2*i+1]
		require.Equal(t, i, x.Commit)
		require.Equal(t, x, y)
		require.NotSame(t, x, y)
		x.Entries[0].Data[0] = 'Q' // copies must not share memory
		require.Equal(t, "data", string(y.Entries[0].Data))
	}
	st := n.Stats()
	require.Equal(t, uint64(10), st.Duplicated)
	require.Equal(t, uint64(20), st.Delivered)
}

func TestDelay(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	const lo, hi = 40 * time.Millisecond, 60 * time.Millisecond
	require.NoError(t, n.SetDelay(lo, hi))
	start := time.Now()
	send(t, a, b, 1)
	require.Empty(t, b.Consumer(), "delayed message delivered inside Send")
	m := recv(t, b)
	require.GreaterOrEqual(t, time.Since(start), lo)
	require.Equal(t, uint64(1), m.Commit)

	// Many messages with random delays: each arrives no earlier than lo
	// after it was sent.
	sentAt := map[uint64]time.Time{}
	for i := range uint64(50) {
		sentAt[i] = time.Now()
		send(t, a, b, i)
	}
	for range 50 {
		m := recv(t, b)
		require.GreaterOrEqual(t, time.Since(sentAt[m.Commit]), lo, "message %d", m.Commit)
	}

	// A fixed delay keeps per-link order.
	require.NoError(t, n.SetDelay(5*time.Millisecond, 5*time.Millisecond))
	for i := range uint64(100) {
		send(t, a, b, i)
	}
	seqs := recvSeqs(t, b, 100)
	require.True(t, slices.IsSorted(seqs), "%v", seqs)

	// Turning delay off makes delivery immediate again.
	require.NoError(t, n.SetDelay(0, 0))
	send(t, a, b, 1)
	require.Len(t, b.Consumer(), 1)
}

func TestReorder(t *testing.T) {
	n := newNet(t, 1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	require.NoError(t, n.SetReorderRate(1))
	for i := range uint64(6) {
		send(t, a, b, i)
	}
	require.Equal(t, []uint64{1, 0, 3, 2, 5, 4}, recvSeqs(t, b, 6))

	// A held message with no successor is delivered after the hold.
	require.NoError(t, n.SetReorderHold(30*time.Millisecond))
	start := time.Now()
	send(t, a, b, 9)
	require.Equal(t, uint64(9), recv(t, b).Commit)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)

	// At a partial rate: everything arrives once, some out of order.
	require.Equal(t, uint64(4), n.Stats().Reordered)
	require.NoError(t, n.SetReorderRate(0.3))
	check := func() {
		t.Helper()
		for i := range uint64(200) {
			send(t, a, b, i)
		}
		seqs := recvSeqs(t, b, 200)
		require.False(t, slices.IsSorted(seqs))
		slices.Sort(seqs)
		for i, s := range seqs {
			require.Equal(t, uint64(i), s)
		}
		requireNone(t, b, 40*time.Millisecond)
	}
	check()
	// About a fraction 0.3/1.3 of messages are held (a releasing message
	// is never held).
	require.InDelta(t, 4+200*0.3/1.3, float64(n.Stats().Reordered), 20)
	// And with delays.
	require.NoError(t, n.SetDelay(0, time.Millisecond))
	check()
}

// run sends a fixed pattern of messages over a faulty network and returns
// the network's decisions and the sorted sequence numbers each receiver got.
func runPattern(t *testing.T, seed uint64) ([]decision, map[raft.ServerAddress][]uint64) {
	n := NewNetwork(seed)
	defer n.Close()
	var decs []decision
	n.trace = func(d decision) { decs = append(decs, d) }
	ts := []*Transport{newTr(t, n, "a"), newTr(t, n, "b"), newTr(t, n, "c")}
	require.NoError(t, n.SetDropRate(0.3))
	require.NoError(t, n.SetDuplicateRate(0.2))
	require.NoError(t, n.SetDelay(0, 2*time.Millisecond))
	require.NoError(t, n.SetReorderRate(0.2))
	require.NoError(t, n.SetReorderHold(5*time.Millisecond))
	seq := uint64(0)
	for i := range 300 {
		if i == 150 {
			n.Cut("a", "c")
		}
		for _, from := range ts {
			for _, to := range ts {
				if from != to {
					send(t, from, to, seq)
					seq++
				}
			}
		}
	}
	st := n.Stats()
	want := st.Sent + st.Duplicated - st.Dropped.Total()
	got := map[raft.ServerAddress][]uint64{}
	var total uint64
	for total < want {
		progress := false
		for _, tr := range ts {
			select {
			case m := <-tr.Consumer():
				got[tr.LocalAddr()] = append(got[tr.LocalAddr()], m.Commit)
				total++
				progress = true
			default:
			}
		}
		if !progress {
			addr, m := recvAny(t, ts)
			got[addr] = append(got[addr], m.Commit)
			total++
		}
	}
	for _, s := range got {
		slices.Sort(s)
	}
	return decs, got
}

// recvAny waits (up to waitFor) for a message on any of ts.
func recvAny(t *testing.T, ts []*Transport) (raft.ServerAddress, *raft.Message) {
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for _, tr := range ts {
			select {
			case m := <-tr.Consumer():
				return tr.LocalAddr(), m
			case <-time.After(time.Millisecond):
			}
		}
	}
	require.FailNow(t, "no message")
	return "", nil
}

func TestDeterminism(t *testing.T) {
	d1, got1 := runPattern(t, 42)
	d2, got2 := runPattern(t, 42)
	require.Len(t, d1, 1800)
	require.Equal(t, d1, d2)
	require.Equal(t, got1, got2)
	var drops, dups, reorders, delays int
	for _, d := range d1 {
		if d.Drop != dropNone {
			drops++
		}
		if d.Dup {
			dups++
		}
		if d.Reordered {
			reorders++
		}
		for _, x := range d.Delays {
			if x > 0 {
				delays++
			}
		}
	}
	require.NotZero(t, drops)
	require.NotZero(t, dups)
	require.NotZero(t, reorders)
	require.NotZero(t, delays)

	d3, _ := runPattern(t, 43)
	require.NotEqual(t, d1, d3, "a different seed should give different decisions")
}

func TestFullConsumerDrops(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprint("delay=", delay), func(t *testing.T) {
			n := newNet(t, 1)
			a, b := newTr(t, n, "a"), newTr(t, n, "b", WithBufferSize(2))
			require.NoError(t, n.SetDelay(delay, delay))
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range uint64(5) {
					_ = a.Send("b", msg(a, i))
				}
			}()
			select {
			case <-done:
			case <-time.After(waitFor):
				require.FailNow(t, "Send blocked on a full consumer")
			}
			require.Eventually(t, func() bool { return n.Stats().Dropped.Full == 3 },
				waitFor, time.Millisecond)
			require.Equal(t, []uint64{0, 1}, recvSeqs(t, b, 2))
			// The delivery goroutine is not stuck: more messages still arrive.
			send(t, a, b, 7)
			require.Equal(t, uint64(7), recv(t, b).Commit)
		})
	}
}

func TestClose(t *testing.T) {
	n := NewNetwork(1)
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	c := newTr(t, n, "c")
	require.NoError(t, n.SetDelay(time.Hour, time.Hour))
	send(t, a, b, 1)
	send(t, b, a, 2)
	require.NoError(t, n.SetDelay(0, 0))
	require.NoError(t, n.SetReorderRate(1))
	require.NoError(t, n.SetReorderHold(time.Hour))
	send(t, a, c, 3) // held

	// Closing one transport: Send fails, sends to it are dropped, the
	// address can be reused.
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.Send("a", msg(c, 1)), ErrClosed)
	require.NoError(t, a.Send("c", msg(a, 4)))
	c2 := newTr(t, n, "c")
	_, err := n.NewTransport("c")
	require.ErrorIs(t, err, ErrAddrInUse)
	require.NoError(t, n.SetReorderRate(0))
	send(t, a, c2, 5)
	require.Equal(t, uint64(5), recv(t, c2).Commit)

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		require.NoError(t, n.Close())
	}()
	select {
	case <-closed:
	case <-time.After(waitFor):
		require.FailNow(t, "Network.Close hung")
	}
	goleak.VerifyNone(t)

	require.ErrorIs(t, a.Send("b", msg(a, 1)), ErrClosed)
	require.ErrorIs(t, b.Send("a", msg(b, 1)), ErrClosed)
	_, err = n.NewTransport("d")
	require.ErrorIs(t, err, ErrClosed)
	require.Empty(t, a.Consumer())
	require.Empty(t, b.Consumer())

	st := n.Stats()
	// 2 delayed + 1 held + 1 sent to closed c.
	require.Equal(t, uint64(4), st.Dropped.Unreachable)
	require.Equal(t, st.Sent+st.Duplicated, st.Delivered+st.Dropped.Total())
}

func TestBadSettings(t *testing.T) {
	n := newNet(t, 1)
	for _, p := range []float64{-0.1, 1.1, math.NaN(), math.Inf(1)} {
		require.Error(t, n.SetDropRate(p), "%v", p)
		require.Error(t, n.SetDuplicateRate(p), "%v", p)
		require.Error(t, n.SetReorderRate(p), "%v", p)
	}
	for _, p := range []float64{0, 0.5, 1} {
		require.NoError(t, n.SetDropRate(p))
		require.NoError(t, n.SetDuplicateRate(p))
		require.NoError(t, n.SetReorderRate(p))
	}
	require.Error(t, n.SetDelay(-time.Millisecond, time.Millisecond))
	require.Error(t, n.SetDelay(2*time.Millisecond, time.Millisecond))
	require.NoError(t, n.SetDelay(time.Millisecond, time.Millisecond))
	require.Error(t, n.SetReorderHold(0))
	_, err := n.NewTransport("")
	require.Error(t, err)
	_, err = n.NewTransport("x", WithBufferSize(-1))
	require.Error(t, err)

	// A rejected setting leaves the old one in place.
	n.Heal()
	require.NoError(t, n.SetDelay(0, 0))
	require.Error(t, n.SetDropRate(2))
	a, b := newTr(t, n, "a"), newTr(t, n, "b")
	send(t, a, b, 1)
	require.Equal(t, uint64(1), recv(t, b).Commit)
}

// TestConcurrent runs senders, receivers and fault changes at once (for the
// race detector) and checks that every message is accounted for.
func TestConcurrent(t *testing.T) {
	n := NewNetwork(9)
	var ts []*Transport
	for i := range 5 {
		ts = append(ts, newTr(t, n, raft.ServerAddress(fmt.Sprint("s", i)), WithBufferSize(64)))
	}
	stop := make(chan struct{})
	var readers, senders sync.WaitGroup
	for _, tr := range ts {
		readers.Go(func() {
			for {
				select {
				case <-tr.Consumer():
				case <-stop:
					return
				}
			}
		})
	}
	for g := range 8 {
		senders.Go(func() {
			from := ts[g%len(ts)]
			for i := range uint64(2000) {
				to := ts[(g+int(i))%len(ts)]
				assert.NoError(t, from.Send(to.LocalAddr(), msg(from, i)))
				switch i % 500 {
				case 100:
					n.Isolate(to.LocalAddr())
				case 200:
					n.Rejoin(to.LocalAddr())
					n.Cut(from.LocalAddr(), to.LocalAddr())
				case 300:
					assert.NoError(t, n.SetDelay(0, time.Millisecond))
					assert.NoError(t, n.SetReorderRate(0.2))
					assert.NoError(t, n.SetDuplicateRate(0.1))
					assert.NoError(t, n.SetDropRate(0.1))
				case 400:
					n.Heal()
				}
			}
		})
	}
	senders.Wait()
	require.NoError(t, n.Close())
	close(stop)
	readers.Wait()
	st := n.Stats()
	require.Equal(t, uint64(8*2000), st.Sent)
	require.Equal(t, st.Sent+st.Duplicated, st.Delivered+st.Dropped.Total())
}

func BenchmarkSendReceive(b *testing.B) {
	n := newNet(b, 1)
	src, dst := newTr(b, n, "a"), newTr(b, n, "b")
	m := &raft.Message{
		Type: raft.MsgAppend, From: "a", FromAddr: "a", Term: 3, Index: 99, Commit: 90,
		Entries: []raft.Log{{Index: 100, Term: 3, Data: make([]byte, 64)}},
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-dst.Consumer():
			case <-stop:
				return
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := src.Send("b", m); err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	<-done
	if st := n.Stats(); st.Dropped.Total() > 0 {
		b.Logf("dropped %+v", st.Dropped)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSendParallel(b *testing.B) {
	n := newNet(b, 1)
	dst := newTr(b, n, "dst", WithBufferSize(1<<20))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-dst.Consumer():
			case <-stop:
				return
			}
		}
	}()
	var id uint64
	var mu sync.Mutex
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		id++
		src := newTr(b, n, raft.ServerAddress(fmt.Sprint("src", id)))
		mu.Unlock()
		m := msg(src, 1)
		for pb.Next() {
			if err := src.Send("dst", m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
