// Package wal is keel's durable storage: a segmented write-ahead log that
// implements raft.LogStore, and Stable, a durable raft.StableStore.
//
// The promise is that an acknowledged write survives power loss. Log
// acknowledges StoreLogs and Append only once their batch is fsynced;
// recovery truncates a torn, never-acknowledged tail but refuses to open
// (ErrCorrupt) when synced data fails its checksum; and any write or fsync
// error stops the store for good (ErrFailed) instead of retrying and
// acknowledging data the kernel may have dropped.
//
// Concurrent appenders share writes and fsyncs (group commit): while one
// batch is being written and synced, the next callers queue, and the first
// of them writes all their entries with one write and one fsync.
//
// The format is described in format.go. Torn writes are contained by
// padding every batch to Options.Align bytes, so a write never rewrites a
// disk block that holds acknowledged data.
//
// # Memory
//
// A Log keeps entries on disk, not in memory: GetLog reads each from its
// segment file (in practice from the page cache). What a Log holds, to
// size a process or container by:
//
//   - The index: 4 bytes per stored entry, where its record starts (8 in
//     a segment larger than 4 GiB, which only a batch larger than 4 GiB
//     makes). The index of the segment being written grows by append, so
//     it may hold up to about 25% more, twice that for an instant while
//     it grows; a segment's index is trimmed to size when the segment is
//     sealed. DeleteRange releases the index memory of the entries it
//     deletes, prefix or suffix, and Open rebuilds the index at the same
//     size. At 70,000 entries a second and a snapshot (and prefix
//     deletion) every 2 minutes, a log holds up to about 8.4 million
//     entries: 34 MB of index. Each segment also costs a few hundred
//     bytes and an open file.
//   - Two batch buffers, holding the records of the entries being written
//     and of those queued behind them: an entry's data plus 26 bytes, and
//     the batch's padding to Align. A buffer grows to the largest batch
//     it held but is kept for reuse only while it is at most 1 MiB; a
//     larger one is dropped once its batch is written.
//   - GetLog's read buffers: 4 KiB each, pooled (sync.Pool), as many as
//     there are concurrent calls. The Data GetLog returns is the caller's,
//     newly allocated: the entry's size, or the record's (26 bytes more)
//     for an entry of more than about 4 KiB.
//   - While Open runs: one buffer of the largest segment's size
//     (SegmentSize, unless a batch was larger), into which each segment is
//     read in turn, and the index being rebuilt, which holds 4 bytes (up
//     to 5 while it grows) for every entry record in the live segments,
//     deleted entries' included, until they are replayed.
package wal

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/internal/frame"
	"github.com/keelraft/raft/storage/internal/lock"
	"github.com/keelraft/raft/storage/internal/vfs"
)

// Options configure a Log. The zero value selects the defaults.
type Options struct {
	// SegmentSize is the size segment files are preallocated to; a segment
	// is sealed and a new one started when the next batch would not fit.
	// A batch larger than a segment gets a segment of its own. Default 64
	// MiB; it must be a multiple of Align and at least 4 Align and 4 KiB.
	SegmentSize int64
	// MaxEntrySize is the largest Data StoreLogs accepts. Default 64 MiB;
	// at most 1 GiB.
	MaxEntrySize int
	// Align pads every batch to a multiple of Align bytes, so that writing
	// the next batch never rewrites a disk block holding acknowledged data.
	// It should be the file system's block size. Default 4096; a power of
	// two up to 65536. 1 turns padding off, which is safe only on disks
	// whose writes never damage neighbouring bytes of the same sector.
	Align int
	// Logger receives recovery notices, such as a torn tail being
	// truncated. Nil means silent.
	Logger *slog.Logger
	// Metrics, when set, receives the Log's figures, subsystem "wal":
	//
	//   - batches, entries, syncs (counters): what Stats counts, from the
	//     same counters.
	//   - written (counter, bytes): bytes of the batches written.
	//   - write_duration, sync_duration (histograms, seconds): each
	//     batch's write, and each fsync.
	//   - batch_entries (histogram): entries per batch, the group commit.
	//   - reads (counter): entries read by GetLog; corrupt_reads
	//     (counter): GetLog calls that found a damaged record.
	//   - deletes (counter, label kind = prefix, suffix or all):
	//     DeleteRange calls that deleted entries.
	//   - segments (gauge): segment files; size (gauge, bytes): the bytes
	//     used in them.
	//   - torn_tails (counter): torn final batches truncated by recovery;
	//     recovery_duration (gauge, seconds): how long Open's recovery
	//     took.
	//   - failures (counter): times the store stopped for good
	//     (ErrFailed).
	//
	// The instruments are made by Open. Nil reports nothing, at no cost.
	Metrics metrics.Sink

	fs vfs.FS // the file system; tests set it
}

const (
	defaultSegmentSize  = frame.DefaultSegmentSize
	defaultMaxEntrySize = frame.DefaultMaxEntrySize
	defaultAlign        = frame.DefaultAlign
	maxAlign            = frame.MaxAlign
)

func (o *Options) fill() error {
	sz := frame.Sizes{SegmentSize: o.SegmentSize, MaxEntrySize: o.MaxEntrySize, Align: o.Align}
	if err := sz.Fill("wal"); err != nil {
		return err
	}
	o.SegmentSize, o.MaxEntrySize, o.Align = sz.SegmentSize, sz.MaxEntrySize, sz.Align
	o.Logger = frame.Logger(o.Logger)
	if o.fs == nil {
		o.fs = vfs.OS
	}
	return nil
}

// dataStart is where a new segment's first batch goes.
func (o *Options) dataStart() int { return max(segHeaderLen, o.Align) }

// Log is a segmented write-ahead log. It implements raft.LogStore and is
// safe for concurrent use.
type Log struct {
	fs   vfs.FS
	dir  string
	opts Options

	mu   sync.RWMutex
	cond *sync.Cond // on mu; signalled when a flush ends

	// live are the segments holding durable entries, oldest first, each
	// holding at least one; their index ranges are contiguous. The
	// flusher changes them, and their indexes, holding mu.
	live []*segment
	// segs are the segment files, oldest first; the last is active. Only
	// the flusher uses them.
	segs []*segment

	// Reserved state: next is the index the next appended entry gets, and
	// empty says the log (with pending entries) holds nothing, so that
	// StoreLogs may start it at any index.
	next  uint64
	empty bool

	pending *batch // entries waiting to be written
	spare   *batch
	// Batches are numbered from 1: seq is the pending batch's number,
	// batches up to done have been written or have failed, and batches up
	// to durable were written and synced. A caller that added entries to
	// batch n waits until done >= n and has succeeded if durable >= n.
	seq, done, durable uint64
	flushing           bool // a goroutine is writing: the flusher
	failed             error
	closed             bool

	// used is the sum of the segments' sizes: the bytes up to the end of
	// their last batch. Only the flusher changes it.
	used int64
	m    *logMetrics
	lock *lock.Lock // nil off the OS file system
}

type segment struct {
	id     uint64
	name   string
	f      vfs.File
	size   int64 // end of the last batch: where the next one goes
	filled int64 // bytes before filled have been written, with data or zeros
	sealed bool
	ix     segIndex // the live entries in the segment
}

// batch is the entries waiting to be written: their records, back to
// back, in buf.
type batch struct {
	first uint64 // index of the first entry
	buf   []byte
	count int // records in buf
}

// maxKeptBuf bounds the capacity of a batch buffer kept for reuse after
// its batch is written; a larger one, grown by a large batch, is dropped.
const maxKeptBuf = 1 << 20

// Stats counts a Log's work since it was opened. Options.Metrics reports
// the same counts.
type Stats struct {
	// Entries is the number of entries appended.
	Entries uint64
	// Batches is the number of batches written.
	Batches uint64
	// Syncs is the number of fsyncs of segment data, rotation included.
	Syncs uint64
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	return Stats{Entries: l.m.entries.load(), Batches: l.m.batches.load(), Syncs: l.m.syncs.load()}
}

// Open opens the log in dir, creating dir and the log if needed, and
// recovers it: a torn final batch, which was never acknowledged, is
// truncated and logged; any other damage makes Open fail with an error
// wrapping ErrCorrupt, and a segment of a newer format version with a
// *VersionError. Open first locks dir/LOCK, kept until Close: a directory
// another process or another open Log is using is refused (ErrLocked)
// before any file is read.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	l := &Log{fs: opts.fs, dir: filepath.Clean(dir), opts: opts, pending: &batch{}, spare: &batch{}, seq: 1,
		m: newLogMetrics(opts.Metrics)}
	l.cond = sync.NewCond(&l.mu)
	var start time.Time
	if l.m.recoverTime != nil {
		start = time.Now()
	}
	lk, err := lockFile(l.fs, filepath.Join(l.dir, lockName), "log "+l.dir)
	if err != nil {
		return nil, err
	}
	l.lock = lk
	if err := l.recoverLog(); err != nil {
		for _, s := range l.segs {
			s.f.Close()
		}
		lk.Release()
		return nil, err
	}
	if l.m.recoverTime != nil {
		l.m.recoverTime.Set(time.Since(start).Seconds())
	}
	for _, s := range l.segs {
		l.used += s.size
	}
	l.segmentsChanged()
	return l, nil
}

func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

// fail makes the store permanently failed. Callers hold mu.
func (l *Log) fail(err error) {
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		add(l.m.failures, 1)
		l.opts.Logger.Error("wal: store failed; no more writes will be acknowledged", "dir", l.dir, "err", err)
	}
}

// FirstIndex implements raft.LogStore.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	if len(l.live) == 0 {
		return 0, nil
	}
	return l.live[0].ix.first, nil
}

// LastIndex implements raft.LogStore.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	if n := len(l.live); n > 0 {
		return l.live[n-1].ix.last(), nil
	}
	return 0, nil
}

// locate returns the segment holding entry index and the entry's position
// in its index, or nil: O(1) in the active segment, O(log segments) in
// the others.
func (l *Log) locate(index uint64) (*segment, int) {
	live := l.live
	n := len(live)
	if n == 0 || index < live[0].ix.first {
		return nil, 0
	}
	if s := live[n-1]; index >= s.ix.first {
		if i := index - s.ix.first; i < uint64(s.ix.len()) {
			return s, int(i)
		}
		return nil, 0
	}
	// live[lo].ix.first <= index < live[hi].ix.first; the ranges are
	// contiguous, so the entry is in live[lo] once hi = lo+1.
	lo, hi := 0, n-1
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if live[m].ix.first <= index {
			lo = m
		} else {
			hi = m
		}
	}
	return live[lo], int(index - live[lo].ix.first)
}

// readAhead is the most GetLog reads before it knows a record's length.
const readAhead = 4096

// scratch holds buffers of readAhead bytes for GetLog.
var scratch = sync.Pool{New: func() any { b := make([]byte, readAhead); return &b }}

// GetLog implements raft.LogStore: one index lookup and, for a record of
// up to readAhead bytes, one read. The record's checksum is verified; a
// mismatch is an error wrapping ErrCorrupt. The returned Data is the
// caller's: it shares memory with nothing else.
func (l *Log) GetLog(index uint64, log *raft.Log) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usable(); err != nil {
		return err
	}
	s, i := l.locate(index)
	if s == nil {
		return raft.ErrLogNotFound
	}
	// lim bounds the record's length: reading up to readAhead of it gets
	// the record, or its header, which says how much more to read.
	off, lim := s.ix.extent(i)
	sp := scratch.Get().(*[]byte)
	defer scratch.Put(sp)
	buf := (*sp)[:min(lim, readAhead)]
	if err := readAt(s, buf, off); err != nil {
		return err
	}
	rec, owned := buf, false
	if len(buf) >= recHeaderLen {
		switch n := recHeaderLen + int64(le.Uint32(buf[4:])); {
		case n > lim:
			return &CorruptError{Segment: s.id, File: s.name, Offset: off,
				Reason: fmt.Sprintf("record length %d overruns the entry's extent of %d bytes", n, lim)}
		case n > int64(len(buf)):
			rec, owned = make([]byte, n), true
			copy(rec, buf)
			if err := readAt(s, rec[len(buf):], off+int64(len(buf))); err != nil {
				return err
			}
		default:
			rec = buf[:n]
		}
	}
	r, why := parseRecord(rec, 0)
	if why == "" && (r.Kind != kindEntry || r.N != len(rec) || le.Uint64(r.Payload) != index) {
		why = "record is not the expected entry"
	}
	if why != "" {
		add(l.m.corrupt, 1)
		return &CorruptError{Segment: s.id, File: s.name, Offset: off, Reason: why}
	}
	data := r.Payload[entryHdrLen:len(r.Payload):len(r.Payload)]
	if !owned {
		data = append(make([]byte, 0, len(data)), data...)
	}
	*log = raft.Log{
		Index: index,
		Term:  le.Uint64(r.Payload[8:]),
		Type:  raft.LogType(r.Payload[16]),
		Data:  data,
	}
	add(l.m.reads, 1)
	return nil
}

// readAt fills buf from s at off.
func readAt(s *segment, buf []byte, off int64) error {
	if n, err := s.f.ReadAt(buf, off); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("wal: segment %d offset %d: %w", s.id, off, err)
	}
	return nil
}

// StoreLogs implements raft.LogStore. The entries must follow the last
// entry, stored or being stored by a concurrent call, or start the log
// when it is empty. It returns once they are durable; concurrent calls
// share one write and one fsync.
func (l *Log) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	want := l.next
	if l.empty {
		want = logs[0].Index
	}
	for i, e := range logs {
		if e.Index != want+uint64(i) || e.Index == 0 {
			return fmt.Errorf("wal: StoreLogs: entry %d has index %d, want %d", i, e.Index, want+uint64(i))
		}
		if len(e.Data) > l.opts.MaxEntrySize {
			return fmt.Errorf("wal: StoreLogs: entry %d is %d bytes, more than MaxEntrySize %d", e.Index, len(e.Data), l.opts.MaxEntrySize)
		}
	}
	b := l.pending
	for _, e := range logs {
		b.addEntry(e.Index, e.Term, uint8(e.Type), e.Data)
	}
	l.next, l.empty = want+uint64(len(logs)), false
	return l.commitLocked()
}

// Append appends entries after the last one, assigning their indexes
// (the Index fields given are ignored and overwritten), and returns the
// index of the first. It is StoreLogs for callers that do not track the
// last index themselves, such as concurrent appenders; both share the
// same group commit.
func (l *Log) Append(logs []*raft.Log) (first uint64, err error) {
	if len(logs) == 0 {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	for _, e := range logs {
		if len(e.Data) > l.opts.MaxEntrySize {
			return 0, fmt.Errorf("wal: Append: entry of %d bytes, more than MaxEntrySize %d", len(e.Data), l.opts.MaxEntrySize)
		}
	}
	first = l.next
	b := l.pending
	for i, e := range logs {
		e.Index = first + uint64(i)
		b.addEntry(e.Index, e.Term, uint8(e.Type), e.Data)
	}
	l.next, l.empty = first+uint64(len(logs)), false
	return first, l.commitLocked()
}

func (b *batch) addEntry(index, term uint64, typ uint8, data []byte) {
	if b.count == 0 {
		b.first = index
	}
	b.buf = appendEntry(b.buf, index, term, typ, data)
	b.count++
}

// commitLocked waits until the pending batch, to which the caller added
// its entries, is durable, flushing it itself if no one else is.
func (l *Log) commitLocked() error {
	n := l.seq
	for l.done < n {
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushing = true
		l.flushLocked()
		l.flushing = false
		l.cond.Broadcast()
	}
	if n <= l.durable {
		return nil
	}
	return l.failed
}

// flushLocked writes and syncs the pending batch. The caller holds mu and
// has set flushing; mu is released during I/O.
func (l *Log) flushLocked() {
	b := l.pending
	if b.count == 0 {
		return
	}
	n := l.seq
	l.seq++
	l.pending, l.spare = l.spare, nil
	ents := len(b.buf) // write appends the padding and commit record
	var seg *segment
	var base int64
	err := l.failed
	if err == nil {
		l.mu.Unlock()
		// write returns the buffer grown by the batch's padding and commit
		// record; keeping it lets the next batch reuse the memory.
		seg, base, b.buf, err = l.write(b.buf, b.count)
		l.mu.Lock()
	}
	if err != nil {
		l.fail(err)
		// Nothing pending can be acknowledged any more.
		l.pending.reset()
		l.done = l.seq
	} else {
		l.index(seg, base, b.first, b.buf[:ents])
		l.m.entries.add(uint64(b.count))
		if l.m.perBatch != nil {
			l.m.perBatch.Observe(float64(b.count))
		}
		l.done, l.durable = n, n
	}
	b.reset()
	l.spare = b
}

// index adds the entries of a batch written at base in seg, whose records
// are ents, to the index. The caller holds mu.
func (l *Log) index(seg *segment, base int64, first uint64, ents []byte) {
	if n := len(l.live); n == 0 || l.live[n-1] != seg {
		seg.ix = segIndex{first: first}
		l.live = append(l.live, seg)
	}
	for off := 0; off < len(ents); off += recHeaderLen + int(le.Uint32(ents[off+4:])) {
		seg.ix.push(base + int64(off))
	}
	seg.ix.tail = base + int64(len(ents))
}

func (b *batch) reset() {
	if cap(b.buf) > maxKeptBuf {
		b.buf = nil // don't pin a large batch's buffer
	}
	b.buf, b.count = b.buf[:0], 0
}

// write writes buf, count records, as one batch to the active segment,
// rotating first if it does not fit, and syncs it. Only the flusher calls
// it, without mu.
func (l *Log) write(buf []byte, count int) (*segment, int64, []byte, error) {
	seg := l.segs[len(l.segs)-1]
	need := int64(len(buf)) + int64(l.opts.Align) + 2*commitLen
	if seg.size > int64(l.opts.dataStart()) && seg.size+need > l.opts.SegmentSize {
		var err error
		if seg, err = l.rotate(); err != nil {
			return nil, 0, buf, err
		}
	}
	base := seg.size
	buf = finishBatch(buf, base, count, l.opts.Align)
	if err := l.writeSync(seg, buf); err != nil {
		return nil, 0, buf, err
	}
	return seg, base, buf, nil
}

// zeroChunk is how far ahead of the data segments are filled with zeros.
const zeroChunk = 1 << 20

var zeros [zeroChunk]byte

// writeSync writes a finished batch at the end of seg and syncs it.
//
// Before the batch reaches the zero-filled part of the segment, the next
// zeroChunk bytes are overwritten with zeros. Preallocation reserves disk
// space, but the file system still records on each fdatasync that blocks
// were first written; writing them ahead, a megabyte at a time, leaves
// most fdatasyncs with only data to flush.
func (l *Log) writeSync(seg *segment, buf []byte) error {
	w := startStopwatch(l.m.timed)
	end := seg.size + int64(len(buf))
	if end > seg.filled {
		to := min(end+zeroChunk, max(l.opts.SegmentSize, end))
		if to > end {
			if _, err := seg.f.WriteAt(zeros[:to-end], end); err != nil {
				return fmt.Errorf("wal: segment %d: write zeros at %d: %w", seg.id, end, err)
			}
		}
		seg.filled = to
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		return fmt.Errorf("wal: segment %d: write at %d: %w", seg.id, seg.size, err)
	}
	w.lap(l.m.writeTime)
	l.m.batches.add(1)
	add(l.m.written, uint64(len(buf)))
	if err := l.sync(seg.f, &w); err != nil {
		return fmt.Errorf("wal: segment %d: sync: %w", seg.id, err)
	}
	seg.size += int64(len(buf))
	l.used += int64(len(buf))
	set(l.m.size, float64(l.used))
	return nil
}

// sync fsyncs a segment file, counting it and timing it with w, which
// the caller started.
func (l *Log) sync(f vfs.File, w *stopwatch) error {
	l.m.syncs.add(1)
	err := f.Sync()
	w.lap(l.m.syncTime)
	return err
}

// segmentsChanged reports the segment files and their size. Only the
// flusher (or Open) calls it.
func (l *Log) segmentsChanged() {
	set(l.m.segments, float64(len(l.segs)))
	set(l.m.size, float64(l.used))
}

// rotate seals the active segment and starts the next one.
func (l *Log) rotate() (*segment, error) {
	old := l.segs[len(l.segs)-1]
	if err := l.writeSync(old, finishBatch(appendRecord(nil, kindSeal, nil, nil), old.size, 1, l.opts.Align)); err != nil {
		return nil, err
	}
	old.sealed = true
	seg, err := l.createSegment(old.id + 1)
	if err != nil {
		return nil, err
	}
	// The sealed segment's index is complete: give back what its growth
	// left unused. Only the flusher changes indexes, so it may copy this
	// one without mu.
	fitted, refit := old.ix, old.ix.slack()
	if refit {
		fitted.fit()
	}
	l.mu.Lock()
	l.segs = append(l.segs, seg)
	if refit {
		old.ix = fitted
	}
	l.mu.Unlock()
	l.used += seg.size
	l.segmentsChanged()
	return seg, nil
}

// createSegment creates, preallocates and durably links a new segment.
func (l *Log) createSegment(id uint64) (*segment, error) {
	name := filepath.Join(l.dir, segmentName(id))
	f, err := l.fs.Create(name)
	if err != nil {
		return nil, fmt.Errorf("wal: create segment %d: %w", id, err)
	}
	seg := &segment{id: id, name: name, f: f}
	hdr := encodeHeader(id, l.opts.dataStart())
	err = func() error {
		if _, err := f.WriteAt(hdr, 0); err != nil {
			return err
		}
		if err := f.Allocate(l.opts.SegmentSize); err != nil {
			return err
		}
		w := startStopwatch(l.m.timed)
		if err := l.sync(f, &w); err != nil {
			return err
		}
		return l.fs.SyncDir(l.dir)
	}()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: create segment %d: %w", id, err)
	}
	seg.size, seg.filled = int64(len(hdr)), int64(len(hdr))
	return seg, nil
}

// DeleteRange implements raft.LogStore. It deletes a prefix (whole
// segments are dropped once no entry in them is live), a suffix, or
// everything; deleting from the middle is an error. Either way a record
// saying what was deleted is synced first, so a crash leaves the old or
// the new state.
func (l *Log) DeleteRange(min, max uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	// Become the flusher, after writing whatever is pending: the deletion
	// is ordered after every append that was called before it.
	for l.flushing {
		l.cond.Wait()
	}
	l.flushing = true
	defer func() {
		l.flushing = false
		l.cond.Broadcast()
	}()
	l.flushLocked()
	if err := l.usable(); err != nil {
		return err
	}
	if len(l.live) == 0 || min > max {
		return nil
	}
	first, last := l.live[0].ix.first, l.live[len(l.live)-1].ix.last()
	if max < first || min > last {
		return nil
	}
	var rec []byte
	var newFirst, keep, deadBelow uint64
	var kind int
	switch {
	case min <= first && max >= last: // everything
		kind = deleteAll
		newFirst, keep = last+1, 0
		rec = appendU64s(nil, kindPrefix, newFirst, 0)
		l.next, l.empty = newFirst, true
	case min <= first: // a prefix
		kind = deletePrefix
		newFirst, keep = max+1, last-max
		s, _ := l.locate(newFirst)
		deadBelow = s.id
		rec = appendU64s(nil, kindPrefix, newFirst, deadBelow)
	case max >= last: // a suffix
		kind = deleteSuffix
		newFirst, keep = first, min-first
		rec = appendU64s(nil, kindSuffix, min-1)
		l.next = min
	default:
		return fmt.Errorf("wal: DeleteRange(%d, %d) would leave a gap in [%d, %d]", min, max, first, last)
	}
	l.mu.Unlock()
	seg, _, _, err := l.write(rec, 1)
	l.mu.Lock()
	if err != nil {
		l.fail(err)
		return l.failed
	}
	add(l.m.deletes[kind], 1)
	if deadBelow == 0 && keep == 0 {
		deadBelow = seg.id
	}
	// Apply to the index.
	if newFirst != first {
		l.dropBefore(newFirst)
	} else {
		l.dropFrom(first + keep)
	}
	// Drop dead segments, oldest first. GetLog no longer refers to them.
	var dead []*segment
	for len(l.segs) > 1 && l.segs[0].id < deadBelow {
		dead = append(dead, l.segs[0])
		l.used -= l.segs[0].size
		l.segs = l.segs[1:]
	}
	if len(dead) == 0 {
		return nil
	}
	l.segmentsChanged()
	l.mu.Unlock()
	err = l.removeSegments(dead)
	l.mu.Lock()
	if err != nil {
		l.fail(err)
		return l.failed
	}
	return nil
}

// dropBefore deletes the entries below index from the index, releasing
// their memory. The caller holds mu.
func (l *Log) dropBefore(index uint64) {
	k := 0
	for k < len(l.live) && l.live[k].ix.last() < index {
		l.live[k].ix.reset()
		k++
	}
	l.live = slices.Delete(l.live, 0, k)
	if len(l.live) > 0 {
		if x := &l.live[0].ix; index > x.first {
			x.dropFront(int(index - x.first))
			x.fit()
		}
	}
}

// dropFrom deletes the entries from index on from the index, releasing
// their memory. The caller holds mu.
func (l *Log) dropFrom(index uint64) {
	for n := len(l.live); n > 0 && l.live[n-1].ix.first >= index; n-- {
		l.live[n-1].ix.reset()
		l.live[n-1] = nil
		l.live = l.live[:n-1]
	}
	if n := len(l.live); n > 0 {
		if x := &l.live[n-1].ix; index <= x.last() {
			x.truncate(int(index - x.first))
			if x.slack() {
				x.fit()
			}
		}
	}
}

func (l *Log) removeSegments(dead []*segment) error {
	for _, s := range dead {
		s.f.Close()
		if err := l.fs.Remove(s.name); err != nil {
			return fmt.Errorf("wal: remove segment %d: %w", s.id, err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("wal: sync %s: %w", l.dir, err)
	}
	return nil
}

// Close writes what is pending, closes the files and releases the
// directory's lock. Calls after Close return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	for l.flushing {
		l.cond.Wait()
	}
	l.flushing = true
	for l.pending.count > 0 {
		l.flushLocked()
	}
	l.flushing = false
	l.closed = true
	var err error
	for _, s := range l.segs {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if lerr := l.lock.Release(); lerr != nil && err == nil {
		err = lerr
	}
	l.segs, l.live = nil, nil
	l.cond.Broadcast()
	return err
}

var _ raft.LogStore = (*Log)(nil)
