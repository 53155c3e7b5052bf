package wal

import (
	"bytes"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// segmentBytes returns the bytes of the log's segments.
func segmentBytes(t testing.TB, fsys *vfs.MemFS) [][]byte {
	names, err := fsys.ReadDir(testDir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		f, err := fsys.Open(filepath.Join(testDir, n))
		if err != nil {
			t.Fatal(err)
		}
		size, _ := f.Size()
		b := make([]byte, size)
		f.ReadAt(b, 0)
		f.Close()
		out = append(out, b)
	}
	return out
}

// FuzzOpen opens a log whose only segment holds arbitrary bytes. Open must
// fail with an error or recover a valid prefix: every entry in
// [FirstIndex, LastIndex] reads back, and the log takes an append that
// survives a reopen. It must never panic. An error is ErrCorrupt or, for a
// segment of a newer format version and only for one, a *VersionError,
// never both; and a refused newer segment is left as it was. The seed
// corpus (valid, truncated and damaged segments, and newer versions) runs
// under plain go test.
func FuzzOpen(f *testing.F) {
	fsys := newMem()
	l, err := Open(testDir, memOptions(fsys))
	if err != nil {
		f.Fatal(err)
	}
	for i := range 12 {
		logs := []*raft.Log{{Term: 1, Data: []byte("fuzz")}, {Term: 2}}
		if _, err := l.Append(logs); err != nil {
			f.Fatal(err)
		}
		if i == 9 {
			l.DeleteRange(15, 20)
			l.DeleteRange(1, 3)
		}
	}
	l.Close()
	segs := segmentBytes(f, fsys)
	for _, s := range segs {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:700])
		bad := append([]byte(nil), s...)
		bad[600] ^= 4
		f.Add(bad)
	}
	f.Add([]byte{})
	f.Add(encodeHeader(1, 512))
	f.Add(append(encodeHeader(1, 32), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1))
	for _, v := range []byte{'0', '2', '9', 'a'} {
		for _, fix := range []bool{false, true} {
			b := append([]byte(nil), segs[0]...)
			b[len(segFamily)] = v
			if fix {
				le.PutUint32(b[28:], crc(b[:28]))
			}
			f.Add(b)
		}
	}
	f.Add([]byte(segFamily + "2"))
	f.Add([]byte(segFamily + "2" + "a newer layout"))

	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := newMem()
		fsys.MkdirAll(testDir)
		w, err := fsys.Create(filepath.Join(testDir, segmentName(1)))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Sync()
		w.Close()
		fsys.SyncDir(testDir)
		_, newer := newerVersion(slices.Clone(data), segFamily, SegmentFormatVersion, headerIntact)
		l, err := Open(testDir, memOptions(fsys))
		var ve *VersionError
		switch {
		case newer:
			if !errors.As(err, &ve) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("a segment of a newer version: Open = %v, want only a *VersionError", err)
			}
			if got := segmentBytes(t, fsys); len(got) != 1 || !bytes.Equal(got[0], data) {
				t.Fatal("the refused Open changed the segment")
			}
			return
		case errors.Is(err, raft.ErrUnsupportedVersion):
			t.Fatalf("Open = %v for a segment of no newer version", err)
		case err != nil && !errors.Is(err, ErrCorrupt):
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		case err != nil:
			return
		}
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		var m model
		for i := first; i <= last && last != 0; i++ {
			var e raft.Log
			if err := l.GetLog(i, &e); err != nil {
				t.Fatalf("GetLog(%d) in [%d, %d]: %v", i, first, last, err)
			}
			m.append([]*raft.Log{&e})
		}
		logs := []*raft.Log{{Index: last + 1, Term: 9, Data: []byte("after")}}
		if last == 0 {
			logs[0].Index = 1
		}
		if err := l.StoreLogs(logs); err != nil {
			t.Fatalf("append to recovered log: %v", err)
		}
		m.append(logs)
		l.Close()
		l, err = Open(testDir, memOptions(fsys))
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		if d := diff(l, &m); d != "" {
			t.Fatal(d)
		}
	})
}

// FuzzOpenStable opens a stable store whose file holds arbitrary bytes. It
// must never panic; an error is ErrCorrupt or, for a file of a newer
// format version and only for one, a *VersionError that leaves the file as
// it was; and a store that opens holds what its file encodes.
func FuzzOpenStable(f *testing.F) {
	valid := encodeStable(map[string][]byte{"term": {0, 0, 0, 0, 0, 0, 0, 7}, "vote": []byte("a")})
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(encodeStable(map[string][]byte{}))
	f.Add([]byte{})
	for _, v := range []byte{'0', '2', '9', 'a'} {
		for _, fix := range []bool{false, true} {
			b := slices.Clone(valid)
			b[len(stableFamily)] = v
			if fix {
				le.PutUint32(b[len(b)-4:], crc(b[:len(b)-4]))
			}
			f.Add(b)
		}
	}
	f.Add([]byte(stableFamily + "2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := newMem()
		fsys.MkdirAll("/raft")
		w, err := fsys.Create(stablePath)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Sync()
		w.Close()
		fsys.SyncDir("/raft")
		_, newer := newerVersion(slices.Clone(data), stableFamily, StableFormatVersion, stableIntact)
		s, err := openStable(fsys, stablePath, StableOptions{})
		var ve *VersionError
		switch {
		case newer:
			if !errors.As(err, &ve) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("a newer version: OpenStable = %v, want only a *VersionError", err)
			}
			if got := files(t, fsys, "/raft")[stablePath]; !bytes.Equal(got, data) {
				t.Fatal("the refused OpenStable changed the file")
			}
			return
		case errors.Is(err, raft.ErrUnsupportedVersion):
			t.Fatalf("OpenStable = %v for a file of no newer version", err)
		case err != nil && !errors.Is(err, ErrCorrupt):
			t.Fatalf("OpenStable = %v, want ErrCorrupt", err)
		case err != nil:
			return
		}
		kv := maps.Clone(s.kv)
		s.Close()
		// What opened re-encodes to a file that opens to the same.
		writeFile(t, fsys, stablePath, encodeStable(kv))
		s, err = openStable(fsys, stablePath, StableOptions{})
		if err != nil {
			t.Fatalf("reopen re-encoded: %v", err)
		}
		defer s.Close()
		if !maps.EqualFunc(kv, s.kv, bytes.Equal) {
			t.Fatalf("re-encoded store holds %q, want %q", s.kv, kv)
		}
	})
}
