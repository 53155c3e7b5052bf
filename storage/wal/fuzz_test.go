package wal

import (
	"path/filepath"
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
// survives a reopen. It must never panic. The seed corpus (valid,
// truncated and damaged segments) runs under plain go test.
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
		l, err := Open(testDir, memOptions(fsys))
		if err != nil {
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
