package multiwal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// fuzzSegment returns the bytes of a one-segment WAL written by a
// multi-group workload.
func fuzzSegment(f *testing.F) []byte {
	fsys := newMem()
	opts := memOptions(fsys)
	opts.SegmentSize = 1 << 16
	w, err := Open(testDir, opts)
	if err != nil {
		f.Fatal(err)
	}
	for i := uint64(1); i <= 6; i++ {
		for gid := uint64(1); gid <= 3; gid++ {
			g, _ := w.Group(gid)
			if err := g.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: []byte("fuzz")}}); err != nil {
				f.Fatal(err)
			}
		}
	}
	g, _ := w.Group(2)
	g.SetUint64([]byte("term"), 3)
	g.DeleteRange(5, 6)
	g.DeleteRange(1, 2)
	w.RemoveGroup(3)
	w.Close()
	b, err := vfs.ReadFile(fsys, filepath.Join(testDir, segmentName(1)))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzOpen opens a WAL whose only segment holds arbitrary bytes. Open
// must not panic; it fails with ErrCorrupt or a *VersionError (never
// both), or recovers a state in which every group's entries read back
// and that takes a write surviving a reopen. The seed corpus (valid,
// truncated, damaged and newer-version segments) runs under go test.
func FuzzOpen(f *testing.F) {
	seg := fuzzSegment(f)
	f.Add(seg)
	f.Add(seg[:700])
	f.Add(seg[:1500])
	f.Add(seg[:segHeaderLen])
	f.Add([]byte{})
	damaged := bytes.Clone(seg)
	damaged[600] ^= 1
	f.Add(damaged)
	newer := bytes.Clone(seg)
	newer[7] = '2'
	le.PutUint32(newer[28:], crc(newer[:28]))
	f.Add(newer)
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := newMem()
		fsys.MkdirAll(testDir)
		name := filepath.Join(testDir, segmentName(1))
		if err := vfs.WriteFile(fsys, name, b); err != nil {
			t.Fatal(err)
		}
		opts := memOptions(fsys)
		opts.SegmentSize = 1 << 16
		w, err := Open(testDir, opts)
		if err != nil {
			corrupt, newer := errors.Is(err, ErrCorrupt), errors.Is(err, raft.ErrUnsupportedVersion)
			if corrupt == newer {
				t.Fatalf("error is neither or both corrupt and newer: %v", err)
			}
			if newer {
				got, _ := vfs.ReadFile(fsys, name)
				if !bytes.Equal(got, b) {
					t.Fatal("a newer segment was changed")
				}
			}
			return
		}
		m := model{}
		for _, id := range w.Groups() {
			g, _ := w.Group(id)
			first, _ := g.FirstIndex()
			last, _ := g.LastIndex()
			gm := m.g(id)
			gm.first, gm.last = 1, 0
			for i := first; i <= last && last > 0; i++ {
				var e raft.Log
				if err := g.GetLog(i, &e); err != nil {
					t.Fatalf("group %d entry %d in [%d, %d]: %v", id, i, first, last, err)
				}
				gm.append([]*raft.Log{&e})
			}
			w.mu.RLock()
			for k, v := range w.groups[id].stable {
				gm.stable[k] = string(v)
			}
			w.mu.RUnlock()
		}
		g, _ := w.Group(42)
		gm := m.g(42)
		logs := gm.entries(rand.New(rand.NewPCG(1, 1)), 1, 10)
		if err := g.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		gm.append(logs)
		w.Close()
		w, err = Open(testDir, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(w, m); d != "" {
			t.Fatal(d)
		}
		w.Close()
	})
}
