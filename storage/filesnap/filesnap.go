// Package filesnap is a raft.SnapshotStore that keeps snapshots in files.
//
// Each snapshot is one file, <id>.snap: the snapshot's bytes followed by
// its metadata and a trailer holding checksums of both. A snapshot is
// written to <id>.snap.tmp, synced, renamed to its final name and the
// directory synced before its sink's Close returns; only then does List
// offer it. A crash at any point leaves the previous snapshots, or them
// and the new one, never part of one: temporary files are removed on
// open, and a file whose metadata fails its checksum is never listed.
// Reading a snapshot verifies its contents' checksum at the end.
//
// # Format
//
// A snapshot file is
//
//	[0:size]          the snapshot's bytes
//	[size:size+m]     its raft.SnapshotMeta as JSON, m bytes
//	trailer, 24 bytes:
//	[0:8]   magic "keelsnp1": the family "keelsnp" and the format version, '1'
//	[8:12]  m
//	[12:16] CRC32-C of the metadata
//	[16:20] CRC32-C of the snapshot's bytes
//	[20:24] CRC32-C of the trailer's [0:20]
//
// little-endian. The magic, 24 bytes before the end, is what every format
// version keeps. A snapshot of a version newer than FormatVersion is
// refused, by Open and by List, with an error wrapping
// raft.ErrUnsupportedVersion (not ErrCorrupt), before the rest of the
// trailer is trusted, and the file is left as it is; only when the
// trailer's checksum matches with the version byte set back to
// FormatVersion is it a damaged byte of this version, and corrupt. Any
// other byte there is corruption too.
package filesnap

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/internal/lock"
	"github.com/keelraft/raft/storage/internal/vfs"
)

var (
	// ErrCorrupt is returned when a snapshot fails its checksums.
	ErrCorrupt = errors.New("filesnap: corrupt snapshot")
	// ErrNotFound is returned by Open for an unknown snapshot ID.
	ErrNotFound = errors.New("filesnap: snapshot not found")
	// ErrLocked is returned by New, with Options.Lock, when another
	// process or another open Store in this process is using the
	// directory. Errors wrapping it name the lock file.
	ErrLocked = lock.ErrInUse
	// ErrClosed is returned by Create after Close.
	ErrClosed = errors.New("filesnap: closed")
)

// Options configure a Store. The zero value selects the defaults.
type Options struct {
	// Retain is how many snapshots to keep; older ones are removed once a
	// new one is durable. Default 2.
	Retain int
	// Logger receives notices about skipped or removed files. Nil means
	// silent.
	Logger *slog.Logger
	// Lock makes New lock dir/LOCK, held until Close, and refuse a
	// directory another process or another open Store is using
	// (ErrLocked). It is off by default only because Store had no Close
	// before: code that drops a Store and calls New again on the same
	// directory in one process would now find it locked. (keel's wal.Log
	// and wal.Stable always lock.) Only the operating system's files are
	// locked.
	Lock bool

	fs vfs.FS // the file system; tests set it
}

// Store is a raft.SnapshotStore on files. It is safe for concurrent use.
type Store struct {
	dir  string
	fs   vfs.FS
	opts Options

	mu      sync.Mutex
	lastSeq int64
	closed  bool
	lock    *lock.Lock // nil without Options.Lock or off the OS file system
}

// FormatVersion is the snapshot file format this build writes, and the
// newest it reads.
const FormatVersion = 1

const (
	suffix     = ".snap"
	tmpSuffix  = ".snap.tmp"
	lockName   = "LOCK" // neither a snapshot's name nor a temporary file's
	family     = "keelsnp"
	magic      = family + string(rune('0'+FormatVersion))
	trailerLen = 24
	// maxMetaLen bounds the metadata read from a file.
	maxMetaLen = 64 << 20
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	idPattern  = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}-[0-9]{1,20}$`)
)

// New opens the snapshot store in dir, creating dir if needed and
// removing the temporary files of snapshots whose writing never finished.
// With Options.Lock it first locks dir/LOCK, so that a directory in use
// is refused (ErrLocked) before any file is removed.
func New(dir string, opts Options) (*Store, error) {
	if opts.Retain == 0 {
		opts.Retain = 2
	}
	if opts.Retain < 1 {
		return nil, fmt.Errorf("filesnap: Retain %d must be at least 1", opts.Retain)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.fs == nil {
		opts.fs = vfs.OS
	}
	s := &Store{dir: filepath.Clean(dir), fs: opts.fs, opts: opts}
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return nil, fmt.Errorf("filesnap: %w", err)
	}
	if opts.Lock && s.fs == vfs.OS {
		lk, err := lock.Acquire(filepath.Join(s.dir, lockName))
		if err != nil {
			return nil, fmt.Errorf("filesnap: snapshots %s: %w", s.dir, err)
		}
		s.lock = lk
	}
	if err := s.removeUnfinished(); err != nil {
		s.lock.Release()
		return nil, err
	}
	return s, nil
}

// Close releases the directory's lock, if New took one. Close the sinks
// first: Create fails after Close, but a sink still open would write
// into a directory another Store may own.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	return s.lock.Release()
}

// removeUnfinished removes the temporary files of snapshots whose writing
// never finished.
func (s *Store) removeUnfinished() error {
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("filesnap: %w", err)
	}
	removed := false
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			s.opts.Logger.Info("filesnap: removing unfinished snapshot", "file", n)
			if err := s.fs.Remove(filepath.Join(s.dir, n)); err != nil {
				return fmt.Errorf("filesnap: %w", err)
			}
			removed = true
		}
	}
	if removed {
		if err := s.fs.SyncDir(s.dir); err != nil {
			return fmt.Errorf("filesnap: %w", err)
		}
	}
	return nil
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+suffix) }

// Create implements raft.SnapshotStore.
func (s *Store) Create(index, term uint64, configuration raft.Configuration, configurationIndex uint64) (raft.SnapshotSink, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	seq := max(time.Now().UnixMilli(), s.lastSeq+1)
	s.lastSeq = seq
	s.mu.Unlock()
	id := fmt.Sprintf("%d-%d-%d", term, index, seq)
	tmp := filepath.Join(s.dir, id+tmpSuffix)
	f, err := s.fs.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("filesnap: create %s: %w", id, err)
	}
	sk := &sink{
		store: s, f: f, tmp: tmp,
		meta: raft.SnapshotMeta{ID: id, Index: index, Term: term, Configuration: configuration.Clone(), ConfigurationIndex: configurationIndex},
		crc:  crc32.New(castagnoli),
	}
	sk.w = bufio.NewWriterSize(fileWriter{f}, 256<<10)
	return sk, nil
}

type fileWriter struct{ f vfs.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

type sink struct {
	store *Store
	f     vfs.File
	tmp   string
	w     *bufio.Writer
	crc   hash.Hash32
	meta  raft.SnapshotMeta
	err   error // sticky write error
	done  bool
}

// ID implements raft.SnapshotSink.
func (k *sink) ID() string { return k.meta.ID }

// Write implements io.Writer.
func (k *sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("filesnap: write to a closed snapshot %s", k.meta.ID)
	}
	if k.err != nil {
		return 0, k.err
	}
	n, err := k.w.Write(p)
	k.crc.Write(p[:n])
	k.meta.Size += int64(n)
	if err != nil {
		k.err = fmt.Errorf("filesnap: write %s: %w", k.meta.ID, err)
		return n, k.err
	}
	return n, nil
}

// Cancel implements raft.SnapshotSink.
func (k *sink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.f.Close()
	if err := k.store.fs.Remove(k.tmp); err != nil {
		return fmt.Errorf("filesnap: cancel %s: %w", k.meta.ID, err)
	}
	return nil
}

// Close implements io.Closer: it makes the snapshot durable and visible,
// then removes snapshots beyond Retain. On error the snapshot is
// discarded.
func (k *sink) Close() error {
	if k.done {
		return fmt.Errorf("filesnap: snapshot %s already closed", k.meta.ID)
	}
	if err := k.persist(); err != nil {
		k.Cancel()
		return err
	}
	k.done = true
	return k.store.reap()
}

func (k *sink) persist() error {
	if k.err != nil {
		return k.err
	}
	meta, err := json.Marshal(&k.meta)
	if err != nil {
		return fmt.Errorf("filesnap: %w", err)
	}
	var tr [trailerLen]byte
	copy(tr[:], magic)
	le.PutUint32(tr[8:], uint32(len(meta)))
	le.PutUint32(tr[12:], crc32.Checksum(meta, castagnoli))
	le.PutUint32(tr[16:], k.crc.Sum32())
	le.PutUint32(tr[20:], crc32.Checksum(tr[:20], castagnoli))
	id, s := k.meta.ID, k.store
	if _, err := k.w.Write(meta); err != nil {
		return fmt.Errorf("filesnap: write %s: %w", id, err)
	}
	if _, err := k.w.Write(tr[:]); err != nil {
		return fmt.Errorf("filesnap: write %s: %w", id, err)
	}
	if err := k.w.Flush(); err != nil {
		return fmt.Errorf("filesnap: write %s: %w", id, err)
	}
	if err := k.f.Sync(); err != nil {
		return fmt.Errorf("filesnap: sync %s: %w", id, err)
	}
	if err := k.f.Close(); err != nil {
		return fmt.Errorf("filesnap: close %s: %w", id, err)
	}
	if err := s.fs.Rename(k.tmp, s.path(id)); err != nil {
		return fmt.Errorf("filesnap: rename %s: %w", id, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		// The rename may be durable or not; the snapshot is complete
		// either way, but report the failure.
		return fmt.Errorf("filesnap: sync %s: %w", s.dir, err)
	}
	return nil
}

// reap removes the snapshots beyond Retain, oldest first.
func (s *Store) reap() error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	if len(metas) <= s.opts.Retain {
		return nil
	}
	for i := len(metas) - 1; i >= s.opts.Retain; i-- {
		if err := s.fs.Remove(s.path(metas[i].ID)); err != nil {
			return fmt.Errorf("filesnap: remove old snapshot %s: %w", metas[i].ID, err)
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("filesnap: %w", err)
	}
	return nil
}

// List implements raft.SnapshotStore: the snapshots whose metadata is
// intact, newest first. Damaged files are logged and skipped. A snapshot
// of a newer format version fails List instead: it is likely the newest
// state, written before a downgrade, and listing the older snapshots
// without it would have keel restore stale state and, through Retain,
// remove snapshots the newer build may still need.
func (s *Store) List() ([]*raft.SnapshotMeta, error) {
	names, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("filesnap: %w", err)
	}
	var metas []*raft.SnapshotMeta
	for _, n := range names {
		id, ok := strings.CutSuffix(n, suffix)
		if !ok || !idPattern.MatchString(id) {
			continue
		}
		meta, f, _, err := s.open(id)
		if errors.Is(err, raft.ErrUnsupportedVersion) {
			return nil, err
		}
		if err != nil {
			s.opts.Logger.Warn("filesnap: skipping snapshot", "id", id, "err", err)
			continue
		}
		f.Close()
		metas = append(metas, meta)
	}
	slices.SortFunc(metas, func(a, b *raft.SnapshotMeta) int {
		if a.Index != b.Index {
			return cmpU64(b.Index, a.Index)
		}
		if a.Term != b.Term {
			return cmpU64(b.Term, a.Term)
		}
		return strings.Compare(b.ID, a.ID)
	})
	return metas, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Open implements raft.SnapshotStore. The reader returns an error wrapping
// ErrCorrupt instead of io.EOF if the contents fail their checksum. A
// snapshot of a newer format version is an error wrapping
// raft.ErrUnsupportedVersion.
func (s *Store) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if !idPattern.MatchString(id) {
		return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	meta, f, dataCRC, err := s.open(id)
	if err != nil {
		return nil, nil, err
	}
	return meta, &reader{
		r: io.NewSectionReader(f, 0, meta.Size), f: f, want: dataCRC, crc: crc32.New(castagnoli), id: id,
	}, nil
}

// open reads and verifies a snapshot's metadata.
func (s *Store) open(id string) (*raft.SnapshotMeta, vfs.File, uint32, error) {
	f, err := s.fs.Open(s.path(id))
	if err != nil {
		if names, rerr := s.fs.ReadDir(s.dir); rerr == nil && !slices.Contains(names, id+suffix) {
			return nil, nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, nil, 0, fmt.Errorf("filesnap: open %s: %w", id, err)
	}
	meta, dataCRC, err := readMeta(f, id, s.path(id))
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	return meta, f, dataCRC, nil
}

func readMeta(f vfs.File, id, path string) (*raft.SnapshotMeta, uint32, error) {
	corrupt := func(why string) error { return fmt.Errorf("filesnap: snapshot %s: %s: %w", id, why, ErrCorrupt) }
	size, err := f.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("filesnap: %s: %w", id, err)
	}
	if size < trailerLen {
		return nil, 0, corrupt("short file")
	}
	var tr [trailerLen]byte
	if _, err := f.ReadAt(tr[:], size-trailerLen); err != nil {
		return nil, 0, fmt.Errorf("filesnap: read %s: %w", id, err)
	}
	if v, ok := newerVersion(tr[:]); ok {
		return nil, 0, fmt.Errorf("filesnap: snapshot %s: format version %d, this build reads up to %d: %w",
			path, v, FormatVersion, raft.ErrUnsupportedVersion)
	}
	if !trailerIntact(tr[:]) || string(tr[:8]) != magic {
		return nil, 0, corrupt("bad trailer")
	}
	metaLen := int64(le.Uint32(tr[8:]))
	if metaLen > maxMetaLen || metaLen > size-trailerLen {
		return nil, 0, corrupt("bad metadata length")
	}
	mb := make([]byte, metaLen)
	if _, err := f.ReadAt(mb, size-trailerLen-metaLen); err != nil {
		return nil, 0, fmt.Errorf("filesnap: read %s: %w", id, err)
	}
	if crc32.Checksum(mb, castagnoli) != le.Uint32(tr[12:]) {
		return nil, 0, corrupt("metadata checksum mismatch")
	}
	meta := &raft.SnapshotMeta{}
	if err := json.Unmarshal(mb, meta); err != nil {
		return nil, 0, corrupt("bad metadata: " + err.Error())
	}
	if meta.ID != id || meta.Size != size-trailerLen-metaLen {
		return nil, 0, corrupt("metadata does not match the file")
	}
	return meta, le.Uint32(tr[16:]), nil
}

func trailerIntact(tr []byte) bool {
	return le.Uint32(tr[20:]) == crc32.Checksum(tr[:20], castagnoli)
}

// newerVersion returns the version of a trailer whose version byte, an
// ASCII digit, is newer than FormatVersion. A bit flip can turn '1' into
// '3' or '9': when the trailer's checksum matches once the byte is set
// back to FormatVersion, it is a damaged trailer of this version, not a
// newer one. tr is restored before newerVersion returns.
func newerVersion(tr []byte) (int, bool) {
	if string(tr[:len(family)]) != family {
		return 0, false
	}
	c := tr[len(family)]
	if c < '1' || c > '9' || int(c-'0') <= FormatVersion {
		return 0, false
	}
	tr[len(family)] = '0' + FormatVersion
	rotted := trailerIntact(tr)
	tr[len(family)] = c
	if rotted {
		return 0, false
	}
	return int(c - '0'), true
}

// reader reads a snapshot's contents and checks their checksum at the
// end.
type reader struct {
	r    *io.SectionReader
	f    vfs.File
	crc  hash.Hash32
	want uint32
	id   string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.crc.Write(p[:n])
	if err == io.EOF && r.crc.Sum32() != r.want {
		return n, fmt.Errorf("filesnap: snapshot %s: contents checksum mismatch: %w", r.id, ErrCorrupt)
	}
	return n, err
}

func (r *reader) Close() error { return r.f.Close() }

var _ raft.SnapshotStore = (*Store)(nil)
