package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// faultWorkload opens a log on fsys and runs a deterministic workload of
// appends and truncations until a call fails. It returns the log as of
// the last call that returned nil, the log that the failed call would
// have produced (nil if none failed), and the error.
func faultWorkload(fsys vfs.FS, seed uint64) (acked model, inflight *model, err error) {
	rng := rand.New(rand.NewPCG(seed, 5))
	l, err := Open(testDir, memOptions(fsys))
	if err != nil {
		return model{}, &model{}, err
	}
	defer l.Close()
	for range faultWorkloadOp {
		m := acked.clone()
		var call func() error
		switch r := rng.IntN(10); {
		case r < 7 || len(m.ents) < 4:
			logs := m.entries(rng, 1+rng.IntN(4), 400)
			m.append(logs)
			call = func() error { return l.StoreLogs(logs) }
		case r < 8:
			lo := m.first + 1 + uint64(rng.IntN(len(m.ents)-1))
			m.deleteRange(lo, m.last())
			call = func() error { return l.DeleteRange(lo, lo+100) }
		default:
			hi := m.first + uint64(rng.IntN(len(m.ents)-1))
			m.deleteRange(m.first, hi)
			call = func() error { return l.DeleteRange(0, hi) }
		}
		if err := call(); err != nil {
			// Fail-stop: every later call fails too, and nothing more is
			// acknowledged.
			if !errors.Is(err, ErrFailed) {
				return acked, &m, fmt.Errorf("first error does not wrap ErrFailed: %w", err)
			}
			more := acked.entries(rng, 1, 10)
			if err2 := l.StoreLogs(more); !errors.Is(err2, ErrFailed) {
				return acked, &m, fmt.Errorf("StoreLogs after failure: %v", err2)
			}
			if _, err2 := l.Append(more); !errors.Is(err2, ErrFailed) {
				return acked, &m, fmt.Errorf("Append after failure: %v", err2)
			}
			if err2 := l.DeleteRange(0, 1); !errors.Is(err2, ErrFailed) {
				return acked, &m, fmt.Errorf("DeleteRange after failure: %v", err2)
			}
			var e raft.Log
			if err2 := l.GetLog(acked.first, &e); !errors.Is(err2, ErrFailed) {
				return acked, &m, fmt.Errorf("GetLog after failure: %v", err2)
			}
			return acked, &m, err
		}
		acked = m
	}
	return acked, nil, nil
}

// TestErrorInjection fails, in turn, the Nth write, sync, creation,
// allocation, truncation, removal and directory sync of a workload, for
// every N the workload reaches. The first error must fail the store for
// good (every later call fails), and reopening the disk after a crash
// must recover the acknowledged log, or the log including the failed call
// (whose data may have reached the disk anyway).
func TestErrorInjection(t *testing.T) {
	ops := []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpCreate, vfs.OpAllocate, vfs.OpTruncate, vfs.OpRemove, vfs.OpSyncDir}
	cases := 0
	for _, op := range ops {
		// Count the operations of this kind in a fault-free run.
		probe := vfs.NewFaultFS(newMem())
		_, _, err := faultWorkload(probe, 1)
		require.NoError(t, err)
		n := probe.Count(op)
		for nth := 1; nth <= n; nth++ {
			mem := newMem()
			ff := vfs.NewFaultFS(mem)
			ff.FailNth(op, nth)
			acked, inflight, err := faultWorkload(ff, 1)
			require.Error(t, err, "%s #%d of %d not reached", op, nth, n)
			require.NotErrorIs(t, err, errUnexpected)
			require.Equal(t, 1, ff.Injected())
			for _, co := range []vfs.CrashOptions{{}, {KeepPercent: 100}, {KeepPercent: 50, Tear: vfs.TearGarbage, KeepDirOps: true}} {
				l, err := Open(testDir, memOptions(mem.Crash(co)))
				require.NoError(t, err, "%s #%d", op, nth)
				if d := diff(l, &acked); d != "" {
					require.Empty(t, diff(l, inflight), "%s #%d, %+v: not the acknowledged log: %s", op, nth, co, d)
				}
				require.NoError(t, l.Close())
			}
			cases++
		}
	}
	t.Logf("error injection: %d cases", cases)
}

var errUnexpected = errors.New("unexpected")

// TestFailedSyncConcurrent fails one fsync while 8 goroutines append. Each
// goroutine stops at its first error; no append may succeed after the
// failed fsync, and every acknowledged entry survives a crash.
func TestFailedSyncConcurrent(t *testing.T) {
	for _, nth := range []int{1, 2, 5, 20} {
		mem := newMem()
		ff := vfs.NewFaultFS(mem)
		l, err := Open(testDir, memOptions(ff))
		require.NoError(t, err)
		ff.FailNth(vfs.OpSync, nth)
		var mu sync.Mutex
		acked := map[uint64][]byte{}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					d := fmt.Appendf(nil, "w%d-%d", w, i)
					idx, err := l.Append([]*raft.Log{{Term: 1, Data: d}})
					if err != nil {
						if !errors.Is(err, ErrFailed) {
							t.Errorf("append: %v", err)
						}
						return
					}
					mu.Lock()
					acked[idx] = d
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Equal(t, 1, ff.Injected())
		_, err = l.Append([]*raft.Log{{Term: 1}})
		require.ErrorIs(t, err, ErrFailed)
		require.NoError(t, l.Close())

		l, err = Open(testDir, memOptions(mem.Crash(vfs.CrashOptions{})))
		require.NoError(t, err)
		for idx, d := range acked {
			var e raft.Log
			require.NoError(t, l.GetLog(idx, &e))
			require.Equal(t, d, e.Data)
		}
		last, err := l.LastIndex()
		require.NoError(t, err)
		require.EqualValues(t, len(acked), last, "no gap and nothing unacknowledged after a clean cut")
		require.NoError(t, l.Close())
	}
}
