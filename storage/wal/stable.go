package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/internal/lock"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// Stable is a durable raft.StableStore for small values such as the
// current term and vote. It keeps every key in memory and in one file,
// which each update rewrites atomically: the new contents are written to
// a temporary file, synced, renamed over the old file, and the directory
// is synced before the update returns. The file carries a checksum; a
// damaged file makes OpenStable fail with ErrCorrupt rather than start
// empty, and a file of a newer format version with a *VersionError. Like
// Log, Stable fails for good (ErrFailed) after any write, sync or rename
// error.
//
// Stable is safe for concurrent use.
type Stable struct {
	fs        vfs.FS
	path, tmp string
	dir       string

	mu     sync.Mutex
	kv     map[string][]byte
	failed error
	closed bool
	lock   *lock.Lock // of path+".lock"; nil off the OS file system

	writes, failures metrics.Counter   // nil without a Sink
	writeTime        metrics.Histogram // nil without a Sink
}

// StableOptions configure a Stable. The zero value selects the defaults.
type StableOptions struct {
	// Metrics, when set, receives the store's figures, subsystem "wal":
	// stable_writes (counter): updates made durable; stable_write_duration
	// (histogram, seconds): the time of each, from the write of the
	// temporary file to the sync of the directory; stable_failures
	// (counter): times the store stopped for good (ErrFailed). Nil
	// reports nothing, at no cost.
	Metrics metrics.Sink
}

// StableFormatVersion is the stable file's format this build writes, and
// the newest it reads.
//
// The file is
//
//	[0:8]    magic "keelstb1": the family "keelstb" and the version, '1'
//	[8:12]   the number of keys
//	[12:n-4] for each key in order: key length u32, key, value length u32, value
//	[n-4:n]  CRC32-C of [0:n-4]
//
// little-endian. As in segments, the first 8 bytes are what every version
// keeps: a newer version is refused with a *VersionError whatever follows
// it (unless the checksum matches once the version byte is set back to
// StableFormatVersion: a damaged byte, ErrCorrupt), and neither the file
// nor a leftover temporary file is touched.
const StableFormatVersion = 1

const (
	stableFamily = "keelstb"
	stableMagic  = stableFamily + string(rune('0'+StableFormatVersion))
	// maxStableSize bounds the stable file: it is for small values.
	maxStableSize = 64 << 20
)

// OpenStable opens the stable store in the file at path, creating its
// directory if needed. A missing file is an empty store. It locks
// path+".lock", kept until Close: a store another process or another open
// Stable is using is refused (ErrLocked) before the file is read.
func OpenStable(path string) (*Stable, error) { return openStable(vfs.OS, path, StableOptions{}) }

// OpenStableWith is OpenStable with options.
func OpenStableWith(path string, opts StableOptions) (*Stable, error) {
	return openStable(vfs.OS, path, opts)
}

func openStable(fsys vfs.FS, path string, opts StableOptions) (*Stable, error) {
	path = filepath.Clean(path)
	s := &Stable{fs: fsys, path: path, tmp: path + ".tmp", dir: filepath.Dir(path), kv: map[string][]byte{}}
	if m := opts.Metrics; m != nil {
		s.writes = m.Counter(metrics.Desc{Subsystem: "wal", Name: "stable_writes",
			Help: "Updates of the stable store made durable (Set, SetUint64)."})
		s.failures = m.Counter(metrics.Desc{Subsystem: "wal", Name: "stable_failures",
			Help: "Times the stable store stopped for good (ErrFailed) after a write, sync or rename error."})
		s.writeTime = m.Histogram(metrics.Desc{Subsystem: "wal", Name: "stable_write_duration", Unit: metrics.Seconds,
			Buckets: metrics.LatencyBuckets,
			Help:    "Time of one durable update of the stable store: write and sync a temporary file, rename it, sync the directory."})
	}
	if err := fsys.MkdirAll(s.dir); err != nil {
		return nil, fmt.Errorf("wal: stable: %w", err)
	}
	lk, err := lockFile(fsys, path+".lock", "stable store "+path)
	if err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		lk.Release()
		return nil, err
	}
	s.lock = lk
	return s, nil
}

// load reads the file and removes a leftover temporary file.
func (s *Stable) load() error {
	fsys, path := s.fs, s.path
	f, err := fsys.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("wal: stable: %w", err)
	default:
		kv, err := readStable(f, path)
		f.Close()
		if err != nil {
			return err
		}
		s.kv = kv
	}
	// A leftover temporary file is an update that never completed.
	names, err := fsys.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("wal: stable: %w", err)
	}
	if slices.Contains(names, filepath.Base(s.tmp)) {
		if err := fsys.Remove(s.tmp); err != nil {
			return fmt.Errorf("wal: stable: %w", err)
		}
	}
	return nil
}

func readStable(f vfs.File, path string) (map[string][]byte, error) {
	corrupt := func(off int, why string) error {
		return &CorruptError{File: path, Offset: int64(off), Reason: why}
	}
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal: stable: %w", err)
	}
	if size > maxStableSize {
		// A newer version may allow more; too large to check its
		// checksum, its magic is all there is to go by.
		var m [len(stableMagic)]byte
		if _, err := f.ReadAt(m[:], 0); err == nil {
			if v, ok := newerVersion(m[:], stableFamily, StableFormatVersion, func([]byte) bool { return false }); ok {
				return nil, &VersionError{File: path, Version: v, Newest: StableFormatVersion}
			}
		}
		return nil, corrupt(0, fmt.Sprintf("size %d exceeds %d", size, maxStableSize))
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wal: stable: read %s: %w", path, err)
	}
	if v, ok := newerVersion(b, stableFamily, StableFormatVersion, stableIntact); ok {
		return nil, &VersionError{File: path, Version: v, Newest: StableFormatVersion}
	}
	if len(b) < len(stableMagic)+8 {
		return nil, corrupt(0, "short file")
	}
	body := b[:len(b)-4]
	if le.Uint32(b[len(b)-4:]) != crc(body) {
		return nil, corrupt(len(body), "checksum mismatch")
	}
	if string(body[:8]) != stableMagic {
		return nil, corrupt(0, "bad magic")
	}
	n := le.Uint32(body[8:])
	p := 12
	kv := map[string][]byte{}
	next := func() ([]byte, bool) {
		if p+4 > len(body) {
			return nil, false
		}
		l := int(le.Uint32(body[p:]))
		if l > len(body)-p-4 {
			return nil, false
		}
		v := body[p+4 : p+4+l]
		p += 4 + l
		return v, true
	}
	for range n {
		at := p
		k, ok1 := next()
		v, ok2 := next()
		if !ok1 || !ok2 {
			return nil, corrupt(at, "truncated entry")
		}
		kv[string(k)] = slices.Clone(v)
	}
	if p != len(body) {
		return nil, corrupt(p, "trailing bytes")
	}
	return kv, nil
}

// stableIntact reports whether the checksum at the end of b matches.
func stableIntact(b []byte) bool {
	return len(b) >= 4 && le.Uint32(b[len(b)-4:]) == crc(b[:len(b)-4])
}

func encodeStable(kv map[string][]byte) []byte {
	b := append([]byte(stableMagic), 0, 0, 0, 0)
	le.PutUint32(b[8:], uint32(len(kv)))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		b = le.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = le.AppendUint32(b, uint32(len(kv[k])))
		b = append(b, kv[k]...)
	}
	return le.AppendUint32(b, crc(b))
}

// Set implements raft.StableStore: it returns once val is durable.
func (s *Stable) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	kv := maps.Clone(s.kv)
	kv[string(key)] = slices.Clone(val)
	b := encodeStable(kv)
	if len(b) > maxStableSize {
		return fmt.Errorf("wal: stable: %d bytes exceed the %d-byte limit", len(b), maxStableSize)
	}
	var start time.Time
	if s.writeTime != nil {
		start = time.Now()
	}
	err := s.write(b)
	if s.writeTime != nil {
		s.writeTime.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		s.failed = fmt.Errorf("%w: stable: %w", ErrFailed, err)
		add(s.failures, 1)
		return s.failed
	}
	add(s.writes, 1)
	s.kv = kv
	return nil
}

func (s *Stable) write(b []byte) error {
	f, err := s.fs.Create(s.tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(s.tmp, s.path)
	}
	if err == nil {
		err = s.fs.SyncDir(s.dir)
	}
	return err
}

// Get implements raft.StableStore.
func (s *Stable) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.failed != nil {
		return nil, s.failed
	}
	return slices.Clone(s.kv[string(key)]), nil
}

// SetUint64 implements raft.StableStore.
func (s *Stable) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore. A value that is not 8 bytes long
// is an error.
func (s *Stable) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("wal: stable: value of %q is %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the store and releases its lock. Calls after Close return
// ErrClosed.
func (s *Stable) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	return s.lock.Release()
}

var _ raft.StableStore = (*Stable)(nil)
