package filesnap

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// FuzzOpen makes a snapshot file of arbitrary bytes, named as the seed
// snapshot is (its ID varies from run to run, so cached inputs of earlier
// runs are just more damaged files). List and Open must
// never panic. A trailer of a newer format version, and only one, makes
// both fail with raft.ErrUnsupportedVersion, not ErrCorrupt, and leaves
// the file as it was; otherwise List lists the file or skips it, and Open
// either fails with ErrCorrupt or gives a reader that returns the
// contents and io.EOF, or ErrCorrupt. The seed corpus runs under plain go
// test.
func FuzzOpen(f *testing.F) {
	fsys := vfs.NewMemFS(512)
	s, err := New(dir, Options{Logger: quiet, fs: fsys})
	if err != nil {
		f.Fatal(err)
	}
	id, err := persist(s, 20, []byte("some state"))
	if err != nil {
		f.Fatal(err)
	}
	valid := readFile(f, fsys, s.path(id))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[len(valid)-trailerLen:])
	f.Add([]byte{})
	for _, v := range []byte{'0', '2', '9', 'a'} {
		for _, fix := range []bool{false, true} {
			b := slices.Clone(valid)
			tr := b[len(b)-trailerLen:]
			tr[len(family)] = v
			if fix {
				le.PutUint32(tr[20:], crc32.Checksum(tr[:20], castagnoli))
			}
			f.Add(b)
		}
	}
	f.Add(append(bytes.Repeat([]byte{7}, 40), family+"2"+"a newer trailer"...))

	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := vfs.NewMemFS(512)
		fsys.MkdirAll(dir)
		name := filepath.Join(dir, id+suffix)
		writeFile(t, fsys, name, data)
		s, err := New(dir, Options{Logger: quiet, fs: fsys})
		if err != nil {
			t.Fatal(err)
		}
		newer := false
		if len(data) >= trailerLen {
			_, newer = newerVersion(slices.Clone(data[len(data)-trailerLen:]))
		}
		metas, lerr := s.List()
		_, rc, oerr := s.Open(id)
		if newer {
			for _, err := range []error{lerr, oerr} {
				if !errors.Is(err, raft.ErrUnsupportedVersion) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("a newer version: %v, want only raft.ErrUnsupportedVersion", err)
				}
			}
			if !bytes.Equal(readFile(t, fsys, name), data) {
				t.Fatal("the refused snapshot changed")
			}
			return
		}
		if lerr != nil {
			t.Fatalf("List: %v", lerr)
		}
		if oerr != nil {
			if !errors.Is(oerr, ErrCorrupt) || errors.Is(oerr, raft.ErrUnsupportedVersion) {
				t.Fatalf("Open: %v, want ErrCorrupt", oerr)
			}
			if len(metas) != 0 {
				t.Fatal("List offers a snapshot Open refuses")
			}
			return
		}
		defer rc.Close()
		if len(metas) != 1 || metas[0].ID != id {
			t.Fatalf("List = %v, want the snapshot Open accepts", metas)
		}
		_, err = io.Copy(io.Discard, rc)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("read: %v, want ErrCorrupt or nothing", err)
		}
	})
}
