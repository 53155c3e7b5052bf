package wal

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

// recordOf returns the file, offset and length of entry index's record.
func recordOf(t *testing.T, l *Log, index uint64) (name string, off, n int64) {
	t.Helper()
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, i := l.locate(index)
	require.NotNil(t, s, "entry %d", index)
	off, lim := s.ix.extent(i)
	var h [recHeaderLen]byte
	_, err := s.f.ReadAt(h[:], off)
	require.NoError(t, err)
	n = recHeaderLen + int64(le.Uint32(h[4:]))
	require.LessOrEqual(t, n, lim)
	return s.name, off, n
}

// indexBytes is the memory l's index holds: the segment indexes' offsets
// and the list of live segments.
func indexBytes(l *Log) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 8 * cap(l.live)
	for _, s := range l.segs {
		n += s.ix.bytes()
	}
	return n
}

// checkIndex checks the invariants of l's index: the live segments hold
// entries, in order, with contiguous ranges, and no other segment holds
// index memory.
func checkIndex(t *testing.T, l *Log) {
	t.Helper()
	l.mu.RLock()
	defer l.mu.RUnlock()
	live := map[*segment]bool{}
	for k, s := range l.live {
		live[s] = true
		require.Positive(t, s.ix.len(), "live segment %d is empty", s.id)
		if k > 0 {
			p := l.live[k-1]
			require.Less(t, p.id, s.id)
			require.Equal(t, p.ix.last()+1, s.ix.first, "segments %d and %d", p.id, s.id)
		}
		for i := 1; i < s.ix.len(); i++ {
			require.Less(t, s.ix.at(i-1), s.ix.at(i))
		}
		require.Greater(t, s.ix.tail, s.ix.at(s.ix.len()-1))
	}
	for _, s := range l.segs {
		if !live[s] {
			require.Zero(t, s.ix.bytes(), "segment %d is not live", s.id)
		}
	}
}

// TestIndexModel runs random appends of random sizes, prefix and suffix
// deletions and reopens over many segments, and compares the log, its
// index and what a reopen recovers with a model after every step.
func TestIndexModel(t *testing.T) {
	rounds := 400
	if raceEnabled {
		rounds = 150
	}
	for _, seed := range []uint64{1, 2, 3} {
		fsys := newMem()
		rng := rand.New(rand.NewPCG(seed, 15))
		l, err := Open(testDir, memOptions(fsys))
		require.NoError(t, err)
		var m model
		maxLive := 0
		for round := range rounds {
			switch r := rng.IntN(100); {
			case r < 60 || len(m.ents) < 2:
				// Batches from one entry to several segments' worth.
				n := 1 + rng.IntN(8)
				if rng.IntN(20) == 0 {
					n = 30 + rng.IntN(60)
				}
				logs := m.entries(rng, n, []int{0, 20, 300, 2000}[rng.IntN(4)])
				if len(m.ents) == 0 && rng.IntN(2) == 0 {
					// An empty log starts anywhere.
					start := m.last() + 1 + uint64(rng.IntN(1000))
					for i, e := range logs {
						e.Index = start + uint64(i)
					}
				}
				require.NoError(t, l.StoreLogs(logs))
				m.append(logs)
			case r < 75:
				lo := m.first + 1 + uint64(rng.IntN(len(m.ents)-1))
				require.NoError(t, l.DeleteRange(lo, m.last()+uint64(rng.IntN(3))))
				m.deleteRange(lo, m.last())
			case r < 85:
				hi := m.first + uint64(rng.IntN(len(m.ents)-1))
				require.NoError(t, l.DeleteRange(0, hi))
				m.deleteRange(m.first, hi)
			case r < 88:
				require.NoError(t, l.DeleteRange(m.first, m.last()))
				m.deleteRange(m.first, m.last())
			default:
				require.NoError(t, l.Close())
				l, err = Open(testDir, memOptions(fsys))
				require.NoError(t, err)
			}
			maxLive = max(maxLive, len(l.live))
			checkIndex(t, l)
			require.Empty(t, diff(l, &m), "seed %d round %d", seed, round)
			if round%25 == 0 {
				require.NoError(t, l.Close())
				l, err = Open(testDir, memOptions(fsys))
				require.NoError(t, err)
				checkIndex(t, l)
				require.Empty(t, diff(l, &m), "seed %d round %d, reopened", seed, round)
			}
		}
		segs := l.segs[len(l.segs)-1].id
		t.Logf("seed %d: %d segments written, up to %d live at once", seed, segs, maxLive)
		require.NoError(t, l.Close())
		require.Greater(t, segs, uint64(rounds/10), "many segments")
		require.Greater(t, maxLive, 4, "entries spanned many segments")
	}
}

// TestIndexMemoryReleased checks that deleting a prefix or a suffix gives
// back the index memory of the deleted entries, and that the index costs
// about 4 bytes an entry.
func TestIndexMemoryReleased(t *testing.T) {
	l, err := Open(testDir, Options{SegmentSize: 1 << 20, Align: 512, Logger: quiet, fs: newMem()})
	require.NoError(t, err)
	defer l.Close()
	const n = 100_000
	logs := make([]*raft.Log, 100)
	for i := 0; i < n; i += len(logs) {
		for j := range logs {
			logs[j] = &raft.Log{Index: uint64(i + j + 1), Term: 1}
		}
		require.NoError(t, l.StoreLogs(logs))
	}
	full := indexBytes(l)
	t.Logf("%d entries in %d segments: index %d bytes, %.2f bytes/entry", n, len(l.segs), full, float64(full)/n)
	require.Less(t, full, n*9/2, "about 4 bytes an entry")

	// A prefix inside a segment, then across segments.
	require.NoError(t, l.DeleteRange(1, 10))
	require.Less(t, indexBytes(l), full)
	require.NoError(t, l.DeleteRange(1, n/4*3))
	checkIndex(t, l)
	prefix := indexBytes(l)
	t.Logf("after deleting 3/4: %d bytes", prefix)
	require.Less(t, prefix, full/4+full/16)

	// A suffix inside the active segment, then across segments.
	require.NoError(t, l.DeleteRange(n-100, n))
	require.NoError(t, l.DeleteRange(n/8*7+1, n))
	checkIndex(t, l)
	suffix := indexBytes(l)
	t.Logf("after deleting half the rest: %d bytes", suffix)
	require.Less(t, suffix, full/8+full/16)

	require.NoError(t, l.DeleteRange(0, n))
	require.Zero(t, indexBytes(l)-8*cap(l.live))
}

// TestSegIndexWide checks a segment index past 4 GiB, where offsets no
// longer fit in 32 bits.
func TestSegIndexWide(t *testing.T) {
	x := segIndex{first: 10}
	offs := []int64{0, 100, 1<<32 - 200, 1<<32 - 1, 1 << 32, 5 << 32}
	for _, o := range offs {
		x.push(o)
	}
	x.tail = 5<<32 + 50
	require.NotNil(t, x.wide)
	require.Nil(t, x.offs)
	require.Equal(t, len(offs), x.len())
	for i, o := range offs {
		require.Equal(t, o, x.at(i))
	}
	off, lim := x.extent(3)
	require.Equal(t, int64(1<<32-1), off)
	require.Equal(t, int64(1), lim)
	_, lim = x.extent(5)
	require.Equal(t, int64(50), lim)
	x.truncate(4)
	require.Equal(t, int64(1<<32), x.tail)
	x.dropFront(1)
	x.fit()
	require.Equal(t, uint64(11), x.first)
	require.Equal(t, []int64{100, 1<<32 - 200, 1<<32 - 1}, x.wide)
	require.Equal(t, 3*8, x.bytes())
	x.reset()
	require.Zero(t, x.len())
	require.Zero(t, x.bytes())
}
