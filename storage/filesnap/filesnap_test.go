package filesnap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const dir = "/snaps"

var (
	quiet = slog.New(slog.DiscardHandler)
	conf  = raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a:1"}, {ID: "b", Address: "b:1", Suffrage: raft.Nonvoter}}}
)

func memStore(t *testing.T, fsys vfs.FS, retain int) *Store {
	t.Helper()
	s, err := New(dir, Options{Retain: retain, Logger: quiet, fs: fsys})
	require.NoError(t, err)
	return s
}

func persist(s *Store, index uint64, data []byte) (string, error) {
	sk, err := s.Create(index, 3, conf, index-1)
	if err != nil {
		return "", err
	}
	// Write in a few pieces.
	for len(data) > 0 {
		n := min(len(data), 700)
		if _, err := sk.Write(data[:n]); err != nil {
			sk.Cancel()
			return sk.ID(), err
		}
		data = data[n:]
	}
	return sk.ID(), sk.Close()
}

func readSnap(s *Store, id string) ([]byte, *raft.SnapshotMeta, error) {
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, meta, err
}

func TestStore(t *testing.T) {
	s, err := New(filepath.Join(t.TempDir(), "snaps"), Options{Retain: 2, Logger: quiet})
	require.NoError(t, err)
	metas, err := s.List()
	require.NoError(t, err)
	require.Empty(t, metas)
	var ids []string
	for i := range 4 {
		data := bytes.Repeat([]byte{byte(i)}, 1000*i)
		id, err := persist(s, uint64(10*(i+1)), data)
		require.NoError(t, err)
		ids = append(ids, id)
		got, meta, err := readSnap(s, id)
		require.NoError(t, err)
		require.Equal(t, data, got)
		require.EqualValues(t, len(data), meta.Size)
		require.Equal(t, conf, meta.Configuration)
		require.EqualValues(t, 10*(i+1), meta.Index)
		require.EqualValues(t, 10*(i+1)-1, meta.ConfigurationIndex)
	}
	metas, err = s.List()
	require.NoError(t, err)
	require.Len(t, metas, 2)
	require.Equal(t, ids[3], metas[0].ID)
	require.Equal(t, ids[2], metas[1].ID)
	_, _, err = s.Open(ids[0])
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = s.Open("../../etc/passwd")
	require.ErrorIs(t, err, ErrNotFound)

	// A cancelled snapshot is never offered.
	sk, err := s.Create(100, 4, conf, 1)
	require.NoError(t, err)
	_, err = sk.Write([]byte("partial"))
	require.NoError(t, err)
	require.NoError(t, sk.Cancel())
	metas, err = s.List()
	require.NoError(t, err)
	require.Len(t, metas, 2)
	require.Equal(t, ids[3], metas[0].ID)
	_, err = New(t.TempDir(), Options{Retain: -1})
	require.Error(t, err)
}

// TestUnfinishedNeverOffered leaves a snapshot half-written: it is not
// listed, and reopening the store removes it.
func TestUnfinishedNeverOffered(t *testing.T) {
	fsys := vfs.NewMemFS(0)
	s := memStore(t, fsys, 2)
	old, err := persist(s, 5, []byte("old"))
	require.NoError(t, err)
	sk, err := s.Create(9, 3, conf, 1)
	require.NoError(t, err)
	_, err = sk.Write(make([]byte, 300<<10)) // past the buffer: on disk
	require.NoError(t, err)
	metas, err := s.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	require.Equal(t, old, metas[0].ID)
	s2 := memStore(t, fsys.Crash(vfs.CrashOptions{KeepPercent: 100, KeepDirOps: true}), 2)
	names, err := s2.fs.ReadDir(dir)
	require.NoError(t, err)
	require.Equal(t, []string{old + suffix}, names)
	require.NoError(t, sk.Cancel())
}

// TestCrashDuringPersist crashes at every file-system modification while
// a series of snapshots is persisted (and older ones removed), in every
// crash variant. The reopened store's newest snapshot must be the last
// completed one or the one in flight, and every snapshot it lists must
// read back whole and intact.
func TestCrashDuringPersist(t *testing.T) {
	fsys := vfs.NewMemFS(512)
	rng := rand.New(rand.NewPCG(1, 2))
	contents := map[string][]byte{} // by ID, every snapshot ever closed or begun
	var acked string                // the newest completed snapshot
	var inflight uint64             // the index of the snapshot in flight
	cuts := 0
	check := func(crashed *vfs.MemFS) {
		s := memStore(t, crashed, 1)
		metas, err := s.List()
		require.NoError(t, err)
		if acked != "" {
			require.NotEmpty(t, metas, "the completed snapshot %s was lost", acked)
		}
		if len(metas) > 0 && metas[0].ID != acked {
			require.Equal(t, inflight, metas[0].Index, "newest snapshot is neither the old nor the new one")
		}
		for _, m := range metas {
			got, _, err := readSnap(s, m.ID)
			require.NoError(t, err)
			want, ok := contents[m.ID]
			require.True(t, ok)
			require.Equal(t, want, got)
		}
	}
	fsys.SetHook(func() {
		for _, keep := range []int{0, 50, 100} {
			for _, tear := range []vfs.Tear{vfs.TearNone, vfs.TearZeros, vfs.TearGarbage} {
				for _, dirOps := range []bool{false, true} {
					cuts++
					check(fsys.Crash(vfs.CrashOptions{KeepPercent: keep, Tear: tear, KeepDirOps: dirOps, Seed: rng.Uint64()}))
				}
			}
		}
	})
	s := memStore(t, fsys, 1)
	for i := range 12 {
		data := make([]byte, rng.IntN(3000))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		inflight = uint64(i + 1)
		sk, err := s.Create(inflight, 3, conf, 1)
		require.NoError(t, err)
		contents[sk.ID()] = data
		_, err = sk.Write(data)
		require.NoError(t, err)
		require.NoError(t, sk.Close())
		acked = sk.ID()
	}
	fsys.SetHook(nil)
	t.Logf("snapshot crash: %d cut points", cuts)
}

// TestPersistErrors fails the Nth write, sync, rename, creation, removal
// or directory sync of a series of persists: the failing Close reports
// it, and after a crash the newest snapshot is the last completed one or
// the failed one, and everything listed reads back intact.
func TestPersistErrors(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpCreate, vfs.OpRemove, vfs.OpSyncDir} {
		for nth := 1; nth <= 5; nth++ {
			mem := vfs.NewMemFS(512)
			ff := vfs.NewFaultFS(mem)
			s := memStore(t, ff, 1)
			ff.FailNth(op, nth)
			contents := map[string][]byte{}
			acked, failed, failedOK := "", "", false
			for i := range 6 {
				data := bytes.Repeat([]byte{byte(i + 1)}, 500*(i+1))
				id, err := persist(s, uint64(i+1), data)
				contents[id] = data
				if err != nil {
					failed, failedOK = id, true
					break
				}
				acked = id
			}
			require.True(t, failedOK, "%s #%d never failed", op, nth)
			for _, co := range []vfs.CrashOptions{{}, {KeepPercent: 100, KeepDirOps: true}} {
				s2 := memStore(t, mem.Crash(co), 1)
				metas, err := s2.List()
				require.NoError(t, err)
				if acked != "" {
					require.NotEmpty(t, metas)
				}
				if len(metas) > 0 {
					require.Contains(t, []string{acked, failed}, metas[0].ID)
				}
				for _, m := range metas {
					got, _, err := readSnap(s2, m.ID)
					require.NoError(t, err)
					require.Equal(t, contents[m.ID], got)
				}
			}
		}
	}
}

// TestBitRot flips every bit of a snapshot file: the snapshot is either
// not listed (metadata or trailer damaged) or reading it fails with
// ErrCorrupt (contents damaged). Wrong data is never returned.
func TestBitRot(t *testing.T) {
	fsys := vfs.NewMemFS(0)
	s := memStore(t, fsys, 2)
	data := []byte("snapshot contents that must never come back altered")
	id, err := persist(s, 7, data)
	require.NoError(t, err)
	name := s.path(id)
	f, err := fsys.Open(name)
	require.NoError(t, err)
	size, err := f.Size()
	require.NoError(t, err)
	flip := func(bit int64) {
		var b [1]byte
		_, err := f.ReadAt(b[:], bit/8)
		require.NoError(t, err)
		b[0] ^= 1 << (bit % 8)
		_, err = f.WriteAt(b[:], bit/8)
		require.NoError(t, err)
	}
	listed, unreadable := 0, 0
	for bit := range size * 8 {
		flip(bit)
		metas, err := s.List()
		require.NoError(t, err)
		if len(metas) == 1 {
			listed++
			_, _, err := readSnap(s, id)
			require.True(t, errors.Is(err, ErrCorrupt), "bit %d: %v", bit, err)
			unreadable++
		} else {
			_, _, err := s.Open(id)
			require.ErrorIs(t, err, ErrCorrupt, "bit %d", bit)
		}
		flip(bit)
	}
	require.NoError(t, f.Close())
	require.Equal(t, listed, unreadable)
	t.Logf("%d flips: %d hid the snapshot, %d failed on read", size*8, size*8-int64(listed), unreadable)
	got, _, err := readSnap(s, id)
	require.NoError(t, err)
	require.Equal(t, data, got)
}

func Example() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	s, err := New(filepath.Join(dir, "snapshots"), Options{Retain: 2})
	if err != nil {
		panic(err)
	}
	sink, err := s.Create(10, 2, raft.Configuration{}, 0)
	if err != nil {
		panic(err)
	}
	fmt.Fprint(sink, "state")
	if err := sink.Close(); err != nil {
		panic(err)
	}
	metas, _ := s.List()
	fmt.Println(len(metas), metas[0].Index)
	// Output: 1 10
}
