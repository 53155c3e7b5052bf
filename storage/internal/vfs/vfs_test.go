package vfs

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readAll(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	b, err := ReadFile(fsys, name)
	require.NoError(t, err)
	return b
}

// WriteFile's bytes and directory entry survive a crash that keeps
// nothing unsynced.
func TestWriteFileIsDurable(t *testing.T) {
	m := NewMemFS(4)
	require.NoError(t, m.MkdirAll("/d"))
	require.NoError(t, WriteFile(m, "/d/f", []byte("hello, disk")))
	after := m.Crash(CrashOptions{})
	require.Equal(t, []byte("hello, disk"), readAll(t, after, "/d/f"))
	_, err := ReadFile(after, "/d/missing")
	require.Error(t, err)
}

func TestMemCrashKeepsSynced(t *testing.T) {
	m := NewMemFS(4)
	require.NoError(t, m.MkdirAll("/d"))
	f, err := m.Create("/d/a")
	require.NoError(t, err)
	_, err = f.Write([]byte("12345678"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	// Not durable: the directory was never synced.
	require.Empty(t, mustReadDir(t, m.Crash(CrashOptions{}), "/d"))
	require.NoError(t, m.SyncDir("/d"))
	_, err = f.Write([]byte("abcdefgh"))
	require.NoError(t, err)

	c := m.Crash(CrashOptions{})
	require.Equal(t, []byte("12345678"), readAll(t, c, "/d/a"))
	c = m.Crash(CrashOptions{KeepPercent: 50})
	require.Equal(t, []byte("12345678abcd"), readAll(t, c, "/d/a"))
	c = m.Crash(CrashOptions{KeepPercent: 100})
	require.Equal(t, []byte("12345678abcdefgh"), readAll(t, c, "/d/a"))
	c = m.Crash(CrashOptions{KeepPercent: 50, Tear: TearZeros})
	require.Equal(t, []byte("12345678abcd\x00\x00\x00\x00"), readAll(t, c, "/d/a"))
	c = m.Crash(CrashOptions{Tear: TearGarbage, Seed: 1})
	got := readAll(t, c, "/d/a")
	require.Len(t, got, 12)
	require.Equal(t, []byte("12345678"), got[:8])

	// Rewriting a synced sector exposes it to tearing.
	require.NoError(t, f.Sync())
	_, err = f.WriteAt([]byte("X"), 15)
	require.NoError(t, err)
	c = m.Crash(CrashOptions{Tear: TearZeros})
	require.Equal(t, []byte("12345678abcd\x00\x00\x00\x00"), readAll(t, c, "/d/a"))
	require.NoError(t, f.Close())
}

func TestMemRenameDurability(t *testing.T) {
	m := NewMemFS(0)
	require.NoError(t, m.MkdirAll("d"))
	for _, n := range []string{"d/old", "d/tmp"} {
		f, err := m.Create(n)
		require.NoError(t, err)
		_, err = f.Write([]byte(n))
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		require.NoError(t, f.Close())
	}
	require.NoError(t, m.SyncDir("d"))
	require.NoError(t, m.Rename("d/tmp", "d/old"))
	require.Equal(t, []byte("d/old"), readAll(t, m.Crash(CrashOptions{}), "d/old"))
	require.Equal(t, []byte("d/tmp"), readAll(t, m.Crash(CrashOptions{KeepDirOps: true}), "d/old"))
	require.NoError(t, m.SyncDir("d"))
	c := m.Crash(CrashOptions{})
	require.Equal(t, []byte("d/tmp"), readAll(t, c, "d/old"))
	require.Equal(t, []string{"old"}, mustReadDir(t, c, "d"))
}

func TestMemTruncateAndAllocate(t *testing.T) {
	m := NewMemFS(8)
	require.NoError(t, m.MkdirAll("d"))
	f, err := m.Create("d/a")
	require.NoError(t, err)
	require.NoError(t, f.Allocate(32))
	_, err = f.WriteAt([]byte("hello"), 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Truncate(3))
	n, err := f.Size()
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.NoError(t, m.SyncDir("d"))
	require.Len(t, readAll(t, m.Crash(CrashOptions{}), "d/a"), 32)
	require.Equal(t, []byte("hel"), readAll(t, m.Crash(CrashOptions{KeepPercent: 100}), "d/a"))
	require.NoError(t, f.Close())
	require.Error(t, f.Close())
}

func TestFaultNth(t *testing.T) {
	m := NewMemFS(0)
	ff := NewFaultFS(m)
	require.NoError(t, ff.MkdirAll("d"))
	f, err := ff.Create("d/a")
	require.NoError(t, err)
	ff.FailNth(OpWrite, 2)
	_, err = f.Write([]byte("ab"))
	require.NoError(t, err)
	n, err := f.Write([]byte("cdef"))
	require.ErrorIs(t, err, ErrInjected)
	require.Equal(t, 2, n)
	_, err = f.Write([]byte("gh"))
	require.NoError(t, err)
	ff.FailNth(OpSync, 1)
	require.ErrorIs(t, f.Sync(), ErrInjected)
	require.NoError(t, f.Sync())
	ff.FailNth(OpRename, 1)
	require.ErrorIs(t, ff.Rename("d/a", "d/b"), ErrInjected)
	require.NoError(t, ff.Rename("d/a", "d/b"))
	require.Equal(t, 2, ff.Count(OpRename))
	require.Equal(t, 3, ff.Injected())
	require.NoError(t, f.Close())
}

func TestOS(t *testing.T) {
	dir := t.TempDir()
	fsys := OS
	require.NoError(t, fsys.MkdirAll(filepath.Join(dir, "x")))
	f, err := fsys.Create(filepath.Join(dir, "x", "a"))
	require.NoError(t, err)
	require.NoError(t, f.Allocate(4096))
	_, err = f.WriteAt([]byte("hi"), 10)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	n, err := f.Size()
	require.NoError(t, err)
	require.EqualValues(t, 4096, n)
	require.NoError(t, f.Close())
	require.NoError(t, fsys.Rename(filepath.Join(dir, "x", "a"), filepath.Join(dir, "x", "b")))
	require.NoError(t, fsys.SyncDir(filepath.Join(dir, "x")))
	names, err := fsys.ReadDir(filepath.Join(dir, "x"))
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, names)
	require.Equal(t, []byte("hi"), readAll(t, fsys, filepath.Join(dir, "x", "b"))[10:12])
	require.NoError(t, fsys.Remove(filepath.Join(dir, "x", "b")))
	_, err = fsys.Open(filepath.Join(dir, "x", "b"))
	require.True(t, errors.Is(err, io.EOF) || err != nil)
}

func mustReadDir(t *testing.T, fsys FS, dir string) []string {
	t.Helper()
	names, err := fsys.ReadDir(dir)
	require.NoError(t, err)
	return names
}
