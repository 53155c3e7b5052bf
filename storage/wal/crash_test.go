package wal

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
// sector of zeros or a torn sector of garbage, times directory operations
// since the last directory sync lost or kept.
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
// makes and checks what recovery finds.
type crashChecker struct {
	t    *testing.T
	fsys *vfs.MemFS
	rng  *rand.Rand
	// acked is the log as of the last call that returned; inflight, when
	// set, is the log once the running call completes. Recovery must find
	// exactly one of them: every acknowledged entry, no gap, nothing else.
	acked    model
	inflight *model
	cuts     int
	failed   bool
	stride   int // check every stride-th modification
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

// check recovers the crashed file system, compares it with the models,
// then appends, crashes again and recovers again.
func (c *crashChecker) check(crashed *vfs.MemFS) string {
	l, err := Open(testDir, memOptions(crashed))
	if err != nil {
		return fmt.Sprintf("open: %v", err)
	}
	defer func() { l.Close() }()
	m := c.acked.clone()
	if d := diff(l, &m); d != "" {
		if c.inflight == nil {
			return d
		}
		m = c.inflight.clone()
		if d2 := diff(l, &m); d2 != "" {
			return fmt.Sprintf("neither acknowledged state (%s) nor next state (%s)", d, d2)
		}
	}
	// The recovered log takes appends that survive the next crash.
	logs := m.entries(c.rng, 2, 100)
	if err := l.StoreLogs(logs); err != nil {
		return fmt.Sprintf("append after recovery: %v", err)
	}
	m.append(logs)
	l.Close()
	l, err = Open(testDir, memOptions(crashed.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage})))
	if err != nil {
		return fmt.Sprintf("reopen after append: %v", err)
	}
	if d := diff(l, &m); d != "" {
		return "after recovery, append and crash: " + d
	}
	return ""
}

// step runs one call of the workload, telling the checker what the log is
// once it completes.
func (c *crashChecker) step(next model, call func() error) {
	c.inflight = &next
	err := call()
	c.inflight = nil
	require.NoError(c.t, err)
	c.acked = next
}

// TestCrashMatrix records workloads of appends (with segment rotation),
// suffix and prefix truncations and reopens, and crashes at every write,
// sync, truncation, creation, removal and directory sync they make, in
// each of the crashVariants. Recovery must return every entry whose call
// had returned, no gap and no entry that fails its checksum, and the
// recovered log must take appends that survive a further crash.
func TestCrashMatrix(t *testing.T) {
	total := 0
	for seed := range uint64(crashSeeds) {
		fsys := newMem()
		c := &crashChecker{t: t, fsys: fsys, rng: rand.New(rand.NewPCG(seed, 99)), stride: crashStride}
		rng := rand.New(rand.NewPCG(seed, 7))
		fsys.SetHook(c.hook)
		var l *Log
		c.step(model{}, func() (err error) { l, err = Open(testDir, memOptions(fsys)); return err })
		for op := 0; op < 60 && !c.failed; op++ {
			m := c.acked.clone()
			switch r := rng.IntN(100); {
			case r < 65 || len(m.ents) < 4:
				logs := m.entries(rng, 1+rng.IntN(4), 400)
				m.append(logs)
				c.step(m, func() error { return l.StoreLogs(logs) })
			case r < 78: // a conflicting suffix
				lo := m.first + 1 + uint64(rng.IntN(len(m.ents)-1))
				m.deleteRange(lo, m.last())
				c.step(m, func() error { return l.DeleteRange(lo, m.last()+uint64(len(c.acked.ents))) })
			case r < 92: // a prefix after a snapshot
				hi := m.first + uint64(rng.IntN(len(m.ents)-1))
				m.deleteRange(m.first, hi)
				c.step(m, func() error { return l.DeleteRange(0, hi) })
			case r < 95: // everything
				lo, hi := m.first, m.last()
				m.deleteRange(lo, hi)
				c.step(m, func() error { return l.DeleteRange(lo, hi) })
			default:
				c.step(m, func() (err error) {
					if err = l.Close(); err != nil {
						return err
					}
					l, err = Open(testDir, memOptions(fsys))
					return err
				})
			}
		}
		fsys.SetHook(nil)
		requireLog(t, l, &c.acked)
		require.NoError(t, l.Close())
		total += c.cuts
		if c.failed {
			break
		}
	}
	t.Logf("crash matrix: %d cut points (%d variants at every %d-th modification)", total, len(crashVariants(0)), crashStride)
	if !raceEnabled {
		require.GreaterOrEqual(t, total, 10000)
	}
}

// TestSuffixTruncateAppendCrashReopen repeats, at random, the sequence on
// which hashicorp/raft-wal v0.4.0 panics (hashicorp/raft-wal#31): truncate
// a suffix, append more, crash, reopen.
func TestSuffixTruncateAppendCrashReopen(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 31))
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	var m model
	for round := range reopenRounds {
		for range 1 + rng.IntN(4) {
			logs := m.entries(rng, 1+rng.IntN(6), 300)
			require.NoError(t, l.StoreLogs(logs))
			m.append(logs)
		}
		if len(m.ents) > 1 {
			lo := m.first + 1 + uint64(rng.IntN(len(m.ents)-1))
			require.NoError(t, l.DeleteRange(lo, m.last()))
			m.deleteRange(lo, m.last())
		}
		for range rng.IntN(3) {
			logs := m.entries(rng, 1+rng.IntN(6), 300)
			require.NoError(t, l.StoreLogs(logs))
			m.append(logs)
		}
		if rng.IntN(4) == 0 && len(m.ents) > 40 {
			hi := m.first + uint64(len(m.ents)/2)
			require.NoError(t, l.DeleteRange(m.first, hi))
			m.deleteRange(m.first, hi)
		}
		// Crash without closing; reopen the crashed disk.
		fsys = fsys.Crash(vfs.CrashOptions{Tear: vfs.Tear(rng.IntN(3)), KeepPercent: 50 * rng.IntN(3), Seed: uint64(round)})
		l, err = Open(testDir, memOptions(fsys))
		require.NoError(t, err, "round %d", round)
		requireLog(t, l, &m)
	}
	require.NoError(t, l.Close())
}

// TestTornTailLogged checks that a torn tail is truncated and logged.
func TestTornTailLogged(t *testing.T) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	require.NoError(t, l.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}))
	seg := l.segs[len(l.segs)-1]
	// A batch written but never synced, then torn.
	_, err = seg.f.WriteAt(finishBatch(appendEntry(nil, 2, 1, 0, []byte("torn")), seg.size, 1, 512), seg.size)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	crashed := fsys.Crash(vfs.CrashOptions{Tear: vfs.TearGarbage, KeepPercent: 100, Seed: 1})
	var logged []string
	opts := memOptions(crashed)
	opts.Logger = capture(&logged)
	l, err = Open(testDir, opts)
	require.NoError(t, err)
	require.Len(t, logged, 1)
	require.Contains(t, logged[0], "torn tail")
	last, err := l.LastIndex()
	require.NoError(t, err)
	require.EqualValues(t, 1, last)
	require.NoError(t, l.Close())
}

// TestCrashConcurrent crashes while 8 goroutines append concurrently, so
// that batches hold several callers' entries. At every modification, in
// every crash variant, recovery must hold every entry whose Append had
// returned, with its data, and no gap.
func TestCrashConcurrent(t *testing.T) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	var mu sync.Mutex
	acked := map[uint64]string{}
	cuts, failed := 0, false
	fsys.SetHook(func() {
		mu.Lock()
		want := maps.Clone(acked)
		mu.Unlock()
		if failed {
			return
		}
		for _, co := range crashVariants(uint64(cuts)) {
			cuts++
			rl, err := Open(testDir, memOptions(fsys.Crash(co)))
			if err != nil {
				t.Errorf("cut %d: open: %v", cuts, err)
				failed = true
				return
			}
			last, _ := rl.LastIndex()
			first, _ := rl.FirstIndex()
			for idx, d := range want {
				var e raft.Log
				if err := rl.GetLog(idx, &e); err != nil || string(e.Data) != d {
					t.Errorf("cut %d (%+v): entry %d: %v %q, want %q", cuts, co, idx, err, e.Data, d)
					failed = true
				}
			}
			if len(want) > 0 && (first != 1 || last < uint64(len(want))) {
				t.Errorf("cut %d: range [%d, %d] with %d acknowledged", cuts, first, last, len(want))
				failed = true
			}
			rl.Close()
			if failed {
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 12 {
				d := fmt.Sprintf("w%d-%d", w, i)
				idx, err := l.Append([]*raft.Log{{Term: 1, Data: []byte(d)}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[idx] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fsys.SetHook(nil)
	st := l.Stats()
	require.Less(t, st.Batches, st.Entries, "batches shared by callers")
	require.NoError(t, l.Close())
	t.Logf("concurrent crash: %d cut points, %d entries in %d batches", cuts, st.Entries, st.Batches)
}
