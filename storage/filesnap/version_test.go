package filesnap

import (
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// dirFiles returns the files of dir on fsys with their bytes.
func dirFiles(t testing.TB, fsys vfs.FS, dir string) map[string][]byte {
	t.Helper()
	names, err := fsys.ReadDir(dir)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, n := range names {
		out[n] = readFile(t, fsys, filepath.Join(dir, n))
	}
	return out
}

func readFile(t testing.TB, fsys vfs.FS, name string) []byte {
	t.Helper()
	b, err := vfs.ReadFile(fsys, name)
	require.NoError(t, err)
	return b
}

func writeFile(t testing.TB, fsys vfs.FS, name string, b []byte) {
	t.Helper()
	require.NoError(t, vfs.WriteFile(fsys, name, b))
}

// setVersion rewrites a snapshot's version byte and, if fix, the trailer's
// checksum, so that only the version is "wrong".
func setVersion(t testing.TB, fsys vfs.FS, name string, v byte, fix bool) {
	t.Helper()
	b := readFile(t, fsys, name)
	tr := b[len(b)-trailerLen:]
	tr[len(family)] = v
	if fix {
		le.PutUint32(tr[20:], crc32.Checksum(tr[:20], castagnoli))
	}
	writeFile(t, fsys, name, b)
}

// twoSnapshots stores snapshots at indexes 10 and 20 and returns their IDs.
func twoSnapshots(t *testing.T) (*vfs.MemFS, *Store, string, string) {
	fsys := vfs.NewMemFS(512)
	s := memStore(t, fsys, 5)
	old, err := persist(s, 10, []byte("older state"))
	require.NoError(t, err)
	newest, err := persist(s, 20, []byte("newest state"))
	require.NoError(t, err)
	return fsys, s, old, newest
}

func requireNewer(t *testing.T, err error, path string, version int) {
	t.Helper()
	require.ErrorIs(t, err, raft.ErrUnsupportedVersion)
	require.NotErrorIs(t, err, ErrCorrupt, "the snapshot is not damaged")
	require.Contains(t, err.Error(), path)
	require.Contains(t, err.Error(), fmt.Sprintf("format version %d, this build reads up to 1", version))
}

// A snapshot of a newer format version is refused by Open and fails List,
// rather than be skipped so that keel restores an older one; reaping after
// a new snapshot removes nothing; no file changes.
func TestNewerVersionRefused(t *testing.T) {
	for _, which := range []string{"newest", "older"} {
		t.Run(which, func(t *testing.T) {
			fsys, s, old, newest := twoSnapshots(t)
			id := newest
			if which == "older" {
				id = old
			}
			path := s.path(id)
			setVersion(t, fsys, path, '2', true)
			before := dirFiles(t, fsys, dir)

			_, _, err := s.Open(id)
			requireNewer(t, err, path, 2)
			_, err = s.List()
			requireNewer(t, err, path, 2)
			// A new store on the directory is no different.
			s2 := memStore(t, fsys, 1)
			_, err = s2.List()
			requireNewer(t, err, path, 2)
			require.Equal(t, before, dirFiles(t, fsys, dir))

			// With Retain 1, a new snapshot would reap both; the newer
			// version stops the reaping.
			_, err = persist(s2, 30, []byte("later"))
			requireNewer(t, err, path, 2)
			after := dirFiles(t, fsys, dir)
			for n, b := range before {
				require.Equal(t, b, after[n], "%s changed", n)
			}
		})
	}
}

// A version byte that is no version, an older one, or a newer one the
// trailer's checksum shows to be a damaged '1', is corruption as before:
// Open fails with ErrCorrupt and List skips the file.
func TestBadVersionByteIsCorrupt(t *testing.T) {
	for _, c := range []struct {
		v   byte
		fix bool
	}{{'0', true}, {'x', true}, {'1' ^ 2, false}, {'1' ^ 8, false}} {
		t.Run(fmt.Sprintf("%q/fixed=%v", c.v, c.fix), func(t *testing.T) {
			fsys, s, old, newest := twoSnapshots(t)
			setVersion(t, fsys, s.path(newest), c.v, c.fix)
			_, _, err := s.Open(newest)
			require.ErrorIs(t, err, ErrCorrupt)
			require.False(t, errors.Is(err, raft.ErrUnsupportedVersion))
			metas, err := s.List()
			require.NoError(t, err)
			require.Len(t, metas, 1)
			require.Equal(t, old, metas[0].ID)
		})
	}
}

func TestMagic(t *testing.T) { require.Equal(t, "keelsnp1", magic) }
