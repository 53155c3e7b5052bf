package filesnap

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// With Lock, a directory in use is refused until the Store using it is
// closed, and the lock file is no snapshot.
func TestLockRefusesDirectoryInUse(t *testing.T) {
	d := filepath.Join(t.TempDir(), "snaps")
	a, err := New(d, Options{Lock: true, Logger: quiet})
	require.NoError(t, err)
	id, err := persist(a, 10, []byte("state"))
	require.NoError(t, err)
	// An unfinished snapshot: a refused New must not remove it.
	tmp := filepath.Join(d, "1-2-3"+tmpSuffix)
	require.NoError(t, os.WriteFile(tmp, []byte("half"), 0o644))

	_, err = New(d, Options{Lock: true, Logger: quiet})
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), filepath.Join(d, lockName))
	require.Contains(t, err.Error(), "another process, or another open in this process")
	require.FileExists(t, tmp)

	require.NoError(t, a.Close())
	require.ErrorIs(t, a.Close(), ErrClosed)
	_, err = a.Create(11, 3, conf, 10)
	require.ErrorIs(t, err, ErrClosed)

	b, err := New(d, Options{Lock: true, Logger: quiet})
	require.NoError(t, err)
	defer b.Close()
	require.NoFileExists(t, tmp)
	metas, err := b.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	require.Equal(t, id, metas[0].ID)
	got, _, err := readSnap(b, id)
	require.NoError(t, err)
	require.Equal(t, "state", string(got))
}

// Without Lock, as before, a directory may be opened twice: a Store had
// no Close, and callers that drop one and open the directory again must
// keep working.
func TestNoLockByDefault(t *testing.T) {
	d := t.TempDir()
	a, err := New(d, Options{Logger: quiet})
	require.NoError(t, err)
	b, err := New(d, Options{Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	// A locking Store is refused only by another locking one.
	c, err := New(d, Options{Lock: true, Logger: quiet})
	require.NoError(t, err)
	e, err := New(d, Options{Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, e.Close())
	require.NoError(t, c.Close())
}
