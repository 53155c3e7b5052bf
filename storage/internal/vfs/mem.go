package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
)

// MemFS is an in-memory FS that can crash.
//
// Every file remembers what it held when last synced. Crash returns the file
// system a restarted process would find: each file's synced contents plus,
// as CrashOptions choose, some of its unsynced sectors and a torn sector;
// and each directory as of its last SyncDir (or with every later operation
// kept). Directories created with MkdirAll are durable at once.
//
// The crash model tears whole sectors that hold unsynced bytes, even bytes
// that were synced earlier and rewritten unchanged: a store that rewrites a
// sector holding synced data can lose it, as on a real disk.
//
// MemFS is safe for concurrent use.
type MemFS struct {
	mu     sync.Mutex
	dirs   map[string]*memDir
	sector int
	hook   func()
}

type memDir struct {
	cur, durable map[string]*inode
}

type inode struct {
	data, synced []byte
	// dirtyLo and dirtyHi bound the bytes written since the last sync.
	dirtyLo, dirtyHi int
}

func newInode() *inode { return &inode{dirtyLo: math.MaxInt} }

// NewMemFS returns an empty MemFS whose sectors are sectorSize bytes (512
// when sectorSize <= 0).
func NewMemFS(sectorSize int) *MemFS {
	if sectorSize <= 0 {
		sectorSize = 512
	}
	return &MemFS{dirs: map[string]*memDir{}, sector: sectorSize}
}

// SetHook sets a function called after every operation that changes the
// file system (writes, syncs, truncations, creations, renames, removals,
// directory syncs), outside MemFS's lock. Tests use it to crash at every
// point of a workload.
func (m *MemFS) SetHook(hook func()) {
	m.mu.Lock()
	m.hook = hook
	m.mu.Unlock()
}

func (m *MemFS) mutated() {
	m.mu.Lock()
	h := m.hook
	m.mu.Unlock()
	if h != nil {
		h()
	}
}

func split(name string) (dir, base string) {
	name = filepath.Clean(name)
	return filepath.Dir(name), filepath.Base(name)
}

func (m *MemFS) dirOf(op, name string) (*memDir, string, error) {
	dir, base := split(name)
	d := m.dirs[dir]
	if d == nil {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return d, base, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	d, base, err := m.dirOf("create", name)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	ino := d.cur[base]
	if ino == nil {
		ino = newInode()
		d.cur[base] = ino
	} else {
		ino.truncate(0)
	}
	m.mu.Unlock()
	m.mutated()
	return &memFile{fs: m, ino: ino, name: name}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dirOf("open", name)
	if err != nil {
		return nil, err
	}
	ino := d.cur[base]
	if ino == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{fs: m, ino: ino, name: name}, nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	od, ob, err := m.dirOf("rename", oldname)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	nd, nb, err := m.dirOf("rename", newname)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	ino := od.cur[ob]
	if ino == nil {
		m.mu.Unlock()
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	delete(od.cur, ob)
	nd.cur[nb] = ino
	m.mu.Unlock()
	m.mutated()
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	d, base, err := m.dirOf("remove", name)
	if err == nil && d.cur[base] == nil {
		err = &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if err != nil {
		m.mu.Unlock()
		return err
	}
	delete(d.cur, base)
	m.mu.Unlock()
	m.mutated()
	return nil
}

// ReadDir implements FS. It lists files only.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dirs[filepath.Clean(dir)]
	if d == nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	names := make([]string, 0, len(d.cur))
	for n := range d.cur {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// MkdirAll implements FS. Directories are durable at once.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	for dir = filepath.Clean(dir); ; dir = filepath.Dir(dir) {
		if m.dirs[dir] == nil {
			m.dirs[dir] = &memDir{cur: map[string]*inode{}, durable: map[string]*inode{}}
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	m.mu.Unlock()
	m.mutated()
	return nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	d := m.dirs[filepath.Clean(dir)]
	if d == nil {
		m.mu.Unlock()
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	d.durable = make(map[string]*inode, len(d.cur))
	for n, ino := range d.cur {
		d.durable[n] = ino
	}
	m.mu.Unlock()
	m.mutated()
	return nil
}

// Tear says how Crash damages a sector that was being written.
type Tear uint8

const (
	// TearNone damages nothing: a clean cut.
	TearNone Tear = iota
	// TearZeros fills the sector with zeros.
	TearZeros
	// TearGarbage fills the sector with random bytes.
	TearGarbage
)

// String returns the tear's name.
func (t Tear) String() string {
	switch t {
	case TearNone:
		return "clean"
	case TearZeros:
		return "zeros"
	case TearGarbage:
		return "garbage"
	default:
		return fmt.Sprintf("Tear(%d)", uint8(t))
	}
}

// CrashOptions say what survives a crash besides synced data.
type CrashOptions struct {
	// KeepPercent is the share (0 to 100) of each file's unsynced sectors
	// that survive, taken in file order.
	KeepPercent int
	// Tear damages, in each file with unsynced sectors, the first unsynced
	// sector not kept (the last one when all are kept).
	Tear Tear
	// KeepDirOps keeps the creations, renames and removals not yet made
	// durable by SyncDir.
	KeepDirOps bool
	// Seed seeds the garbage of TearGarbage.
	Seed uint64
}

// Crash returns the file system as a process restarted after a crash at
// this instant would find it. m itself is unchanged.
func (m *MemFS) Crash(opts CrashOptions) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	out := NewMemFS(m.sector)
	done := map[*inode]*inode{}
	dirNames := make([]string, 0, len(m.dirs))
	for n := range m.dirs {
		dirNames = append(dirNames, n)
	}
	slices.Sort(dirNames) // deterministic garbage
	for _, dn := range dirNames {
		d := m.dirs[dn]
		src := d.durable
		if opts.KeepDirOps {
			src = d.cur
		}
		nd := &memDir{cur: map[string]*inode{}, durable: map[string]*inode{}}
		names := make([]string, 0, len(src))
		for n := range src {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			ino := src[n]
			c := done[ino]
			if c == nil {
				data := ino.crashed(m.sector, opts, rng)
				c = &inode{data: data, synced: slices.Clone(data), dirtyLo: math.MaxInt}
				done[ino] = c
			}
			nd.cur[n], nd.durable[n] = c, c
		}
		out.dirs[dn] = nd
	}
	return out
}

// crashed returns what survives of the inode's contents.
func (ino *inode) crashed(sector int, opts CrashOptions, rng *rand.Rand) []byte {
	old, cur := ino.synced, ino.data
	lo := min(ino.dirtyLo, len(old), len(cur))
	hi := max(ino.dirtyHi, len(old), len(cur))
	var dirty []int // start offsets of sectors whose contents differ
	for s := lo / sector * sector; s < hi; s += sector {
		e := s + sector
		if !slices.Equal(window(old, s, e), window(cur, s, e)) {
			dirty = append(dirty, s)
		}
	}
	res := slices.Clone(old)
	if len(dirty) == 0 {
		return res
	}
	keep := len(dirty) * max(0, min(100, opts.KeepPercent)) / 100
	for _, s := range dirty[:keep] {
		e := min(s+sector, len(cur))
		if e > len(res) {
			res = append(res, make([]byte, e-len(res))...)
		}
		if s < e {
			copy(res[s:e], cur[s:e])
		}
	}
	if keep == len(dirty) && len(cur) < len(res) {
		res = res[:len(cur)]
	}
	if opts.Tear != TearNone {
		t := dirty[min(keep, len(dirty)-1)]
		e := min(t+sector, max(len(old), len(cur)))
		if e > len(res) {
			res = append(res, make([]byte, e-len(res))...)
		}
		for i := t; i < e; i++ {
			if opts.Tear == TearZeros {
				res[i] = 0
			} else {
				res[i] = byte(rng.Uint32())
			}
		}
	}
	return res
}

// window returns b[s:e] clipped to b.
func window(b []byte, s, e int) []byte {
	if s >= len(b) {
		return nil
	}
	return b[s:min(e, len(b))]
}

func (ino *inode) markDirty(lo, hi int) {
	ino.dirtyLo = min(ino.dirtyLo, lo)
	ino.dirtyHi = max(ino.dirtyHi, hi)
}

func (ino *inode) truncate(size int) {
	if size < len(ino.data) {
		ino.data = ino.data[:size]
		ino.markDirty(size, size)
		return
	}
	old := len(ino.data)
	ino.data = append(ino.data, make([]byte, size-old)...)
	ino.markDirty(old, size)
}

func (ino *inode) sync() {
	lo := min(ino.dirtyLo, len(ino.synced), len(ino.data))
	if len(ino.synced) < len(ino.data) {
		ino.synced = append(ino.synced, make([]byte, len(ino.data)-len(ino.synced))...)
	}
	ino.synced = ino.synced[:len(ino.data)]
	copy(ino.synced[lo:], ino.data[lo:])
	ino.dirtyLo, ino.dirtyHi = math.MaxInt, 0
}

type memFile struct {
	fs   *MemFS
	ino  *inode
	name string

	mu     sync.Mutex // guards off and closed
	off    int64
	closed bool
}

func (f *memFile) check(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

// ReadAt implements io.ReaderAt.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements io.WriterAt.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	f.fs.mu.Lock()
	ino := f.ino
	end := int(off) + len(p)
	if end > len(ino.data) {
		ino.data = append(ino.data, make([]byte, end-len(ino.data))...)
	}
	copy(ino.data[off:], p)
	ino.markDirty(int(off), end)
	f.fs.mu.Unlock()
	f.fs.mutated()
	return len(p), nil
}

// Write implements io.Writer.
func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	off := f.off
	f.off += int64(len(p))
	f.mu.Unlock()
	return f.WriteAt(p, off)
}

// Sync implements File.
func (f *memFile) Sync() error {
	if err := f.check("sync"); err != nil {
		return err
	}
	f.fs.mu.Lock()
	f.ino.sync()
	f.fs.mu.Unlock()
	f.fs.mutated()
	return nil
}

// Truncate implements File.
func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	f.fs.mu.Lock()
	f.ino.truncate(int(size))
	f.fs.mu.Unlock()
	f.fs.mutated()
	return nil
}

// Allocate implements File.
func (f *memFile) Allocate(size int64) error {
	if err := f.check("allocate"); err != nil {
		return err
	}
	f.fs.mu.Lock()
	grow := int(size) > len(f.ino.data)
	if grow {
		f.ino.truncate(int(size))
	}
	f.fs.mu.Unlock()
	if grow {
		f.fs.mutated()
	}
	return nil
}

// Size implements File.
func (f *memFile) Size() (int64, error) {
	if err := f.check("stat"); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.ino.data)), nil
}

// Close implements File.
func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}
