package multiwal

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testDir = "/mwal"

func newMem() *vfs.MemFS { return vfs.NewMemFS(512) }

// memOptions are small segments on fsys, padded to MemFS's sectors.
func memOptions(fsys vfs.FS) Options {
	return Options{SegmentSize: 4096, Align: 512, fs: fsys}
}

// gmodel is the state a test expects of one group.
type gmodel struct {
	first, last uint64 // empty when last < first
	ents        map[uint64]raft.Log
	stable      map[string]string
}

func newGModel() *gmodel {
	return &gmodel{first: 1, ents: map[uint64]raft.Log{}, stable: map[string]string{}}
}

func (g *gmodel) empty() bool { return g.last < g.first }

func (g *gmodel) clone() *gmodel {
	c := *g
	c.ents, c.stable = maps.Clone(g.ents), maps.Clone(g.stable)
	return &c
}

// model is the state a test expects of a WAL: the groups with state.
type model map[uint64]*gmodel

func (m model) clone() model {
	c := model{}
	for id, g := range m {
		c[id] = g.clone()
	}
	return c
}

func (m model) g(id uint64) *gmodel {
	if m[id] == nil {
		m[id] = newGModel()
	}
	return m[id]
}

// entries makes n entries following group g's last (or starting at a
// random index when it is empty).
func (g *gmodel) entries(rng *rand.Rand, n, maxData int) []*raft.Log {
	next := g.last + 1
	if g.empty() {
		next = 1 + uint64(rng.IntN(5))
	}
	out := make([]*raft.Log, n)
	for i := range out {
		d := make([]byte, rng.IntN(maxData+1))
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		out[i] = &raft.Log{Index: next + uint64(i), Term: 1 + uint64(rng.IntN(3)), Type: raft.LogType(rng.IntN(4)), Data: d}
	}
	return out
}

func (g *gmodel) append(logs []*raft.Log) {
	if g.empty() {
		g.first = logs[0].Index
	}
	for _, e := range logs {
		c := *e
		if c.Data == nil {
			c.Data = []byte{}
		}
		g.ents[e.Index] = c
		g.last = e.Index
	}
}

func (g *gmodel) deleteRange(lo, hi uint64) {
	if g.empty() || lo > hi || hi < g.first || lo > g.last {
		return
	}
	first, last := g.first, g.last
	for i := max(lo, first); i <= min(hi, last); i++ {
		delete(g.ents, i)
	}
	switch {
	case lo <= first && hi >= last:
		g.first = last + 1
	case lo <= first:
		g.first = hi + 1
	default:
		g.last = lo - 1
	}
}

// diff compares w with m and describes the first difference.
func diff(w *WAL, m model) string {
	var want []uint64
	for id := range m {
		want = append(want, id)
	}
	slices.Sort(want)
	if got := w.Groups(); !slices.Equal(got, want) {
		return fmt.Sprintf("groups %v, want %v", got, want)
	}
	for _, id := range want {
		if d := diffGroup(w, id, m[id]); d != "" {
			return fmt.Sprintf("group %d: %s", id, d)
		}
	}
	return ""
}

func diffGroup(w *WAL, id uint64, m *gmodel) string {
	g, err := w.Group(id)
	if err != nil {
		return err.Error()
	}
	first, err1 := g.FirstIndex()
	last, err2 := g.LastIndex()
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("index: %v %v", err1, err2)
	}
	wf, wl := m.first, m.last
	if m.empty() {
		wf, wl = 0, 0
	}
	if first != wf || last != wl {
		return fmt.Sprintf("range [%d, %d], want [%d, %d]", first, last, wf, wl)
	}
	for i := wf; i <= wl && wl > 0; i++ {
		var e raft.Log
		if err := g.GetLog(i, &e); err != nil {
			return fmt.Sprintf("GetLog(%d): %v", i, err)
		}
		want := m.ents[i]
		if e.Index != want.Index || e.Term != want.Term || e.Type != want.Type || string(e.Data) != string(want.Data) {
			return fmt.Sprintf("entry %d = %+v, want %+v", i, e, want)
		}
	}
	for _, i := range []uint64{wf - 1, wl + 1} {
		var e raft.Log
		if i > 0 && g.GetLog(i, &e) != raft.ErrLogNotFound {
			return fmt.Sprintf("GetLog(%d) outside the range found something", i)
		}
	}
	w.mu.RLock()
	var got map[string][]byte
	if s := w.groups[id]; s != nil {
		got = maps.Clone(s.stable)
	}
	w.mu.RUnlock()
	if len(got) != len(m.stable) {
		return fmt.Sprintf("stable has %d keys, want %d", len(got), len(m.stable))
	}
	for k, v := range m.stable {
		b, err := g.Get([]byte(k))
		if err != nil || string(b) != v {
			return fmt.Sprintf("Get(%q) = %q, %v, want %q", k, b, err, v)
		}
	}
	return ""
}

// writer is the writes of a Group or of its staged view.
type writer interface {
	StoreLogs([]*raft.Log) error
	DeleteRange(min, max uint64) error
	Set(key, val []byte) error
}

// randomOp picks a random call on a random group among ids, applies it
// to next and returns it.
// With stage set, the call goes through the group's staged view and is
// never a RemoveGroup (which would flush the staged records before it).
func randomOp(rng *rand.Rand, w func() *WAL, next model, ids []uint64, maxData int, stage bool) func() error {
	id := ids[rng.IntN(len(ids))]
	g := next.g(id)
	grp := func() writer {
		x, _ := w().Group(id)
		if stage {
			return x.Staged()
		}
		return x
	}
	n := 100
	if stage {
		n = 92 // no RemoveGroup
	}
	switch r := rng.IntN(n); {
	case r < 50 || len(g.ents) < 3:
		logs := g.entries(rng, 1+rng.IntN(4), maxData)
		g.append(logs)
		return func() error { return grp().StoreLogs(logs) }
	case r < 62:
		lo := g.first + 1 + uint64(rng.IntN(len(g.ents)-1))
		hi := g.last + uint64(rng.IntN(3))
		g.deleteRange(lo, hi)
		return func() error { return grp().DeleteRange(lo, hi) }
	case r < 74:
		hi := g.first + uint64(rng.IntN(len(g.ents)-1))
		g.deleteRange(0, hi)
		return func() error { return grp().DeleteRange(0, hi) }
	case r < 76:
		lo, hi := g.first, g.last
		g.deleteRange(lo, hi)
		return func() error { return grp().DeleteRange(lo, hi) }
	case r < 92:
		k := fmt.Sprintf("k%d", rng.IntN(3))
		v := fmt.Sprintf("v%d", rng.Uint32())
		if rng.IntN(8) == 0 {
			v = ""
		}
		if v == "" {
			delete(g.stable, k)
		} else {
			g.stable[k] = v
		}
		return func() error { return grp().Set([]byte(k), []byte(v)) }
	default:
		delete(next, id)
		return func() error { return w().RemoveGroup(id) }
	}
}
