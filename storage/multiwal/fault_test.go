package multiwal

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// TestFailStop injects a failure into the nth write, sync, create,
// remove, directory sync or allocation of a multi-group workload. The
// failing call returns an error; every later call returns ErrFailed
// although the file system works again (a failed fsync is never retried
// and acknowledged); and reopening after a crash recovers every
// acknowledged call (or the failed one).
func TestFailStop(t *testing.T) {
	ops := []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpCreate, vfs.OpRemove, vfs.OpSyncDir, vfs.OpAllocate}
	cases := 0
	for _, op := range ops {
		for n := 1; n <= 40; n += 3 {
			mem := newMem()
			ffs := vfs.NewFaultFS(mem)
			w, err := Open(testDir, memOptions(ffs))
			require.NoError(t, err)
			ffs.FailNth(op, n)
			rng := rand.New(rand.NewPCG(uint64(n), uint64(op)))
			acked := model{}
			var inflight model
			failed := false
			for range 60 {
				next := acked.clone()
				call := randomOp(rng, func() *WAL { return w }, next, []uint64{1, 2, 3}, 300, false)
				if err := call(); err != nil {
					inflight = next
					failed = true
					break
				}
				acked = next
			}
			if !failed {
				require.NoError(t, w.Close())
				continue
			}
			cases++
			g, _ := w.Group(1)
			require.ErrorIs(t, g.StoreLogs([]*raft.Log{{Index: 1 << 40}}), ErrFailed)
			require.ErrorIs(t, g.Set([]byte("k"), []byte("v")), ErrFailed)
			_, err = g.LastIndex()
			require.ErrorIs(t, err, ErrFailed)
			w.Close()
			rw, err := Open(testDir, memOptions(mem.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage, KeepPercent: 50})))
			require.NoError(t, err, "%v #%d", op, n)
			if d := diff(rw, acked); d != "" {
				require.Empty(t, diff(rw, inflight), "%v #%d: neither acked (%s) nor in-flight state", op, n, d)
			}
			require.NoError(t, rw.Close())
		}
	}
	require.Greater(t, cases, 20)
}
