// Package multiwal is a shared write-ahead log for a multi-raft host: many
// Raft groups in one process, each identified by a non-zero uint64 group
// ID, keep their log entries and their stable values (term, vote) in one
// segmented log. Each group's view, a *Group, implements raft.LogStore and
// raft.StableStore.
//
// Every call is durable when it returns. Concurrent calls, from any
// groups, share writes and fsyncs (group commit): while one batch is being
// written and synced, the next callers queue, and the first of them writes
// all their records with one write and one fsync.
//
// A raft.Host goes further: each Group is a raft.SharedLogStore, whose
// staged view (Group.Staged) queues writes without waiting, and WAL.Sync
// makes everything queued durable at once. A host's persist worker writes
// every group ready on it that way, with one write and one fsync for all
// of them.
//
// Like storage/wal, recovery truncates a torn, never-acknowledged tail of
// the last segment but refuses to open (ErrCorrupt) when synced data fails
// its checksum; a segment of a newer format is a *VersionError; and any
// write or fsync error stops the WAL for good (ErrFailed) instead of
// retrying and acknowledging data the kernel may have dropped.
//
// The format is described in format.go. Segments are deleted once no
// group has live entries in them; every segment begins with a checkpoint
// of every group's stable values and log range, so older segments never
// hold the only copy of stable state.
//
// # Memory
//
// Entries stay on disk: GetLog reads each from its segment (in practice
// from the page cache); there is no entry cache. Per group the WAL keeps
// its stable values and an index of its live entries: runs of consecutive
// indexes in one segment, 8 bytes (the record's offset) per entry plus a
// few words per run.
package multiwal

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/keelraft/raft/storage/internal/frame"
	"github.com/keelraft/raft/storage/internal/lock"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// Options configure a WAL. The zero value selects the defaults.
type Options struct {
	// SegmentSize is the size segment files are preallocated to; a segment
	// is sealed and a new one started when the next batch would not fit.
	// Default 64 MiB; it must be a multiple of Align and at least 4 Align
	// and 4 KiB, and at most 1 TiB.
	SegmentSize int64
	// MaxEntrySize is the largest Data StoreLogs accepts, and the largest
	// stable value Set accepts. Default 64 MiB; at most 1 GiB.
	MaxEntrySize int
	// Align pads every batch to a multiple of Align bytes, so that writing
	// the next batch never rewrites a disk block holding acknowledged
	// data. Default 4096; a power of two up to 65536.
	Align int
	// Logger receives recovery notices, such as a torn tail being
	// truncated. Nil means silent.
	Logger *slog.Logger

	fs vfs.FS // the file system; tests set it
}

const (
	defaultSegmentSize  = frame.DefaultSegmentSize
	defaultMaxEntrySize = frame.DefaultMaxEntrySize
	defaultAlign        = frame.DefaultAlign
	maxAlign            = frame.MaxAlign
	maxKeyLen           = 1 << 16
	zeroChunk           = 1 << 20
	lockName            = "LOCK"
)

func (o *Options) fill() error {
	sz := frame.Sizes{SegmentSize: o.SegmentSize, MaxEntrySize: o.MaxEntrySize, Align: o.Align}
	if err := sz.Fill("multiwal"); err != nil {
		return err
	}
	o.SegmentSize, o.MaxEntrySize, o.Align = sz.SegmentSize, sz.MaxEntrySize, sz.Align
	o.Logger = frame.Logger(o.Logger)
	if o.fs == nil {
		o.fs = vfs.OS
	}
	return nil
}

func (o *Options) dataStart() int { return max(segHeaderLen, o.Align) }

// WAL is a shared, segmented write-ahead log holding the logs and stable
// values of many Raft groups. It is safe for concurrent use.
type WAL struct {
	fs   vfs.FS
	dir  string
	opts Options

	mu   sync.RWMutex
	cond *sync.Cond // on mu; signalled when a flush ends

	// groups holds every group with state or pending calls. Their
	// committed state changes only in the flusher (and Open), under mu.
	groups map[uint64]*group
	// segs are the segment files, oldest first; the last is active. The
	// flusher changes the list holding mu.
	segs []*segment

	pending, spare *batch
	// Batches are numbered from 1: seq is the pending batch's number,
	// batches up to done have been written or have failed, and batches up
	// to durable were written and synced.
	seq, done, durable uint64
	flushing           bool
	failed             error
	closed             bool

	st   stats
	lock *lock.Lock // nil off the OS file system
}

type segment struct {
	id      uint64
	name    string
	f       vfs.File
	size    int64 // end of the last batch: where the next one goes
	filled  int64 // bytes before filled have been written, with data or zeros
	ckptEnd int64 // end of the checkpoint batch
	sealed  bool
	live    int // live entries of all groups in this segment
}

// batch is the records waiting to be written, back to back, in buf.
type batch struct {
	buf   []byte
	count int
}

const maxKeptBuf = 1 << 20

func (b *batch) reset() {
	if cap(b.buf) > maxKeptBuf {
		b.buf = nil
	}
	b.buf, b.count = b.buf[:0], 0
}

// Stats counts a WAL's work since it was opened.
type Stats struct {
	// Calls is the number of calls that wrote records (StoreLogs,
	// DeleteRange, Set, SetUint64, RemoveGroup; staged ones too). Group
	// commit and staged writes make Fsyncs smaller than Calls.
	Calls uint64
	// Writes is the number of batches written (each one write call),
	// checkpoints and seals included.
	Writes uint64
	// Fsyncs is the number of fsyncs of segment files, rotation included
	// (directory syncs are not counted).
	Fsyncs uint64
	// Entries is the number of entries appended.
	Entries uint64
	// Bytes is the number of bytes of batches written.
	Bytes uint64
	// Segments is the number of segment files now.
	Segments uint64
	// SegmentsRemoved is the number of segment files deleted because no
	// group needed them any more.
	SegmentsRemoved uint64
}

type stats struct {
	calls, writes, fsyncs, entries, bytes, segments, removed atomic.Uint64
}

// Stats returns the WAL's counters.
func (w *WAL) Stats() Stats {
	return Stats{Calls: w.st.calls.Load(), Writes: w.st.writes.Load(), Fsyncs: w.st.fsyncs.Load(), Entries: w.st.entries.Load(),
		Bytes: w.st.bytes.Load(), Segments: w.st.segments.Load(), SegmentsRemoved: w.st.removed.Load()}
}

// Open opens the shared log in dir, creating dir and the log if needed,
// and recovers it: a torn final batch, which was never acknowledged, is
// truncated and logged; any other damage makes Open fail with an error
// wrapping ErrCorrupt, and a segment of a newer format version with a
// *VersionError, before any file is changed. Open first locks dir/LOCK,
// kept until Close: a directory in use by another process or another
// open WAL is refused with an error wrapping ErrLocked.
func Open(dir string, opts Options) (*WAL, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	w := &WAL{fs: opts.fs, dir: filepath.Clean(dir), opts: opts, groups: map[uint64]*group{},
		pending: &batch{}, spare: &batch{}, seq: 1}
	w.cond = sync.NewCond(&w.mu)
	if w.fs == vfs.OS {
		if err := w.fs.MkdirAll(w.dir); err != nil {
			return nil, fmt.Errorf("multiwal: %w", err)
		}
		lk, err := lock.Acquire(filepath.Join(w.dir, lockName))
		if err != nil {
			return nil, fmt.Errorf("multiwal: %s: %w", w.dir, err)
		}
		w.lock = lk
	}
	if err := w.recover(); err != nil {
		for _, s := range w.segs {
			s.f.Close()
		}
		w.lock.Release()
		return nil, err
	}
	w.st.segments.Store(uint64(len(w.segs)))
	return w, nil
}

func (w *WAL) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.failed
}

// fail makes the WAL permanently failed. Callers hold mu.
func (w *WAL) fail(err error) {
	if w.failed == nil {
		w.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		w.opts.Logger.Error("multiwal: failed; no more writes will be acknowledged", "dir", w.dir, "err", err)
	}
}

// Group returns the view of group id, which implements raft.LogStore and
// raft.StableStore. A group that has no state yet starts empty; asking
// for it writes nothing.
func (w *WAL) Group(id uint64) (*Group, error) {
	if id == 0 {
		return nil, fmt.Errorf("multiwal: group ID 0 is invalid")
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return nil, ErrClosed
	}
	return &Group{w: w, id: id}, nil
}

// Groups returns, sorted, the IDs of the groups with durable state:
// entries (or a log emptied by deletion) or stable values.
func (w *WAL) Groups() []uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	var ids []uint64
	for id, g := range w.groups {
		if g.live {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// RemoveGroup durably drops all of group id's entries and stable values:
// after it returns the group is gone, also after a restart, and its
// entries no longer keep segments from being deleted. The group may be
// written again later; it then starts empty.
func (w *WAL) RemoveGroup(id uint64) error {
	if id == 0 {
		return fmt.Errorf("multiwal: group ID 0 is invalid")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	g := w.group(id)
	if !g.live && g.pend == 0 {
		w.forget(g)
		return nil
	}
	w.pending.buf = appendU64s(w.pending.buf, kindRemove, id)
	w.pending.count++
	g.pend++
	g.rfirst, g.rlast = 1, 0
	return w.commitLocked()
}

// group returns the state of group id, creating it. The caller holds mu.
func (w *WAL) group(id uint64) *group {
	g := w.groups[id]
	if g == nil {
		g = newGroup(id)
		w.groups[id] = g
	}
	return g
}

// forget drops g from the map if it has no state and no pending records.
func (w *WAL) forget(g *group) {
	if !g.live && g.pend == 0 {
		delete(w.groups, g.id)
	}
}

// commitLocked waits until the pending batch, to which the caller added
// its records, is durable, flushing it itself if no one else is.
func (w *WAL) commitLocked() error {
	w.st.calls.Add(1)
	n := w.seq
	for w.done < n {
		if w.flushing {
			w.cond.Wait()
			continue
		}
		w.flushing = true
		w.flushLocked()
		w.flushing = false
		w.cond.Broadcast()
	}
	if n <= w.durable {
		return nil
	}
	return w.failed
}

// flushLocked writes and syncs the pending batch, applies it to the
// groups' state and deletes the segments no group needs any more. The
// caller holds mu and has set flushing; mu is released during I/O.
func (w *WAL) flushLocked() {
	b := w.pending
	if b.count == 0 {
		return
	}
	n := w.seq
	w.seq++
	w.pending, w.spare = w.spare, nil
	recs := len(b.buf)
	err := w.failed
	var seg *segment
	var base int64
	if err == nil {
		active := w.segs[len(w.segs)-1]
		need := int64(len(b.buf)) + int64(w.opts.Align) + 2*commitLen
		var ckpt []byte
		var ckptCount int
		rotate := active.size > active.ckptEnd && active.size+need > w.opts.SegmentSize
		if rotate {
			ckpt, ckptCount = w.checkpoint(active.id + 1)
		}
		w.mu.Unlock()
		seg, base, b.buf, err = w.write(b.buf, b.count, rotate, ckpt, ckptCount)
		w.mu.Lock()
	}
	if err != nil {
		w.fail(err)
		w.pending.reset()
		w.done = w.seq
	} else {
		if aerr := w.applyRecords(seg, base, b.buf[:recs], false, false); aerr != nil {
			// The batch was built by this process: a failure here is a bug.
			w.fail(aerr)
			w.done = n
		} else {
			w.done, w.durable = n, n
			w.reclaim()
		}
	}
	b.reset()
	w.spare = b
}

// checkpoint encodes the checkpoint batch's records for segment id: the
// committed state of every group. The caller holds mu.
func (w *WAL) checkpoint(id uint64) ([]byte, int) {
	ids := make([]uint64, 0, len(w.groups))
	for id, g := range w.groups {
		if g.live {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var buf []byte
	for _, gid := range ids {
		g := w.groups[gid]
		keys := make([]string, 0, len(g.stable))
		for k := range g.stable {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = appendCkpt(buf, gid, g.first, g.last, g.stable, keys)
	}
	buf = appendU64s(buf, kindCkptEnd, id, uint64(len(ids)))
	return buf, len(ids) + 1
}

// write writes buf, count records, as one batch to the active segment,
// first sealing it and starting the next with the checkpoint ckpt if
// rotate is set, and syncs it. Only the flusher calls it, without mu.
func (w *WAL) write(buf []byte, count int, rotate bool, ckpt []byte, ckptCount int) (*segment, int64, []byte, error) {
	seg := w.segs[len(w.segs)-1]
	if rotate {
		old := seg
		if err := w.writeSync(old, finishBatch(appendRecord(nil, kindSeal, nil, nil), old.size, 1, w.opts.Align)); err != nil {
			return nil, 0, buf, err
		}
		var err error
		if seg, err = w.createSegment(old.id+1, ckpt, ckptCount); err != nil {
			return nil, 0, buf, err
		}
		w.mu.Lock()
		old.sealed = true
		w.segs = append(w.segs, seg)
		w.mu.Unlock()
		w.st.segments.Add(1)
	}
	base := seg.size
	buf = finishBatch(buf, base, count, w.opts.Align)
	if err := w.writeSync(seg, buf); err != nil {
		return nil, 0, buf, err
	}
	return seg, base, buf, nil
}

// zeros fills segments ahead of the data.
var zeros [zeroChunk]byte

// writeSync writes a finished batch at the end of seg and syncs it.
// Before the batch reaches the zero-filled part of the segment, the next
// zeroChunk bytes are written with zeros, so that most fdatasyncs flush
// only data, not block allocation.
func (w *WAL) writeSync(seg *segment, buf []byte) error {
	end := seg.size + int64(len(buf))
	if end > seg.filled {
		to := min(end+zeroChunk, max(w.opts.SegmentSize, end))
		if to > end {
			if _, err := seg.f.WriteAt(zeros[:to-end], end); err != nil {
				return fmt.Errorf("multiwal: segment %d: write zeros at %d: %w", seg.id, end, err)
			}
		}
		seg.filled = to
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		return fmt.Errorf("multiwal: segment %d: write at %d: %w", seg.id, seg.size, err)
	}
	w.st.writes.Add(1)
	w.st.bytes.Add(uint64(len(buf)))
	w.st.fsyncs.Add(1)
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("multiwal: segment %d: sync: %w", seg.id, err)
	}
	seg.size = end
	return nil
}

// createSegment creates segment id holding its header and the checkpoint
// batch of ckpt, count records, preallocates it, syncs it and links it
// durably into the directory.
func (w *WAL) createSegment(id uint64, ckpt []byte, count int) (*segment, error) {
	name := filepath.Join(w.dir, segmentName(id))
	f, err := w.fs.Create(name)
	if err != nil {
		return nil, fmt.Errorf("multiwal: create segment %d: %w", id, err)
	}
	ds := w.opts.dataStart()
	b := append(encodeHeader(id, ds), finishBatch(ckpt, int64(ds), count, w.opts.Align)...)
	err = func() error {
		if _, err := f.WriteAt(b, 0); err != nil {
			return err
		}
		if err := f.Allocate(w.opts.SegmentSize); err != nil {
			return err
		}
		w.st.writes.Add(1)
		w.st.bytes.Add(uint64(len(b)))
		w.st.fsyncs.Add(1)
		if err := f.Sync(); err != nil {
			return err
		}
		return w.fs.SyncDir(w.dir)
	}()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("multiwal: create segment %d: %w", id, err)
	}
	n := int64(len(b))
	return &segment{id: id, name: name, f: f, size: n, filled: n, ckptEnd: n}, nil
}

// reclaim deletes the oldest segments while no group has live entries in
// them. Their stable records are superseded by the checkpoint that starts
// the next segment. The caller is the flusher and holds mu, which it
// releases while removing files.
func (w *WAL) reclaim() {
	k := 0
	for k < len(w.segs)-1 && w.segs[k].live == 0 {
		k++
	}
	if k == 0 {
		return
	}
	dead := slices.Clone(w.segs[:k])
	w.segs = slices.Delete(w.segs, 0, k)
	w.mu.Unlock()
	err := w.removeSegments(dead)
	w.mu.Lock()
	if err != nil {
		w.fail(err)
	}
}

// removeSegments closes and removes dead segments, oldest first, and
// syncs the directory. No index refers to them.
func (w *WAL) removeSegments(dead []*segment) error {
	for _, s := range dead {
		s.f.Close()
		if err := w.fs.Remove(s.name); err != nil {
			return fmt.Errorf("multiwal: remove segment %d: %w", s.id, err)
		}
		w.st.segments.Add(^uint64(0))
		w.st.removed.Add(1)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return fmt.Errorf("multiwal: sync %s: %w", w.dir, err)
	}
	return nil
}

// Close writes what is pending, closes the files and releases the
// directory's lock. Calls after Close return ErrClosed.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	for w.flushing {
		w.cond.Wait()
	}
	w.flushing = true
	for w.pending.count > 0 {
		w.flushLocked()
	}
	w.flushing = false
	w.closed = true
	var err error
	for _, s := range w.segs {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if lerr := w.lock.Release(); lerr != nil && err == nil {
		err = lerr
	}
	w.segs, w.groups = nil, nil
	w.cond.Broadcast()
	return err
}
