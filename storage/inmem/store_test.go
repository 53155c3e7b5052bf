package inmem

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// entries returns entries lo..hi with Term and Data derived from the index,
// so that a test can tell whether the right entry came back.
func entries(lo, hi uint64) []*raft.Log {
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: i * 10, Type: raft.LogCommand, Data: []byte(fmt.Sprint("cmd", i))})
	}
	return logs
}

func batch(idx ...uint64) []*raft.Log {
	var logs []*raft.Log
	for _, i := range idx {
		logs = append(logs, &raft.Log{Index: i, Term: i * 10, Data: []byte(fmt.Sprint("cmd", i))})
	}
	return logs
}

// requireRange checks that s holds exactly the entries first..last, as built
// by entries, and nothing around them.
func requireRange(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	require.NoError(t, err)
	l, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, first, f, "FirstIndex")
	require.Equal(t, last, l, "LastIndex")
	var log raft.Log
	if first == 0 {
		for _, i := range []uint64{0, 1, 2} {
			require.ErrorIs(t, s.GetLog(i, &log), raft.ErrLogNotFound)
		}
		return
	}
	for i := first; i <= last; i++ {
		require.NoError(t, s.GetLog(i, &log), "GetLog(%d)", i)
		require.Equal(t, raft.Log{Index: i, Term: i * 10, Data: []byte(fmt.Sprint("cmd", i))}, log)
	}
	require.Equal(t, raft.ErrLogNotFound, s.GetLog(first-1, &log), "GetLog below first")
	require.Equal(t, raft.ErrLogNotFound, s.GetLog(last+1, &log), "GetLog above last")
}

func mustStore(t *testing.T, s *Store, logs []*raft.Log) {
	t.Helper()
	require.NoError(t, s.StoreLogs(logs))
}

func TestEmptyStore(t *testing.T) {
	s := NewStore()
	requireRange(t, s, 0, 0)
	var log raft.Log
	require.Equal(t, raft.ErrLogNotFound, s.GetLog(^uint64(0), &log))
}

func TestStoreLogs(t *testing.T) {
	tests := []struct {
		name        string
		before      [][]*raft.Log
		batch       []*raft.Log
		err         string // substring of the expected error; "" for success
		first, last uint64 // range after the call
	}{
		{name: "empty store from 1", batch: entries(1, 3), first: 1, last: 3},
		{name: "empty store after a snapshot", batch: entries(100, 102), first: 100, last: 102},
		{name: "single entry", batch: entries(7, 7), first: 7, last: 7},
		{name: "append follows last", before: [][]*raft.Log{entries(1, 3)}, batch: entries(4, 6), first: 1, last: 6},
		{name: "empty batch", before: [][]*raft.Log{entries(1, 3)}, batch: nil, first: 1, last: 3},
		{name: "empty batch on empty store", batch: []*raft.Log{}},
		{
			name: "gap after last", before: [][]*raft.Log{entries(1, 5)}, batch: entries(7, 8),
			err: "inmem: StoreLogs: entry 7 does not follow last index 5", first: 1, last: 5,
		},
		{
			name: "overlaps last", before: [][]*raft.Log{entries(1, 5)}, batch: entries(5, 6),
			err: "entry 5 does not follow last index 5", first: 1, last: 5,
		},
		{
			name: "rewinds", before: [][]*raft.Log{entries(1, 5)}, batch: entries(2, 3),
			err: "entry 2 does not follow last index 5", first: 1, last: 5,
		},
		{
			name: "gap inside batch", batch: batch(1, 2, 4),
			err: "entry 4 does not follow entry 2 in the batch",
		},
		{
			name: "gap inside batch after last", before: [][]*raft.Log{entries(1, 3)}, batch: batch(4, 5, 7),
			err: "entry 7 does not follow entry 5 in the batch", first: 1, last: 3,
		},
		{
			name: "duplicate inside batch", batch: batch(1, 2, 2),
			err: "entry 2 does not follow entry 2 in the batch",
		},
		{
			name: "descending batch", batch: batch(3, 2, 1),
			err: "entry 2 does not follow entry 3 in the batch",
		},
		{name: "index 0", batch: batch(0, 1), err: "indexes start at 1"},
		{
			name: "nil entry", before: [][]*raft.Log{entries(1, 2)}, batch: []*raft.Log{entries(3, 3)[0], nil},
			err: "entry 1 of the batch is nil", first: 1, last: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			for _, b := range tt.before {
				mustStore(t, s, b)
			}
			err := s.StoreLogs(tt.batch)
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.err)
			}
			// A rejected batch must leave no trace, not even its valid head.
			requireRange(t, s, tt.first, tt.last)
			if tt.err != "" {
				// A rejected call is not a disk failure: the store goes on.
				require.NoError(t, s.Set([]byte("k"), []byte("v")))
			}
		})
	}
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		err         string
		first, last uint64 // range after the call; the store holds 10..20 before
	}{
		{name: "exact prefix", min: 10, max: 14, first: 15, last: 20},
		{name: "prefix from below first", min: 1, max: 12, first: 13, last: 20},
		{name: "prefix from 0", min: 0, max: 10, first: 11, last: 20},
		{name: "exact suffix", min: 16, max: 20, first: 10, last: 15},
		{name: "suffix beyond last", min: 18, max: 1000, first: 10, last: 17},
		{name: "last entry", min: 20, max: 20, first: 10, last: 19},
		{name: "everything", min: 10, max: 20},
		{name: "everything and more", min: 1, max: ^uint64(0)},
		{name: "up to a snapshot beyond last", min: 10, max: 50},
		{name: "below first", min: 1, max: 9, first: 10, last: 20},
		{name: "above last", min: 21, max: 30, first: 10, last: 20},
		{name: "hole", min: 12, max: 15, err: "inmem: DeleteRange: [12, 15] would leave a hole in [10, 20]", first: 10, last: 20},
		{name: "one-entry hole", min: 11, max: 11, err: "would leave a hole", first: 10, last: 20},
		{name: "min above max", min: 15, max: 12, err: "inmem: DeleteRange: min 15 is above max 12", first: 10, last: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			mustStore(t, s, entries(10, 20))
			err := s.DeleteRange(tt.min, tt.max)
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.err)
			}
			requireRange(t, s, tt.first, tt.last)
		})
	}
}

func TestDeleteRangeOnEmptyStore(t *testing.T) {
	s := NewStore()
	require.NoError(t, s.DeleteRange(1, 10))
	requireRange(t, s, 0, 0)
	require.ErrorContains(t, s.DeleteRange(2, 1), "min 2 is above max 1")
}

func TestAppendAfterDeletion(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		next        []*raft.Log
		err         string
		first, last uint64
	}{
		// Emptied, the store takes a log restarting after a snapshot,
		// whether above or below where the old one ended.
		{name: "emptied restarts above", min: 1, max: 10, next: entries(50, 52), first: 50, last: 52},
		{name: "emptied restarts below", min: 1, max: 10, next: entries(3, 4), first: 3, last: 4},
		{name: "emptied by snapshot past last", min: 1, max: 30, next: entries(31, 32), first: 31, last: 32},
		{name: "after prefix", min: 1, max: 5, next: entries(11, 12), first: 6, last: 12},
		{name: "after prefix, gap", min: 1, max: 5, next: entries(12, 12), err: "entry 12 does not follow last index 10", first: 6, last: 10},
		// A conflicting tail is replaced by the leader's entries.
		{name: "after suffix", min: 6, max: 10, next: entries(6, 8), first: 1, last: 8},
		{name: "after suffix, old last", min: 6, max: 10, next: entries(11, 11), err: "entry 11 does not follow last index 5", first: 1, last: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			mustStore(t, s, entries(1, 10))
			require.NoError(t, s.DeleteRange(tt.min, tt.max))
			err := s.StoreLogs(tt.next)
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.err)
			}
			requireRange(t, s, tt.first, tt.last)
		})
	}
}

// TestPrefixDeletionReleasesMemory checks, white box, that a log truncated
// after every snapshot does not keep its dead prefix alive forever.
func TestPrefixDeletionReleasesMemory(t *testing.T) {
	t.Run("one big prefix", func(t *testing.T) {
		s := NewStore()
		mustStore(t, s, entries(1, 10000))
		require.NoError(t, s.DeleteRange(1, 9990))
		requireRange(t, s, 9991, 10000)
		require.LessOrEqual(t, cap(s.buf), 2*minCompact, "the 10000-entry buffer is still held")
	})
	t.Run("sliding window", func(t *testing.T) {
		// Appending and truncating one entry at a time never empties the
		// store, so only compaction can bound the buffer.
		s := NewStore()
		mustStore(t, s, entries(1, 10))
		for i := uint64(11); i <= 100000; i++ {
			mustStore(t, s, entries(i, i))
			require.NoError(t, s.DeleteRange(i-10, i-10))
			require.LessOrEqual(t, cap(s.buf), 4*minCompact, "at index %d", i)
		}
		requireRange(t, s, 99991, 100000)
	})
	t.Run("dead entries are zeroed", func(t *testing.T) {
		// Until the buffer is compacted, its dead prefix must not pin the
		// entries' Data.
		s := NewStore()
		mustStore(t, s, entries(1, 10))
		require.NoError(t, s.DeleteRange(1, 3))
		for _, l := range s.buf[:s.head] {
			require.Zero(t, l)
		}
		require.NoError(t, s.DeleteRange(9, 10))
		for _, l := range s.buf[len(s.buf):cap(s.buf)] {
			require.Zero(t, l)
		}
		requireRange(t, s, 4, 8)
	})
}

func TestLogsNotAliased(t *testing.T) {
	s := NewStore()
	logs := entries(1, 3)
	mustStore(t, s, logs)
	// The caller reuses its slice and its Log structs for the next batch.
	logs[0].Index, logs[0].Term, logs[0].Data = 99, 99, nil
	logs[1] = &raft.Log{Index: 98}
	requireRange(t, s, 1, 3)

	var got raft.Log
	require.NoError(t, s.GetLog(2, &got))
	got.Term, got.Index = 1234, 1234
	requireRange(t, s, 1, 3)
}

func TestStable(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store)
	}{
		{"Get missing is nil, nil", func(t *testing.T, s *Store) {
			v, err := s.Get([]byte("nope"))
			require.NoError(t, err)
			require.Nil(t, v)
		}},
		{"GetUint64 missing is 0, nil", func(t *testing.T, s *Store) {
			v, err := s.GetUint64([]byte("nope"))
			require.NoError(t, err)
			require.Zero(t, v)
		}},
		{"Set then Get", func(t *testing.T, s *Store) {
			require.NoError(t, s.Set([]byte("a"), []byte("1")))
			require.NoError(t, s.Set([]byte("b"), []byte("2")))
			requireGet(t, s, "a", "1")
			requireGet(t, s, "b", "2")
		}},
		{"Set overwrites", func(t *testing.T, s *Store) {
			require.NoError(t, s.Set([]byte("a"), []byte("1")))
			require.NoError(t, s.Set([]byte("a"), []byte("22")))
			requireGet(t, s, "a", "22")
		}},
		{"empty value is kept", func(t *testing.T, s *Store) {
			require.NoError(t, s.Set([]byte("a"), []byte{}))
			v, err := s.Get([]byte("a"))
			require.NoError(t, err)
			require.NotNil(t, v)
			require.Empty(t, v)
		}},
		{"SetUint64 then GetUint64", func(t *testing.T, s *Store) {
			for _, v := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
				require.NoError(t, s.SetUint64([]byte("term"), v))
				got, err := s.GetUint64([]byte("term"))
				require.NoError(t, err)
				require.Equal(t, v, got)
			}
		}},
		{"uint64 keys are separate", func(t *testing.T, s *Store) {
			require.NoError(t, s.SetUint64([]byte("term"), 5))
			require.NoError(t, s.SetUint64([]byte("vote"), 7))
			got, err := s.GetUint64([]byte("term"))
			require.NoError(t, err)
			require.Equal(t, uint64(5), got)
		}},
		{"GetUint64 of a Set value of another length", func(t *testing.T, s *Store) {
			require.NoError(t, s.Set([]byte("term"), []byte("abc")))
			_, err := s.GetUint64([]byte("term"))
			require.ErrorContains(t, err, `inmem: GetUint64: value under key "term" is 3 bytes, not 8`)
		}},
		{"Set copies the value", func(t *testing.T, s *Store) {
			val := []byte("abc")
			require.NoError(t, s.Set([]byte("a"), val))
			val[0] = 'X'
			requireGet(t, s, "a", "abc")
		}},
		{"Set copies the key", func(t *testing.T, s *Store) {
			key := []byte("a")
			require.NoError(t, s.Set(key, []byte("1")))
			key[0] = 'b'
			requireGet(t, s, "a", "1")
		}},
		{"Get returns a copy", func(t *testing.T, s *Store) {
			require.NoError(t, s.Set([]byte("a"), []byte("abc")))
			v, err := s.Get([]byte("a"))
			require.NoError(t, err)
			v[0] = 'X'
			requireGet(t, s, "a", "abc")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, NewStore()) })
	}
}

func requireGet(t *testing.T, s *Store, key, want string) {
	t.Helper()
	v, err := s.Get([]byte(key))
	require.NoError(t, err)
	require.Equal(t, want, string(v), "key %q", key)
}

// TestConcurrent races appenders, truncators, readers and stable-store writers
// on one Store. Under -race it checks the locking; whatever the schedule, the
// log must stay contiguous and every append must land exactly once.
func TestConcurrent(t *testing.T) {
	const writers, perWriter = 4, 200
	s := NewStore()
	var wg sync.WaitGroup
	stop := make(chan struct{})

	for w := range writers {
		wg.Go(func() {
			// Appends race for the next index; the loser is rejected and
			// retries, which is exactly the atomicity under test. Each
			// rejection means another writer appended meanwhile, so more
			// rejections than the others' appends means a broken store, not
			// bad luck, and stops the test rather than spinning forever.
			rejections := 0
			for i := range perWriter {
				for {
					last, err := s.LastIndex()
					if !assert.NoError(t, err) {
						return
					}
					if s.StoreLogs(entries(last+1, last+1)) == nil {
						break
					}
					if rejections++; rejections > (writers-1)*perWriter {
						assert.Fail(t, "appends keep being rejected")
						return
					}
				}
				key := []byte(fmt.Sprint("w", w))
				assert.NoError(t, s.SetUint64(key, uint64(i)))
				assert.NoError(t, s.Set([]byte("shared"), key))
			}
		})
	}
	readers := sync.WaitGroup{}
	for range 2 {
		readers.Go(func() {
			var log raft.Log
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				for i := first; i <= last && i != 0; i++ {
					// A truncator may have removed i meanwhile; what is
					// returned must still be entry i.
					if err := s.GetLog(i, &log); err == nil {
						assert.Equal(t, i, log.Index)
						assert.Equal(t, i*10, log.Term)
					}
				}
				_, err := s.Get([]byte("shared"))
				assert.NoError(t, err)
				_ = s.Stats()
			}
		})
	}
	readers.Go(func() {
		// Truncate a prefix now and then, as after snapshots.
		for {
			select {
			case <-stop:
				return
			default:
			}
			last, _ := s.LastIndex()
			if last > 20 {
				assert.NoError(t, s.DeleteRange(0, last-20))
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()

	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(writers*perWriter), last)
	first, err := s.FirstIndex()
	require.NoError(t, err)
	requireRange(t, s, first, last)
	require.Equal(t, StoreStats{StoreLogsCalls: writers * perWriter, LogsStored: writers * perWriter}, s.Stats())
	for w := range writers {
		v, err := s.GetUint64([]byte(fmt.Sprint("w", w)))
		require.NoError(t, err)
		require.Equal(t, uint64(perWriter-1), v)
	}
}

var errDisk = errors.New("disk on fire")

// failAt fails the n-th call of op.
func failAt(op Op, n int) func(Op, int) error {
	return func(o Op, i int) error {
		if o == op && i == n {
			return errDisk
		}
		return nil
	}
}

func TestFailWhen(t *testing.T) {
	writes := map[string]func(s *Store) error{
		"StoreLogs": func(s *Store) error {
			last, _ := s.LastIndex()
			return s.StoreLogs(entries(last+1, last+2))
		},
		"DeleteRange": func(s *Store) error {
			last, _ := s.LastIndex()
			return s.DeleteRange(last, last)
		},
		"Set":       func(s *Store) error { return s.Set([]byte("k"), []byte("new")) },
		"SetUint64": func(s *Store) error { return s.SetUint64([]byte("n"), 42) },
	}
	ops := map[string]Op{"StoreLogs": OpStoreLogs, "DeleteRange": OpDeleteRange, "Set": OpSet, "SetUint64": OpSet}

	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			s := NewStore()
			mustStore(t, s, entries(1, 10))
			require.NoError(t, s.Set([]byte("k"), []byte("old")))
			require.NoError(t, s.SetUint64([]byte("n"), 1))
			// The set-up writes above counted as calls; a crashed copy
			// starts counting afresh, so the hook sees n = 1 first.
			s = s.Crash()
			var seen []int
			s.FailWhen(func(op Op, n int) error {
				if op == ops[name] {
					seen = append(seen, n)
				}
				return failAt(ops[name], 2)(op, n)
			})

			require.NoError(t, write(s), "first call")
			before := s.Crash()
			err := write(s)
			require.ErrorIs(t, err, errDisk)
			require.ErrorContains(t, err, "inmem: "+ops[name].String()+": disk on fire")
			require.Equal(t, []int{1, 2}, seen)
			// The failed call stored nothing.
			requireSameState(t, before, s)

			// Fail-stop: every later write fails, even after the hook is
			// gone, and stores nothing; reads still work.
			s.FailWhen(nil)
			for other, w := range writes {
				err := w(s)
				require.ErrorIs(t, err, ErrFailed, other)
				require.ErrorIs(t, err, errDisk, "the cause is kept: %s", other)
				require.ErrorContains(t, err, "inmem: "+ops[other].String()+": store failed")
			}
			requireSameState(t, before, s)
			var log raft.Log
			first, _ := s.FirstIndex()
			require.NoError(t, s.GetLog(first, &log))
		})
	}
}

func TestFailWhenCountsPerOp(t *testing.T) {
	s := NewStore()
	type call struct {
		op Op
		n  int
	}
	var calls []call
	s.FailWhen(func(op Op, n int) error {
		calls = append(calls, call{op, n})
		return nil
	})
	mustStore(t, s, entries(1, 1))
	require.NoError(t, s.Set([]byte("a"), nil))
	require.Error(t, s.StoreLogs(entries(5, 5))) // rejected, but still a call
	require.NoError(t, s.SetUint64([]byte("a"), 1))
	require.NoError(t, s.DeleteRange(1, 1))
	mustStore(t, s, entries(3, 3))
	require.Equal(t, []call{
		{OpStoreLogs, 1}, {OpSet, 1}, {OpStoreLogs, 2}, {OpSet, 2}, {OpDeleteRange, 1}, {OpStoreLogs, 3},
	}, calls)

	// Clearing the hook before any failure lets writes through again.
	s.FailWhen(func(Op, int) error { return errDisk })
	s.FailWhen(nil)
	mustStore(t, s, entries(4, 4))
	requireRange(t, s, 3, 4)
}

// requireSameState checks that two stores hold the same log and values.
func requireSameState(t *testing.T, want, got *Store) {
	t.Helper()
	want.mu.RLock()
	defer want.mu.RUnlock()
	got.mu.RLock()
	defer got.mu.RUnlock()
	require.Equal(t, want.buf[want.head:], got.buf[got.head:])
	require.Equal(t, want.lastLocked(), got.lastLocked())
	if want.lastLocked() != 0 {
		require.Equal(t, want.first, got.first)
	}
	require.Equal(t, want.kv, got.kv)
}

// TestCrash runs a random-free but varied history of writes, some failing,
// and checks that Crash keeps exactly what returned nil.
func TestCrash(t *testing.T) {
	for failAtCall := 1; failAtCall <= 12; failAtCall++ {
		t.Run(fmt.Sprint("fail write ", failAtCall), func(t *testing.T) {
			s := NewStore()
			calls := 0
			s.FailWhen(func(Op, int) error {
				calls++
				if calls == failAtCall {
					return errDisk
				}
				return nil
			})
			// model is what the writes that returned nil amount to.
			var modelFirst, modelLast uint64
			model := map[string]string{}
			history := []func() error{
				func() error { return s.StoreLogs(entries(1, 5)) },
				func() error { return s.Set([]byte("a"), []byte("1")) },
				func() error { return s.StoreLogs(entries(6, 8)) },
				func() error { return s.DeleteRange(7, 8) },
				func() error { return s.SetUint64([]byte("term"), 3) },
				func() error { return s.StoreLogs(entries(7, 9)) },
				func() error { return s.DeleteRange(1, 4) },
				func() error { return s.Set([]byte("a"), []byte("2")) },
				func() error { return s.StoreLogs(entries(10, 10)) },
				func() error { return s.DeleteRange(0, 10) },
				func() error { return s.StoreLogs(entries(20, 21)) },
			}
			apply := []func(){
				func() { modelFirst, modelLast = 1, 5 },
				func() { model["a"] = "1" },
				func() { modelLast = 8 },
				func() { modelLast = 6 },
				func() { model["term"] = "\x00\x00\x00\x00\x00\x00\x00\x03" },
				func() { modelLast = 9 },
				func() { modelFirst = 5 },
				func() { model["a"] = "2" },
				func() { modelLast = 10 },
				func() { modelFirst, modelLast = 0, 0 },
				func() { modelFirst, modelLast = 20, 21 },
			}
			failed := false
			for i, write := range history {
				err := write()
				if i+1 < failAtCall {
					require.NoError(t, err, "write %d", i+1)
					apply[i]()
				} else {
					require.Error(t, err, "write %d", i+1)
					failed = true
				}
			}
			require.Equal(t, failAtCall <= len(history), failed)

			c := s.Crash()
			requireRange(t, c, modelFirst, modelLast)
			require.Len(t, c.kv, len(model))
			for k, v := range model {
				requireGet(t, c, k, v)
			}
			// The crashed copy is a fresh process: working, no hook, and
			// independent of the original.
			require.Equal(t, StoreStats{}, c.Stats())
			require.NoError(t, c.Set([]byte("a"), []byte("after")))
			require.NoError(t, c.DeleteRange(0, ^uint64(0)))
			require.NoError(t, c.StoreLogs(entries(30, 31)))
			requireRange(t, s, modelFirst, modelLast)
			if v, ok := model["a"]; ok {
				requireGet(t, s, "a", v)
			}
		})
	}
}

func TestCrashCopiesAreIndependent(t *testing.T) {
	s := NewStore()
	mustStore(t, s, entries(1, 5))
	require.NoError(t, s.Set([]byte("a"), []byte("1")))

	// The copy shares no memory the original writes in place.
	c := s.Crash()
	c.buf[0].Term = 999
	c.kv["a"][0] = 'X'
	requireRange(t, s, 1, 5)
	requireGet(t, s, "a", "1")

	c = s.Crash()
	// Writes to the original do not reach the copy...
	mustStore(t, s, entries(6, 7))
	require.NoError(t, s.DeleteRange(1, 2))
	require.NoError(t, s.Set([]byte("a"), []byte("2")))
	requireRange(t, c, 1, 5)
	requireGet(t, c, "a", "1")

	// ...nor the other way.
	require.NoError(t, c.DeleteRange(4, 5))
	mustStore(t, c, batch(4))
	c.buf[len(c.buf)-1].Term = 999
	require.NoError(t, c.Set([]byte("a"), []byte("3")))
	requireRange(t, s, 3, 7)
	requireGet(t, s, "a", "2")
}

func TestStats(t *testing.T) {
	s := NewStore()
	mustStore(t, s, entries(1, 3))
	mustStore(t, s, entries(4, 4))
	mustStore(t, s, nil)
	require.Error(t, s.StoreLogs(entries(9, 9))) // rejected: not counted
	require.NoError(t, s.Set([]byte("a"), nil))
	require.NoError(t, s.DeleteRange(1, 2))
	require.Equal(t, StoreStats{StoreLogsCalls: 3, LogsStored: 4}, s.Stats())

	s.FailWhen(failAt(OpStoreLogs, 5))
	require.Error(t, s.StoreLogs(entries(5, 6))) // failed: not counted
	require.Equal(t, StoreStats{StoreLogsCalls: 3, LogsStored: 4}, s.Stats())
}

func TestOpString(t *testing.T) {
	require.Equal(t, "StoreLogs", OpStoreLogs.String())
	require.Equal(t, "DeleteRange", OpDeleteRange.String())
	require.Equal(t, "Set", OpSet.String())
	require.Equal(t, "Op(9)", Op(9).String())
}

// Stall makes every write hang until released, reads going on meanwhile;
// released writes then take effect as usual.
func TestStall(t *testing.T) {
	s := NewStore()
	require.NoError(t, s.StoreLogs(entries(1, 2)))
	release := s.Stall()
	done := make(chan error, 3)
	go func() { done <- s.StoreLogs(entries(3, 3)) }()
	go func() { done <- s.Set([]byte("k"), []byte("v")) }()
	go func() { done <- s.SetUint64([]byte("n"), 7) }()
	for s.StalledWrites() < 3 {
		runtime.Gosched()
	}
	select {
	case err := <-done:
		t.Fatalf("a write returned while the store was stalled: %v", err)
	default:
	}
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(2), last, "reads work while writes hang")
	v, err := s.Get([]byte("k"))
	require.NoError(t, err)
	require.Nil(t, v)
	require.Equal(t, 0, s.Crash().StalledWrites(), "a crashed copy is not stalled")

	release()
	release() // harmless
	for i := 0; i < 3; i++ {
		require.NoError(t, <-done)
	}
	require.Zero(t, s.StalledWrites())
	last, err = s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(3), last)
	n, err := s.GetUint64([]byte("n"))
	require.NoError(t, err)
	require.Equal(t, uint64(7), n)
	require.NoError(t, s.DeleteRange(1, 1), "writes go through after release")

	// A second stall is a new one.
	release = s.Stall()
	go func() { done <- s.DeleteRange(2, 2) }()
	for s.StalledWrites() < 1 {
		runtime.Gosched()
	}
	release()
	require.NoError(t, <-done)
}
