package multiwal

import (
	"bytes"
	"fmt"
	"slices"
)

// group is one group's state. The committed part (live, first, last,
// runs, stable) is what durable records say; the reserved part (rfirst,
// rlast) also counts the records queued in the pending batch, so that a
// call is checked against the calls before it.
type group struct {
	id uint64
	// live says the group has durable state.
	live bool
	// The log is [first, last]; it is empty when last < first, and then
	// the next StoreLogs may start it at any index.
	first, last uint64
	// runs locate the log's entries: consecutive indexes in one segment
	// each, in index order, together covering [first, last].
	runs   []run
	stable map[string][]byte

	rfirst, rlast uint64
	pend          int // records queued for this group and not yet applied
}

type run struct {
	seg   *segment
	first uint64
	offs  []int64 // offs[i] is where entry first+i's record starts
}

func (r *run) last() uint64 { return r.first + uint64(len(r.offs)) - 1 }

func newGroup(id uint64) *group { return &group{id: id, first: 1, rfirst: 1} }

func (g *group) empty() bool { return g.last < g.first }

// locate returns where entry index is, or nil.
func (g *group) locate(index uint64) (*segment, int64) {
	if g.empty() || index < g.first || index > g.last {
		return nil, 0
	}
	i, found := slices.BinarySearchFunc(g.runs, index, func(r run, idx uint64) int {
		switch {
		case r.last() < idx:
			return -1
		case r.first > idx:
			return 1
		}
		return 0
	})
	if !found {
		return nil, 0
	}
	r := &g.runs[i]
	return r.seg, r.offs[index-r.first]
}

func (g *group) push(seg *segment, index uint64, off int64) {
	if n := len(g.runs); n > 0 && g.runs[n-1].seg == seg && g.runs[n-1].last()+1 == index {
		g.runs[n-1].offs = append(g.runs[n-1].offs, off)
	} else {
		g.runs = append(g.runs, run{seg: seg, first: index, offs: []int64{off}})
	}
	seg.live++
}

// dropBelow deletes the entries below x.
func (g *group) dropBelow(x uint64) {
	if g.empty() {
		if x > g.first {
			g.first, g.last = x, x-1
		}
		return
	}
	if x <= g.first {
		return
	}
	k := 0
	for ; k < len(g.runs); k++ {
		r := &g.runs[k]
		if r.last() >= x {
			if r.first < x {
				d := x - r.first
				r.seg.live -= int(d)
				r.offs = r.offs[d:]
				if cap(r.offs) > 2*len(r.offs)+16 {
					r.offs = slices.Clone(r.offs)
				}
				r.first = x
			}
			break
		}
		r.seg.live -= len(r.offs)
	}
	g.runs = slices.Delete(g.runs, 0, k)
	g.first = x
	if x > g.last {
		g.last = x - 1
	}
}

// dropAbove deletes the entries above after.
func (g *group) dropAbove(after uint64) {
	if g.empty() || after >= g.last {
		return
	}
	for n := len(g.runs); n > 0; n = len(g.runs) {
		r := &g.runs[n-1]
		if r.first > after {
			r.seg.live -= len(r.offs)
			g.runs[n-1] = run{}
			g.runs = g.runs[:n-1]
			continue
		}
		if l := r.last(); l > after {
			d := l - after
			r.seg.live -= int(d)
			r.offs = r.offs[:uint64(len(r.offs))-d]
		}
		break
	}
	g.last = after
}

func (g *group) clear() {
	for _, r := range g.runs {
		r.seg.live -= len(r.offs)
	}
	g.runs, g.stable, g.live = nil, nil, false
	g.first, g.last = 1, 0
}

// applyRecords applies the records recs, written at base in seg, to the
// groups' state. The flusher (replay false) applies a batch it just
// wrote; recovery (replay true) a batch read back, which it also checks
// for consistency. ckpt says whether checkpoint records are applied (the
// oldest live segment's) or skipped. Live and recovered state are built
// by the same code.
func (w *WAL) applyRecords(seg *segment, base int64, recs []byte, replay, ckpt bool) error {
	for off := 0; off < len(recs); {
		n := recHeaderLen + int(le.Uint32(recs[off+4:]))
		kind, p := recs[off+8], recs[off+recHeaderLen:off+n]
		if err := w.applyRecord(seg, base+int64(off), kind, p, replay, ckpt); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (w *WAL) applyRecord(seg *segment, at int64, kind byte, p []byte, replay, ckpt bool) error {
	corrupt := func(why string, args ...any) error {
		return &CorruptError{Segment: seg.id, File: seg.name, Offset: at, Reason: fmt.Sprintf(why, args...)}
	}
	switch kind {
	case kindCommit, kindSeal, kindPad, kindCkptEnd:
		return nil
	case kindCkpt:
		if !ckpt {
			return nil
		}
		gid, first, last, kv, _ := parseCkpt(p)
		g := w.group(gid)
		if g.live {
			return corrupt("checkpoint names group %d twice", gid)
		}
		if first == 0 {
			return corrupt("checkpoint of group %d starts at index 0", gid)
		}
		g.live, g.first, g.last, g.stable = true, first, last, kv
		return nil
	}
	g := w.group(le.Uint64(p))
	if !replay {
		g.pend--
	}
	switch kind {
	case kindEntry:
		idx := le.Uint64(p[8:])
		if idx == 0 {
			return corrupt("entry of group %d has index 0", g.id)
		}
		if g.empty() {
			g.first, g.last = idx, idx-1
		} else if idx != g.last+1 {
			return corrupt("group %d: entry %d where %d was expected", g.id, idx, g.last+1)
		}
		g.push(seg, idx, at)
		g.last, g.live = idx, true
		if !replay {
			w.st.entries.Add(1)
		}
	case kindSet:
		kl := le.Uint32(p[8:])
		key, val := p[12:12+kl], p[12+kl:]
		if g.stable == nil {
			g.stable = map[string][]byte{}
		}
		if len(val) == 0 {
			delete(g.stable, string(key))
		} else {
			g.stable[string(key)] = bytes.Clone(val)
		}
		g.live = true
	case kindPrefix:
		x := le.Uint64(p[8:])
		if x == 0 {
			return corrupt("group %d: prefix deletion below index 0", g.id)
		}
		g.dropBelow(x)
		g.live = true
	case kindSuffix:
		g.dropAbove(le.Uint64(p[8:]))
		g.live = true
	case kindRemove:
		g.clear()
		w.forget(g)
	}
	if !replay && g.pend == 0 {
		g.rfirst, g.rlast = g.first, g.last
	}
	return nil
}
