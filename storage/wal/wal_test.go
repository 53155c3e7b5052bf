package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

const testDir = "/wal"

// memOptions are small segments on fsys, padded to MemFS's sectors.
func memOptions(fsys vfs.FS) Options {
	return Options{SegmentSize: 4096, Align: 512, Logger: quiet, fs: fsys}
}

// model is the log a test expects.
type model struct {
	first uint64
	ents  []raft.Log
}

func (m *model) last() uint64 {
	if len(m.ents) == 0 {
		return 0
	}
	return m.first + uint64(len(m.ents)) - 1
}

func (m *model) clone() model {
	return model{first: m.first, ents: append([]raft.Log(nil), m.ents...)}
}

func (m *model) append(logs []*raft.Log) {
	if len(m.ents) == 0 {
		m.first = logs[0].Index
	}
	for _, e := range logs {
		m.ents = append(m.ents, *e)
	}
}

func (m *model) deleteRange(lo, hi uint64) {
	if len(m.ents) == 0 || lo > m.last() || hi < m.first {
		return
	}
	switch {
	case lo <= m.first && hi >= m.last():
		m.ents, m.first = nil, 0
	case lo <= m.first:
		m.ents = m.ents[hi+1-m.first:]
		m.first = hi + 1
	default:
		m.ents = m.ents[:lo-m.first]
	}
}

// entries returns n entries following m, with random data.
func (m *model) entries(rng *rand.Rand, n int, maxData int) []*raft.Log {
	next := m.last() + 1
	if len(m.ents) == 0 {
		next = 1
	}
	logs := make([]*raft.Log, n)
	for i := range logs {
		data := make([]byte, rng.IntN(maxData+1))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		logs[i] = &raft.Log{Index: next + uint64(i), Term: uint64(rng.IntN(5) + 1), Type: raft.LogType(rng.IntN(3)), Data: data}
	}
	return logs
}

// diff returns how the store's contents differ from m, or "".
func diff(l *Log, m *model) string {
	first, err := l.FirstIndex()
	if err != nil {
		return err.Error()
	}
	last, err := l.LastIndex()
	if err != nil {
		return err.Error()
	}
	if first != m.first || last != m.last() {
		return fmt.Sprintf("range [%d, %d], want [%d, %d]", first, last, m.first, m.last())
	}
	for i, want := range m.ents {
		var got raft.Log
		if err := l.GetLog(m.first+uint64(i), &got); err != nil {
			return fmt.Sprintf("GetLog(%d): %v", m.first+uint64(i), err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || string(got.Data) != string(want.Data) {
			return fmt.Sprintf("entry %d = %+v, want %+v", want.Index, got, want)
		}
	}
	if len(m.ents) > 0 {
		var got raft.Log
		for _, idx := range []uint64{m.first - 1, m.last() + 1} {
			if err := l.GetLog(idx, &got); !errors.Is(err, raft.ErrLogNotFound) {
				return fmt.Sprintf("GetLog(%d) outside the log: %v", idx, err)
			}
		}
	}
	return ""
}

func requireLog(t *testing.T, l *Log, m *model) {
	t.Helper()
	require.Empty(t, diff(l, m))
}

func newMem() *vfs.MemFS {
	m := vfs.NewMemFS(512)
	return m
}

func TestAppendGetReopen(t *testing.T) {
	fsys := newMem()
	rng := rand.New(rand.NewPCG(1, 2))
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	var m model
	requireLog(t, l, &m)
	for range 40 {
		logs := m.entries(rng, 1+rng.IntN(5), 300)
		require.NoError(t, l.StoreLogs(logs))
		m.append(logs)
	}
	requireLog(t, l, &m)
	require.Greater(t, len(l.segs), 3, "segments rotated")
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Close(), ErrClosed)
	require.ErrorIs(t, l.StoreLogs(m.entries(rng, 1, 1)), ErrClosed)

	l, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	requireLog(t, l, &m)
	logs := m.entries(rng, 3, 10)
	require.NoError(t, l.StoreLogs(logs))
	m.append(logs)
	requireLog(t, l, &m)
	require.NoError(t, l.Close())
}

func TestStoreLogsChecksIndexes(t *testing.T) {
	l, err := Open(testDir, memOptions(newMem()))
	require.NoError(t, err)
	defer l.Close()
	// An empty log starts anywhere.
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 7, Term: 1}}))
	require.Error(t, l.StoreLogs([]*raft.Log{{Index: 9, Term: 1}}))
	require.Error(t, l.StoreLogs([]*raft.Log{{Index: 8, Term: 1}, {Index: 10, Term: 1}}))
	require.Error(t, l.StoreLogs([]*raft.Log{{Index: 8, Data: make([]byte, defaultMaxEntrySize+1)}}))
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 8, Term: 1}}))
	first, err := l.Append([]*raft.Log{{Term: 2}, {Term: 2}})
	require.NoError(t, err)
	require.EqualValues(t, 9, first)
	require.NoError(t, l.StoreLogs(nil))
	last, err := l.LastIndex()
	require.NoError(t, err)
	require.EqualValues(t, 10, last)
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Align: 3}, {Align: 1 << 17}, {SegmentSize: 1000}, {SegmentSize: 4096, Align: 2048},
		{SegmentSize: 4097, Align: 2}, {MaxEntrySize: -1}, {MaxEntrySize: 2 << 30},
	} {
		o.fs, o.Logger = newMem(), quiet
		_, err := Open(testDir, o)
		require.Error(t, err, "%+v", o)
	}
}

func TestDeleteRange(t *testing.T) {
	fsys := newMem()
	rng := rand.New(rand.NewPCG(3, 4))
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	var m model
	add := func(n int) {
		for i := 0; i < n; i += 3 {
			logs := m.entries(rng, min(3, n-i), 200)
			require.NoError(t, l.StoreLogs(logs))
			m.append(logs)
		}
	}
	reopen := func() {
		require.NoError(t, l.Close())
		l, err = Open(testDir, memOptions(fsys))
		require.NoError(t, err)
		requireLog(t, l, &m)
	}
	del := func(lo, hi uint64) {
		require.NoError(t, l.DeleteRange(lo, hi))
		m.deleteRange(lo, hi)
		requireLog(t, l, &m)
	}
	add(60)
	del(50, 60) // suffix
	reopen()
	add(10)
	del(1, 20) // prefix
	reopen()
	segs := len(l.segs)
	del(21, 45) // a prefix spanning segments drops them
	require.Less(t, len(l.segs), segs)
	reopen()
	require.Error(t, l.DeleteRange(50, 52), "a gap")
	del(100, 200) // nothing
	del(m.first, m.last())
	reopen()
	requireLog(t, l, &m)
	// Append continues after the deleted entries.
	first, err := l.Append([]*raft.Log{{Term: 9}})
	require.NoError(t, err)
	require.EqualValues(t, 60, first)
	m.append([]*raft.Log{{Index: 60, Term: 9}})
	reopen()
	// StoreLogs may restart an emptied log anywhere.
	del(60, 60)
	logs := []*raft.Log{{Index: 1000, Term: 9}}
	require.NoError(t, l.StoreLogs(logs))
	m.append(logs)
	reopen()
	require.NoError(t, l.Close())
	names, err := fsys.ReadDir(testDir)
	require.NoError(t, err)
	require.LessOrEqual(t, len(names), 3, "dead segments removed: %v", names)
}

func TestConcurrentAppend(t *testing.T) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	const workers, per = 16, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[uint64][]byte{}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() { // reads race with appends
		for {
			select {
			case <-stop:
				return
			default:
			}
			last, err := l.LastIndex()
			if err != nil {
				t.Error(err)
				return
			}
			if last > 0 {
				var e raft.Log
				if err := l.GetLog(last, &e); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				d := []byte(fmt.Sprintf("w%d-%d", w, i))
				idx, err := l.Append([]*raft.Log{{Term: 1, Data: d}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[idx] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	require.Len(t, got, workers*per)
	st := l.Stats()
	require.EqualValues(t, workers*per, st.Entries)
	t.Logf("%d entries in %d batches", st.Entries, st.Batches)
	require.NoError(t, l.Close())
	l, err = Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	defer l.Close()
	for idx, d := range got {
		var e raft.Log
		require.NoError(t, l.GetLog(idx, &e))
		require.Equal(t, d, e.Data)
	}
	last, err := l.LastIndex()
	require.NoError(t, err)
	require.EqualValues(t, workers*per, last)
}

func TestOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	rng := rand.New(rand.NewPCG(5, 6))
	opts := Options{SegmentSize: 64 << 10, Logger: quiet}
	l, err := Open(dir, opts)
	require.NoError(t, err)
	var m model
	for range 30 {
		logs := m.entries(rng, 1+rng.IntN(20), 1000)
		require.NoError(t, l.StoreLogs(logs))
		m.append(logs)
	}
	require.NoError(t, l.DeleteRange(m.last()-5, m.last()))
	m.deleteRange(m.last()-5, m.last())
	require.NoError(t, l.DeleteRange(1, 40))
	m.deleteRange(1, 40)
	require.NoError(t, l.Close())
	l, err = Open(dir, opts)
	require.NoError(t, err)
	requireLog(t, l, &m)
	require.NoError(t, l.Close())
}
