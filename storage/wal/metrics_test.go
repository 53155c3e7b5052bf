package wal

import (
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/internal/vfs"
)

func counterOf(t *testing.T, r *metrics.Recorder, name string, labels ...metrics.Label) uint64 {
	t.Helper()
	v, ok := r.CounterValue(name, labels...)
	require.True(t, ok, "counter %s %v", name, labels)
	return v
}

func gaugeOf(t *testing.T, r *metrics.Recorder, name string) float64 {
	t.Helper()
	v, ok := r.GaugeValue(name)
	require.True(t, ok, "gauge %s", name)
	return v
}

// histOf returns a histogram's count and sum.
func histOf(t *testing.T, r *metrics.Recorder, name string) (uint64, float64) {
	t.Helper()
	n, sum, _, ok := r.HistogramValue(name)
	require.True(t, ok, "histogram %s", name)
	return n, sum
}

// usedBytes is what the size gauge should say: the segments' sizes.
func usedBytes(l *Log) float64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := int64(0)
	for _, s := range l.segs {
		n += s.size
	}
	return float64(n)
}

// requireStatsMatch checks that Stats and the metrics report the same
// counts, and the gauges the segments.
func requireStatsMatch(t *testing.T, l *Log, r *metrics.Recorder) {
	t.Helper()
	st := l.Stats()
	require.Equal(t, st.Batches, counterOf(t, r, "wal_batches"))
	require.Equal(t, st.Entries, counterOf(t, r, "wal_entries"))
	require.Equal(t, st.Syncs, counterOf(t, r, "wal_syncs"))
	n, _ := histOf(t, r, "wal_sync_duration")
	require.Equal(t, st.Syncs, n, "one sync_duration per fsync")
	n, _ = histOf(t, r, "wal_write_duration")
	require.Equal(t, st.Batches, n, "one write_duration per batch")
	l.mu.RLock()
	segs := len(l.segs)
	l.mu.RUnlock()
	require.EqualValues(t, segs, gaugeOf(t, r, "wal_segments"))
	require.Equal(t, usedBytes(l), gaugeOf(t, r, "wal_size"))
}

// Each metric moves when its event happens: a batch, a segment roll, a
// read, each kind of deletion.
func TestMetrics(t *testing.T) {
	fsys := newMem()
	r := metrics.NewRecorder()
	opts := memOptions(fsys)
	opts.Metrics = r
	l, err := Open(testDir, opts)
	require.NoError(t, err)
	requireStatsMatch(t, l, r)
	require.EqualValues(t, 1, gaugeOf(t, r, "wal_segments"))
	require.EqualValues(t, 1, counterOf(t, r, "wal_syncs"), "the new segment's")
	require.Zero(t, counterOf(t, r, "wal_batches"))
	require.Greater(t, gaugeOf(t, r, "wal_recovery_duration"), 0.0)
	require.Zero(t, counterOf(t, r, "wal_torn_tails"))

	// One batch of three entries: one write and one fsync.
	size := gaugeOf(t, r, "wal_size")
	require.NoError(t, l.StoreLogs([]*raft.Log{
		{Index: 1, Term: 1, Data: []byte("one")}, {Index: 2, Term: 1, Data: []byte("two")}, {Index: 3, Term: 1},
	}))
	require.EqualValues(t, 1, counterOf(t, r, "wal_batches"))
	require.EqualValues(t, 3, counterOf(t, r, "wal_entries"))
	require.EqualValues(t, 2, counterOf(t, r, "wal_syncs"))
	written := counterOf(t, r, "wal_written")
	require.EqualValues(t, 512, written, "three small records, padded to Align")
	require.Equal(t, size+float64(written), gaugeOf(t, r, "wal_size"))
	n, sum := histOf(t, r, "wal_write_duration")
	require.EqualValues(t, 1, n)
	require.Greater(t, sum, 0.0)
	n, sum = histOf(t, r, "wal_sync_duration")
	require.EqualValues(t, 2, n)
	require.Greater(t, sum, 0.0)
	n, sum = histOf(t, r, "wal_batch_entries")
	require.EqualValues(t, 1, n)
	require.Equal(t, 3.0, sum)
	requireStatsMatch(t, l, r)

	var e raft.Log
	require.NoError(t, l.GetLog(2, &e))
	require.NoError(t, l.GetLog(3, &e))
	require.ErrorIs(t, l.GetLog(9, &e), raft.ErrLogNotFound)
	require.EqualValues(t, 2, counterOf(t, r, "wal_reads"))
	require.Zero(t, counterOf(t, r, "wal_corrupt_reads"))

	// Segment rolls: the gauge follows the segment files.
	next := uint64(4)
	for len(l.segs) < 4 {
		before := len(l.segs)
		require.NoError(t, l.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: make([]byte, 700)}}))
		next++
		require.EqualValues(t, len(l.segs), gaugeOf(t, r, "wal_segments"))
		if len(l.segs) > before {
			requireStatsMatch(t, l, r)
		}
	}
	require.EqualValues(t, next-1, counterOf(t, r, "wal_entries"))
	n, sum = histOf(t, r, "wal_batch_entries")
	require.EqualValues(t, next-3, n) // the first batch held 3
	require.EqualValues(t, next-1, sum)
	requireStatsMatch(t, l, r)

	// A prefix deletion up to the last segment drops the others.
	kind := func(k string) metrics.Label { return metrics.Label{Name: "kind", Value: k} }
	l.mu.RLock()
	lastFirst := l.live[len(l.live)-1].ix.first
	l.mu.RUnlock()
	size = gaugeOf(t, r, "wal_size")
	require.NoError(t, l.DeleteRange(1, lastFirst-1))
	require.EqualValues(t, 1, counterOf(t, r, "wal_deletes", kind("prefix")))
	require.Zero(t, counterOf(t, r, "wal_deletes", kind("suffix")))
	require.EqualValues(t, 1, gaugeOf(t, r, "wal_segments"))
	require.Less(t, gaugeOf(t, r, "wal_size"), size)
	requireStatsMatch(t, l, r)

	// A suffix deletion (a truncation), then everything.
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: next, Term: 1}, {Index: next + 1, Term: 1}}))
	next += 2
	require.NoError(t, l.DeleteRange(next-1, next-1))
	require.EqualValues(t, 1, counterOf(t, r, "wal_deletes", kind("suffix")))
	require.NoError(t, l.DeleteRange(0, next))
	require.EqualValues(t, 1, counterOf(t, r, "wal_deletes", kind("all")))
	require.NoError(t, l.DeleteRange(0, next), "nothing left to delete")
	require.EqualValues(t, 1, counterOf(t, r, "wal_deletes", kind("all")))
	requireStatsMatch(t, l, r)
	require.Zero(t, counterOf(t, r, "wal_failures"))
	require.NoError(t, l.Close())
	require.NoError(t, r.Err())
}

// A torn tail truncated by recovery is counted.
func TestMetricsTornTail(t *testing.T) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}))
	seg := l.segs[len(l.segs)-1]
	_, err = seg.f.WriteAt(finishBatch(appendEntry(nil, 2, 1, 0, []byte("torn")), seg.size, 1, 512), seg.size)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	r := metrics.NewRecorder()
	opts := memOptions(fsys.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage, KeepPercent: 100, Seed: 1}))
	opts.Metrics = r
	l, err = Open(testDir, opts)
	require.NoError(t, err)
	require.EqualValues(t, 1, counterOf(t, r, "wal_torn_tails"))
	requireStatsMatch(t, l, r)
	require.NoError(t, l.Close())
	require.NoError(t, r.Err())
}

// A failed fsync stops the store: counted once, however many calls fail
// after it.
func TestMetricsFailure(t *testing.T) {
	ff := vfs.NewFaultFS(newMem())
	r := metrics.NewRecorder()
	opts := memOptions(ff)
	opts.Metrics = r
	l, err := Open(testDir, opts)
	require.NoError(t, err)
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 1, Term: 1}}))
	ff.FailNth(vfs.OpSync, 1)
	require.ErrorIs(t, l.StoreLogs([]*raft.Log{{Index: 2, Term: 1}}), ErrFailed)
	require.ErrorIs(t, l.StoreLogs([]*raft.Log{{Index: 2, Term: 1}}), ErrFailed)
	require.EqualValues(t, 1, counterOf(t, r, "wal_failures"))
	require.EqualValues(t, 1, counterOf(t, r, "wal_entries"), "the failed batch's entries are not counted")
	require.NoError(t, l.Close())
	require.NoError(t, r.Err())
}

// A record rotting after Open is counted when GetLog finds it.
func TestMetricsCorruptRead(t *testing.T) {
	fsys, _, _ := bitRotLog(t)
	r := metrics.NewRecorder()
	opts := memOptions(fsys)
	opts.Metrics = r
	l, err := Open(testDir, opts)
	require.NoError(t, err)
	defer l.Close()
	name, off, n := recordOf(t, l, 1)
	xorByte(t, fsys, name, off+n-1, 0x10)
	var e raft.Log
	require.ErrorIs(t, l.GetLog(1, &e), ErrCorrupt)
	require.NoError(t, l.GetLog(2, &e))
	require.EqualValues(t, 1, counterOf(t, r, "wal_corrupt_reads"))
	require.EqualValues(t, 1, counterOf(t, r, "wal_reads"))
	require.NoError(t, r.Err())
}

// requireNoInstruments checks that every instrument in v, a struct, is nil.
func requireNoInstruments(t *testing.T, v reflect.Value) {
	t.Helper()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Interface:
			require.True(t, f.IsNil(), "%s", v.Type().Field(i).Name)
		case reflect.Array:
			for j := range f.Len() {
				require.True(t, f.Index(j).IsNil(), "%s[%d]", v.Type().Field(i).Name, j)
			}
		case reflect.Struct:
			requireNoInstruments(t, f)
		}
	}
}

// Without a Sink no instrument exists, Stats still counts, and the same
// work allocates no more with a Sink than without.
func TestMetricsNil(t *testing.T) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	requireNoInstruments(t, reflect.ValueOf(l.m).Elem())
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 1, Term: 1}, {Index: 2, Term: 1}}))
	require.Equal(t, Stats{Entries: 2, Batches: 1, Syncs: 2}, l.Stats())
	require.NoError(t, l.Close())

	s, err := openStable(newMem(), stablePath, StableOptions{})
	require.NoError(t, err)
	require.Nil(t, s.writes)
	require.Nil(t, s.failures)
	require.Nil(t, s.writeTime)
	require.NoError(t, s.Close())

	allocs := func(sink metrics.Sink) (appendAllocs, getAllocs float64) {
		l, err := Open(filepath.Join(t.TempDir(), "wal"), Options{Logger: quiet, Metrics: sink})
		require.NoError(t, err)
		defer l.Close()
		e := []*raft.Log{{Term: 1, Data: make([]byte, 128)}}
		_, err = l.Append(e)
		require.NoError(t, err)
		appendAllocs = testing.AllocsPerRun(50, func() {
			if _, err := l.Append(e); err != nil {
				t.Fatal(err)
			}
		})
		var got raft.Log
		getAllocs = testing.AllocsPerRun(50, func() {
			if err := l.GetLog(1, &got); err != nil {
				t.Fatal(err)
			}
		})
		return appendAllocs, getAllocs
	}
	r := metrics.NewRecorder()
	offAppend, offGet := allocs(nil)
	onAppend, onGet := allocs(r)
	require.LessOrEqual(t, onAppend, offAppend, "allocations per Append with metrics")
	require.LessOrEqual(t, onGet, offGet, "allocations per GetLog with metrics")
	require.NoError(t, r.Err())
}

func TestStableMetrics(t *testing.T) {
	ff := vfs.NewFaultFS(newMem())
	r := metrics.NewRecorder()
	s, err := openStable(ff, stablePath, StableOptions{Metrics: r})
	require.NoError(t, err)
	require.NoError(t, s.SetUint64([]byte("term"), 1))
	require.NoError(t, s.Set([]byte("vote"), []byte("a")))
	require.EqualValues(t, 2, counterOf(t, r, "wal_stable_writes"))
	n, sum := histOf(t, r, "wal_stable_write_duration")
	require.EqualValues(t, 2, n)
	require.Greater(t, sum, 0.0)
	require.Zero(t, counterOf(t, r, "wal_stable_failures"))

	ff.FailNth(vfs.OpRename, 1)
	require.ErrorIs(t, s.SetUint64([]byte("term"), 2), ErrFailed)
	require.ErrorIs(t, s.SetUint64([]byte("term"), 3), ErrFailed)
	require.EqualValues(t, 2, counterOf(t, r, "wal_stable_writes"))
	require.EqualValues(t, 1, counterOf(t, r, "wal_stable_failures"))
	require.NoError(t, s.Close())
	require.NoError(t, r.Err())
}

// Concurrent appenders, readers and prefix deletions report without races,
// and the group commit shows in batch_entries.
func TestMetricsConcurrent(t *testing.T) {
	r := metrics.NewRecorder()
	opts := memOptions(newMem())
	opts.Metrics = r
	l, err := Open(testDir, opts)
	require.NoError(t, err)
	const workers, per = 8, 40
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range per {
				if _, err := l.Append([]*raft.Log{{Term: 1, Data: make([]byte, 100)}}); err != nil {
					t.Error(err)
					return
				}
				var e raft.Log
				if last, _ := l.LastIndex(); last > 0 {
					_ = l.GetLog(last, &e)
				}
			}
		})
	}
	wg.Go(func() {
		for i := uint64(10); i < workers*per/2; i += 10 {
			if err := l.DeleteRange(0, i); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	requireStatsMatch(t, l, r)
	n, sum := histOf(t, r, "wal_batch_entries")
	require.EqualValues(t, workers*per, sum)
	require.LessOrEqual(t, n, uint64(workers*per))
	require.NoError(t, l.Close())
	require.NoError(t, r.Err())
}
