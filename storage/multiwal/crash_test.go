package multiwal

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// crashVariants are the ways the crash matrix crashes at each cut point:
// 0%, 50% or 100% of the unsynced sectors kept, times a clean cut, a torn
// sector of zeros or of garbage, times directory operations since the
// last directory sync lost or kept.
func crashVariants(seed uint64) []vfs.CrashOptions {
	var out []vfs.CrashOptions
	for _, keep := range []int{0, 50, 100} {
		for _, tear := range []vfs.Tear{vfs.TearNone, vfs.TearZeros, vfs.TearGarbage} {
			for _, dirOps := range []bool{false, true} {
				out = append(out, vfs.CrashOptions{KeepPercent: keep, Tear: tear, KeepDirOps: dirOps, Seed: seed})
			}
		}
	}
	return out
}

// crashChecker crashes the file system at every modification a workload
// makes and checks what recovery finds: every group exactly as of the
// last acknowledged call, or as of the call in flight.
type crashChecker struct {
	t        *testing.T
	fsys     *vfs.MemFS
	rng      *rand.Rand
	acked    model
	inflight model
	cuts     int
	failed   bool
	stride   int
	mods     int
}

func (c *crashChecker) hook() {
	c.mods++
	if c.failed || c.mods%c.stride != 0 {
		return
	}
	seed := c.rng.Uint64()
	for _, co := range crashVariants(seed) {
		c.cuts++
		if msg := c.check(c.fsys.Crash(co)); msg != "" {
			c.failed = true
			c.t.Errorf("cut %d (%+v): %s", c.cuts, co, msg)
			return
		}
	}
}

func (c *crashChecker) check(crashed *vfs.MemFS) string {
	w, err := Open(testDir, memOptions(crashed))
	if err != nil {
		return fmt.Sprintf("open: %v", err)
	}
	defer func() { w.Close() }()
	m := c.acked.clone()
	if d := diff(w, m); d != "" {
		if c.inflight == nil {
			return d
		}
		m = c.inflight.clone()
		if d2 := diff(w, m); d2 != "" {
			return fmt.Sprintf("neither acknowledged state (%s) nor next state (%s)", d, d2)
		}
	}
	// The recovered WAL takes writes that survive the next crash.
	g := m.g(99)
	logs := g.entries(c.rng, 2, 100)
	grp, _ := w.Group(99)
	if err := grp.StoreLogs(logs); err != nil {
		return fmt.Sprintf("append after recovery: %v", err)
	}
	g.append(logs)
	w.Close()
	w, err = Open(testDir, memOptions(crashed.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage})))
	if err != nil {
		return fmt.Sprintf("reopen after append: %v", err)
	}
	if d := diff(w, m); d != "" {
		return "after recovery, append and crash: " + d
	}
	return ""
}

// step runs one call of the workload, telling the checker what the WAL
// holds once it completes.
func (c *crashChecker) step(next model, call func() error) {
	c.inflight = next
	err := call()
	c.inflight = nil
	require.NoError(c.t, err)
	c.acked = next
}

// TestCrashMatrix records workloads of calls on four interleaved groups
// (appends with segment rotation and checkpoints, suffix and prefix
// deletions that free segments, stable values, group removals, reopens)
// and crashes at every write, sync, truncation, creation, removal and
// directory sync they make, in each of the crashVariants. Every group
// must recover exactly its acknowledged state, or the state the call in
// flight would have made, and the recovered WAL must take writes that
// survive a further crash.
func TestCrashMatrix(t *testing.T) {
	total := 0
	var rotated, removed uint64
	for seed := range uint64(crashSeeds) {
		fsys := newMem()
		c := &crashChecker{t: t, fsys: fsys, rng: rand.New(rand.NewPCG(seed, 99)), stride: crashStride, acked: model{}}
		rng := rand.New(rand.NewPCG(seed, 7))
		fsys.SetHook(c.hook)
		var w *WAL
		c.step(model{}, func() (err error) { w, err = Open(testDir, memOptions(fsys)); return err })
		ids := []uint64{1, 2, 3, 4}
		for op := 0; op < crashOps && !c.failed; op++ {
			next := c.acked.clone()
			if rng.IntN(25) == 0 {
				c.step(next, func() (err error) {
					if err = w.Close(); err != nil {
						return err
					}
					w, err = Open(testDir, memOptions(fsys))
					return err
				})
				continue
			}
			c.step(next, randomOp(rng, func() *WAL { return w }, next, ids, 400, false))
		}
		fsys.SetHook(nil)
		require.Empty(t, diff(w, c.acked))
		rotated += w.Stats().Segments + w.Stats().SegmentsRemoved
		removed += w.Stats().SegmentsRemoved
		require.NoError(t, w.Close())
		total += c.cuts
		if c.failed {
			break
		}
	}
	t.Logf("crash matrix: %d cut points (%d variants at every %d-th modification); since the last reopen of each workload %d segments made, %d freed",
		total, len(crashVariants(0)), crashStride, rotated, removed)
	require.Positive(t, removed)
}

// TestCrashConcurrent crashes while 8 groups append concurrently, so that
// batches hold several groups' entries. At every modification, in every
// crash variant, recovery must hold every acknowledged entry.
func TestCrashConcurrent(t *testing.T) {
	fsys := newMem()
	w, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	var mu sync.Mutex
	acked := map[[2]uint64]string{}
	cuts, failed := 0, false
	fsys.SetHook(func() {
		mu.Lock()
		want := maps.Clone(acked)
		mu.Unlock()
		if failed {
			return
		}
		cuts++
		if cuts%crashStride != 0 {
			return
		}
		for _, co := range crashVariants(uint64(cuts)) {
			rw, err := Open(testDir, memOptions(fsys.Crash(co)))
			if err != nil {
				t.Errorf("cut %d: open: %v", cuts, err)
				failed = true
				return
			}
			for k, d := range want {
				g, _ := rw.Group(k[0])
				var e raft.Log
				if err := g.GetLog(k[1], &e); err != nil || string(e.Data) != d {
					t.Errorf("cut %d (%+v): group %d entry %d: %v %q, want %q", cuts, co, k[0], k[1], err, e.Data, d)
					failed = true
				}
			}
			rw.Close()
			if failed {
				return
			}
		}
	})
	var wg sync.WaitGroup
	for gid := range uint64(8) {
		wg.Go(func() {
			g, _ := w.Group(gid + 1)
			for i := range uint64(10) {
				d := fmt.Sprintf("g%d-%d", gid+1, i+1)
				if err := g.StoreLogs([]*raft.Log{{Index: i + 1, Term: 1, Data: []byte(d)}}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[[2]uint64{gid + 1, i + 1}] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fsys.SetHook(nil)
	st := w.Stats()
	require.Less(t, st.Fsyncs, st.Entries, "fsyncs shared by groups")
	require.NoError(t, w.Close())
	t.Logf("concurrent crash: %d modifications, %d entries, %d writes, %d fsyncs", cuts, st.Entries, st.Writes, st.Fsyncs)
}
