package wal

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// files returns every file under the given directories of fsys, by path,
// with its bytes.
func files(t testing.TB, fsys vfs.FS, dirs ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range dirs {
		names, err := fsys.ReadDir(dir)
		require.NoError(t, err)
		for _, n := range names {
			p := filepath.Join(dir, n)
			b, err := vfs.ReadFile(fsys, p)
			require.NoError(t, err)
			out[p] = b
		}
	}
	return out
}

func writeFile(t testing.TB, fsys vfs.FS, name string, b []byte) {
	t.Helper()
	require.NoError(t, vfs.WriteFile(fsys, name, b))
}

// setSegmentVersion rewrites a segment's version byte and, if fix, its
// header checksum, so that only the version is "wrong".
func setSegmentVersion(t testing.TB, fsys vfs.FS, name string, v byte, fix bool) {
	t.Helper()
	b := files(t, fsys, filepath.Dir(name))[name]
	b[len(segFamily)] = v
	if fix {
		le.PutUint32(b[28:], crc(b[:28]))
	}
	writeFile(t, fsys, name, b)
}

// threeSegments writes a log of three segments, the last one active.
func threeSegments(t *testing.T) *vfs.MemFS {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	require.NoError(t, err)
	for i := 0; ; i++ {
		_, err := l.Append([]*raft.Log{{Term: 1, Data: make([]byte, 1000)}})
		require.NoError(t, err)
		if len(l.segs) == 3 && i > 0 {
			break
		}
	}
	require.NoError(t, l.Close())
	return fsys
}

func requireNewer(t *testing.T, err error, file string, version int) {
	t.Helper()
	require.ErrorIs(t, err, raft.ErrUnsupportedVersion)
	require.NotErrorIs(t, err, ErrCorrupt, "the data is not damaged")
	var ve *VersionError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, version, ve.Version)
	require.Equal(t, 1, ve.Newest)
	msg := err.Error()
	for _, s := range []string{file, fmt.Sprintf("format version %d", version), "reads up to 1"} {
		require.Contains(t, msg, s)
	}
}

// A segment of a newer format version stops Open, wherever it is, and
// leaves every file as it was: in particular a newest segment is not taken
// for one whose creation was interrupted, and is not overwritten.
func TestSegmentNewerVersionRefused(t *testing.T) {
	for _, id := range []uint64{1, 2, 3} {
		for _, v := range []byte{'2', '9'} {
			t.Run(fmt.Sprintf("segment%d/v%c", id, v), func(t *testing.T) {
				fsys := threeSegments(t)
				name := filepath.Join(testDir, segmentName(id))
				setSegmentVersion(t, fsys, name, v, true)
				before := files(t, fsys, testDir)
				_, err := Open(testDir, memOptions(fsys))
				requireNewer(t, err, name, int(v-'0'))
				require.True(t, maps.EqualFunc(before, files(t, fsys, testDir), func(a, b []byte) bool { return string(a) == string(b) }),
					"the refused Open changed a file")
			})
		}
	}
}

// A newer layout need not keep this one's header: a newest segment that
// starts "keelwal2" and holds nothing this build can parse is refused, not
// discarded as a half-created segment.
func TestSegmentNewerLayoutRefused(t *testing.T) {
	fsys := threeSegments(t)
	name := filepath.Join(testDir, segmentName(3))
	b := make([]byte, 4096)
	copy(b, segFamily+"2")
	for i := 8; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	writeFile(t, fsys, name, b)
	before := files(t, fsys, testDir)
	_, err := Open(testDir, memOptions(fsys))
	requireNewer(t, err, name, 2)
	require.Equal(t, before, files(t, fsys, testDir))
}

// A version byte that is no version, an older one, or a newer one that the
// header checksum shows to be a damaged '1', is corruption as before.
func TestSegmentBadVersionByteIsCorrupt(t *testing.T) {
	cases := []struct {
		v   byte
		fix bool
	}{{'0', true}, {'x', true}, {0, true}, {'1' ^ 2, false}, {'1' ^ 8, false}, {'1' ^ 1, false}}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q/fixed=%v", c.v, c.fix), func(t *testing.T) {
			// Segment 2 is sealed: a bad header there cannot be an
			// interrupted creation.
			fsys := threeSegments(t)
			name := filepath.Join(testDir, segmentName(2))
			setSegmentVersion(t, fsys, name, c.v, c.fix)
			_, err := Open(testDir, memOptions(fsys))
			require.ErrorIs(t, err, ErrCorrupt)
			require.NotErrorIs(t, err, raft.ErrUnsupportedVersion)
		})
	}
}

func stableStore(t *testing.T) *vfs.MemFS {
	fsys := newMem()
	s, err := openStable(fsys, stablePath, StableOptions{})
	require.NoError(t, err)
	require.NoError(t, s.SetUint64([]byte("term"), 7))
	require.NoError(t, s.Set([]byte("vote"), []byte("a")))
	require.NoError(t, s.Close())
	return fsys
}

func setStableVersion(t *testing.T, fsys vfs.FS, name string, v byte, fix bool) {
	b := files(t, fsys, filepath.Dir(name))[name]
	b[len(stableFamily)] = v
	if fix {
		le.PutUint32(b[len(b)-4:], crc(b[:len(b)-4]))
	}
	writeFile(t, fsys, name, b)
}

// A stable file of a newer version is refused, and neither it nor a
// leftover temporary file (which OpenStable otherwise removes) changes.
func TestStableNewerVersionRefused(t *testing.T) {
	for _, tmp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tmp=%v", tmp), func(t *testing.T) {
			fsys := stableStore(t)
			setStableVersion(t, fsys, stablePath, '2', true)
			if tmp {
				writeFile(t, fsys, stablePath+".tmp", []byte("keelstb2 half an update"))
			}
			before := files(t, fsys, filepath.Dir(stablePath))
			_, err := openStable(fsys, stablePath, StableOptions{})
			requireNewer(t, err, stablePath, 2)
			require.Contains(t, err.Error(), "stable store")
			require.Equal(t, before, files(t, fsys, filepath.Dir(stablePath)))
		})
	}
}

// A newer stable file too large for this version is still a newer one.
func TestStableNewerVersionTooLarge(t *testing.T) {
	fsys := newMem()
	require.NoError(t, fsys.MkdirAll(filepath.Dir(stablePath)))
	f, err := fsys.Create(stablePath)
	require.NoError(t, err)
	_, err = f.Write([]byte(stableFamily + "2"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(maxStableSize+1))
	require.NoError(t, f.Close())
	_, err = openStable(fsys, stablePath, StableOptions{})
	requireNewer(t, err, stablePath, 2)

	setStableVersion(t, fsys, stablePath, '1', false)
	_, err = openStable(fsys, stablePath, StableOptions{})
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestStableBadVersionByteIsCorrupt(t *testing.T) {
	for _, v := range []byte{'0', 'x', '1' ^ 2} {
		fsys := stableStore(t)
		setStableVersion(t, fsys, stablePath, v, v != '1'^2)
		_, err := openStable(fsys, stablePath, StableOptions{})
		require.ErrorIs(t, err, ErrCorrupt, "%q", v)
		require.NotErrorIs(t, err, raft.ErrUnsupportedVersion, "%q", v)
	}
}

func TestVersionErrorMessage(t *testing.T) {
	err := &VersionError{Segment: 3, File: "/d/00000000000000000003.wal", Version: 2, Newest: 1}
	require.Equal(t, "wal: segment /d/00000000000000000003.wal: format version 2, this build reads up to 1: raft: format version newer than this build understands", err.Error())
	require.True(t, strings.HasPrefix((&VersionError{File: "/d/stable", Version: 2, Newest: 1}).Error(), "wal: stable store /d/stable: "))
	require.False(t, errors.Is(err, ErrCorrupt))
	require.Equal(t, "keelwal1", segMagic)
	require.Equal(t, "keelstb1", stableMagic)
}
