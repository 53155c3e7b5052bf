package wal

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft/storage/internal/vfs"
)

const stablePath = "/raft/stable"

func TestStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta", "stable")
	s, err := OpenStable(path)
	require.NoError(t, err)
	v, err := s.Get([]byte("missing"))
	require.NoError(t, err)
	require.Empty(t, v)
	n, err := s.GetUint64([]byte("term"))
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, s.SetUint64([]byte("term"), 42))
	require.NoError(t, s.Set([]byte("vote"), []byte("server-10")))
	require.NoError(t, s.Set([]byte("empty"), nil))
	_, err = s.GetUint64([]byte("vote"))
	require.Error(t, err)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Set([]byte("x"), nil), ErrClosed)

	s, err = OpenStable(path)
	require.NoError(t, err)
	n, err = s.GetUint64([]byte("term"))
	require.NoError(t, err)
	require.EqualValues(t, 42, n)
	v, err = s.Get([]byte("vote"))
	require.NoError(t, err)
	require.Equal(t, "server-10", string(v))
	require.NoError(t, s.Close())
}

// TestStableCorrupt flips every bit of a stable file: each flip must make
// OpenStable fail with ErrCorrupt, never open an empty or altered store.
func TestStableCorrupt(t *testing.T) {
	fsys := newMem()
	s, err := openStable(fsys, stablePath, StableOptions{})
	require.NoError(t, err)
	require.NoError(t, s.SetUint64([]byte("term"), 7))
	require.NoError(t, s.Set([]byte("vote"), []byte("a")))
	require.NoError(t, s.Close())
	f, err := fsys.Open(stablePath)
	require.NoError(t, err)
	size, err := f.Size()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	for bit := int64(0); bit < size*8; bit++ {
		xorByte(t, fsys, stablePath, bit/8, 1<<(bit%8))
		_, err := openStable(fsys, stablePath, StableOptions{})
		require.ErrorIs(t, err, ErrCorrupt, "bit %d", bit)
		xorByte(t, fsys, stablePath, bit/8, 1<<(bit%8))
	}
	// Truncations too.
	for n := int64(0); n < size; n++ {
		fs2 := fsys.Crash(vfs.CrashOptions{})
		f, err := fs2.Open(stablePath)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(n))
		require.NoError(t, f.Close())
		_, err = openStable(fs2, stablePath, StableOptions{})
		require.ErrorIs(t, err, ErrCorrupt, "truncated to %d", n)
	}
}

// TestStableCrash crashes at every file-system modification of a series
// of updates, in every crash variant: the reopened store holds the values
// before or after the update in flight, never a mix and never an error.
func TestStableCrash(t *testing.T) {
	fsys := newMem()
	rng := rand.New(rand.NewPCG(1, 1))
	acked := map[string]string{}
	var inflight map[string]string
	cuts := 0
	fsys.SetHook(func() {
		for _, co := range crashVariants(rng.Uint64()) {
			cuts++
			s, err := openStable(fsys.Crash(co), stablePath, StableOptions{})
			require.NoError(t, err, "%+v", co)
			got := map[string]string{}
			for i := range 4 {
				k := fmt.Sprintf("k%d", i)
				v, err := s.Get([]byte(k))
				require.NoError(t, err)
				if len(v) > 0 {
					got[k] = string(v)
				}
			}
			if !maps.Equal(got, acked) {
				require.Equal(t, inflight, got, "%+v", co)
			}
			require.NoError(t, s.Close())
		}
	})
	s, err := openStable(fsys, stablePath, StableOptions{})
	require.NoError(t, err)
	for i := range 30 {
		k := fmt.Sprintf("k%d", rng.IntN(4))
		v := fmt.Sprintf("v%d-%s", i, make([]byte, rng.IntN(600)))
		inflight = maps.Clone(acked)
		inflight[k] = v
		require.NoError(t, s.Set([]byte(k), []byte(v)))
		acked = maps.Clone(inflight)
	}
	fsys.SetHook(nil)
	require.NoError(t, s.Close())
	t.Logf("stable crash: %d cut points", cuts)
}

// TestStableErrorInjection fails the Nth write, sync, rename, creation or
// directory sync: the store fails for good, and a reopened store holds
// the acknowledged value or the one being set.
func TestStableErrorInjection(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpCreate, vfs.OpSyncDir} {
		for nth := 1; nth <= 6; nth++ {
			mem := newMem()
			ff := vfs.NewFaultFS(mem)
			s, err := openStable(ff, stablePath, StableOptions{})
			require.NoError(t, err)
			ff.FailNth(op, nth)
			acked := uint64(0)
			var failedAt uint64
			for i := uint64(1); i <= 8; i++ {
				if err := s.SetUint64([]byte("term"), i); err != nil {
					require.ErrorIs(t, err, ErrFailed)
					failedAt = i
					break
				}
				acked = i
			}
			require.NotZero(t, failedAt, "%s #%d", op, nth)
			require.ErrorIs(t, s.SetUint64([]byte("term"), 99), ErrFailed)
			_, err = s.GetUint64([]byte("term"))
			require.ErrorIs(t, err, ErrFailed)
			require.NoError(t, s.Close())
			for _, keepDir := range []bool{false, true} {
				s, err = openStable(mem.Crash(vfs.CrashOptions{KeepDirOps: keepDir, KeepPercent: 100}), stablePath, StableOptions{})
				require.NoError(t, err)
				got, err := s.GetUint64([]byte("term"))
				require.NoError(t, err)
				require.Contains(t, []uint64{acked, failedAt}, got, "%s #%d", op, nth)
				require.NoError(t, s.Close())
			}
		}
	}
}
