package sim

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Events run in time order, and events at one time in the order they were
// scheduled: what makes a seed replay.
func TestSchedulerOrder(t *testing.T) {
	var s Scheduler
	var got []int
	s.At(20, func() { got = append(got, 3) })
	s.At(10, func() { got = append(got, 1) })
	s.At(10, func() {
		got = append(got, 2)
		s.After(0, func() { got = append(got, 21) }) // same time, scheduled later: runs after 2's peers
	})
	s.At(10, func() { got = append(got, 22) })
	require.True(t, s.RunUntil(15, nil))
	require.Equal(t, []int{1, 2, 22, 21}, got)
	require.Equal(t, Time(15), s.Now())
	require.False(t, s.RunUntil(100, func() bool { return true }), "stop ends the run")
	require.Equal(t, []int{1, 2, 22, 21, 3}, got)
}

func TestNetworkCutsAndCalm(t *testing.T) {
	f := Faults{Loss: 1, MinDelay: 1, MaxDelay: 2}
	n := NewNetwork(rand.New(rand.NewPCG(1, 2)), f)
	require.Empty(t, n.Send("a", "b"), "loss 1 loses everything")
	n.Split([]string{"a"}, []string{"a", "b", "c"})
	require.False(t, n.Connected("a", "b"))
	require.False(t, n.Connected("c", "a"))
	require.True(t, n.Connected("b", "c"))
	n.Calm()
	require.True(t, n.Connected("a", "b"))
	d := n.Send("a", "b")
	require.Len(t, d, 1, "a calm network neither loses nor duplicates")
	require.True(t, d[0] >= 1 && d[0] <= 2)
}

func TestTraceTailAndHash(t *testing.T) {
	a, b := NewTrace(2), NewTrace(2)
	for i := 0; i < 3; i++ {
		r := Record{At: Time(i), Node: "s1", Kind: "k", Nums: [4]uint64{uint64(i)}}
		a.Add(r)
		b.Add(r)
	}
	require.Equal(t, a.Hash(), b.Hash())
	require.Equal(t, 3, a.Len())
	tail := a.Tail()
	require.Equal(t, 2, strings.Count(tail, "\n"), "only the last events are kept")
	b.Add(Record{At: 9})
	require.NotEqual(t, a.Hash(), b.Hash())
}

// The checker must be able to fail: a read that misses an acknowledged
// write is caught, with a visualisation written; an unknown put may take
// effect late; a forgotten put does not count; a put must return the value
// it replaced.
func TestHistoryCheck(t *testing.T) {
	var h History
	w := h.Call(0, KVInput{Put: true, Key: "k", Value: "1"}, 0)
	h.Return(w, KVOutput{}, 10)
	r := h.Call(1, KVInput{Key: "k"}, 20)
	h.Return(r, KVOutput{}, 30) // missed the write
	dir := t.TempDir()
	err := h.Check(time.Second, dir)
	require.ErrorContains(t, err, "not linearizable")
	_, statErr := os.Stat(dir + "/linearizability.html")
	require.NoError(t, statErr)

	var ok History
	u := ok.Call(0, KVInput{Put: true, Key: "k", Value: "late"}, 0) // never returns
	g := ok.Call(1, KVInput{Key: "k"}, 50)
	ok.Return(g, KVOutput{Value: "late", Found: true}, 60)
	require.NoError(t, ok.Check(time.Second, t.TempDir()), "an unknown put may take effect after its call")
	ok.Forget(u)
	require.Error(t, ok.Check(time.Second, t.TempDir()), "a forgotten put cannot explain the read")

	// A put returns the value it replaced: a wrong one is caught.
	var p History
	a := p.Call(0, KVInput{Put: true, Key: "k", Value: "1"}, 0)
	p.Return(a, KVOutput{}, 10)
	b := p.Call(0, KVInput{Put: true, Key: "k", Value: "2"}, 20)
	p.Return(b, KVOutput{Value: "1", Found: true}, 30)
	require.NoError(t, p.Check(time.Second, t.TempDir()))
	p.Return(b, KVOutput{Value: "0", Found: true}, 30)
	require.ErrorContains(t, p.Check(time.Second, t.TempDir()), "not linearizable")
}
