package wal

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
)

// scan is what recovery learned from one segment: where its entries are,
// and the records that replay applies to them.
type scan struct {
	seg *segment
	// offs holds every entry record of the segment, in file order; its
	// tail is the end of the last.
	offs segIndex
	// ops are the segment's deletion records and the first entry of each
	// run of entries with consecutive indexes, in file order.
	ops []op
	// next is the index that continues the run of the last entry.
	next uint64
	// torn is set when the last segment ends with a torn batch at seg.size.
	torn bool
}

// op is a record that replay applies: at is the number of entries before
// it in the segment.
type op struct {
	kind byte // kindEntry: the first of a run of entries
	at   int
	off  int64
	a, b uint64 // entry: index; suffix: after; prefix: first, segment
}

// add records the records of a valid batch, b[start:end) without its
// commit record, and reports whether the last that is not padding is a
// seal.
func (sc *scan) add(b []byte, start, end int) (sealed bool) {
	for off := start; off < end; {
		n := recHeaderLen + int(le.Uint32(b[off+4:]))
		p := b[off+recHeaderLen : off+n]
		switch kind := b[off+8]; kind {
		case kindEntry:
			idx := le.Uint64(p)
			if sc.next == 0 || idx != sc.next {
				sc.ops = append(sc.ops, op{kind: kind, at: sc.offs.len(), off: int64(off), a: idx})
			}
			sc.next = idx + 1
			sc.offs.push(int64(off))
			sc.offs.tail = int64(off + n)
			sealed = false
		case kindSuffix:
			sc.ops = append(sc.ops, op{kind: kind, at: sc.offs.len(), off: int64(off), a: le.Uint64(p)})
			sc.next, sealed = 0, false
		case kindPrefix:
			sc.ops = append(sc.ops, op{kind: kind, at: sc.offs.len(), off: int64(off), a: le.Uint64(p), b: le.Uint64(p[8:])})
			sc.next, sealed = 0, false
		case kindSeal:
			sealed = true
		}
		off += n
	}
	return sealed
}

// recoverLog opens the segments, validates them and rebuilds the index.
//
// Segments are read newest first. The newest prefix record names the
// oldest live segment; older segment files are leftovers of an interrupted
// prefix truncation and are removed unread. Every live segment but the
// last must be sealed and wholly valid. In the last one, invalid bytes
// after the last valid batch are a torn write, and are truncated, unless a
// valid batch follows them: then synced data is damaged and recovery
// fails with ErrCorrupt. A segment of a newer format version fails it
// with a *VersionError, before any file is changed.
func (l *Log) recoverLog() error {
	if err := l.fs.MkdirAll(l.dir); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	var ids []uint64
	for _, n := range names {
		if id, ok := parseSegmentName(n); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	var scans []*scan // newest first
	var dead []uint64
	var buf []byte // segment bytes, reused
	deadBelow := uint64(0)
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if id < deadBelow {
			dead = append(dead, id)
			continue
		}
		isLast := len(scans) == 0
		var sc *scan
		sc, buf, err = l.scanSegment(id, isLast, buf)
		if err != nil {
			closeScans(scans)
			return err
		}
		if sc == nil {
			// An interrupted creation of the newest segment, with nothing
			// in it: createSegment below reuses the name.
			continue
		}
		if len(scans) > 0 && scans[len(scans)-1].seg.id != id+1 {
			closeScans(append(scans, sc))
			return &CorruptError{Segment: id + 1, File: filepath.Join(l.dir, segmentName(id+1)), Reason: "segment missing"}
		}
		scans = append(scans, sc)
		if deadBelow == 0 {
			for j := len(sc.ops) - 1; j >= 0; j-- {
				ev := sc.ops[j]
				if ev.kind != kindPrefix {
					continue
				}
				deadBelow = ev.b
				if deadBelow == 0 {
					deadBelow = id
				}
				if deadBelow > id {
					closeScans(scans)
					return &CorruptError{Segment: id, File: sc.seg.name, Offset: ev.off, Reason: "prefix record names a later segment"}
				}
				break
			}
		}
	}
	buf = nil
	slices.Reverse(scans)
	for _, sc := range scans {
		l.segs = append(l.segs, sc.seg)
	}
	if err := l.replay(scans); err != nil {
		return err
	}

	// Make the last segment writable: truncate a torn tail, or start a new
	// segment after a sealed one.
	if n := len(scans); n > 0 && scans[n-1].torn {
		seg := scans[n-1].seg
		l.opts.Logger.Warn("wal: truncating torn tail: the last batch was never acknowledged",
			"segment", seg.id, "offset", seg.size)
		if err := repairTail(seg, l.opts.SegmentSize); err != nil {
			return err
		}
		add(l.m.tornTails, 1)
	}
	if n := len(l.segs); n == 0 || l.segs[n-1].sealed {
		id := uint64(1)
		if n > 0 {
			id = l.segs[n-1].id + 1
		} else if len(ids) > 0 {
			id = ids[len(ids)-1]
		}
		seg, err := l.createSegment(id)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
	}
	return format.RemoveDead(l.fs, l.dir, dead, "wal")
}

func closeScans(scans []*scan) {
	for _, sc := range scans {
		sc.seg.f.Close()
	}
}

func repairTail(seg *segment, size int64) error {
	err := seg.f.Truncate(seg.size)
	if err == nil {
		err = seg.f.Allocate(size)
	}
	if err == nil {
		err = seg.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("wal: segment %d: truncate torn tail: %w", seg.id, err)
	}
	return nil
}

// scanSegment reads and validates one segment, reading it into buf,
// which it returns, grown if need be, for the next. It returns a nil scan
// for a newest segment whose creation was interrupted: a bad header and
// no valid batch. A header of a newer format version is not a bad one:
// it is a *VersionError, which stops recovery before it changes a file.
func (l *Log) scanSegment(id uint64, isLast bool, buf []byte) (*scan, []byte, error) {
	name := filepath.Join(l.dir, segmentName(id))
	f, err := l.fs.Open(name)
	if err != nil {
		return nil, buf, fmt.Errorf("wal: open segment %d: %w", id, err)
	}
	sc, buf, err := scanFile(f, id, name, isLast, buf)
	if err != nil || sc == nil {
		f.Close()
		return nil, buf, err
	}
	sc.seg.f = f
	return sc, buf, nil
}

func scanFile(f interface {
	io.ReaderAt
	Size() (int64, error)
}, id uint64, name string, isLast bool, buf []byte) (*scan, []byte, error) {
	size, err := f.Size()
	if err != nil {
		return nil, buf, fmt.Errorf("wal: segment %d: %w", id, err)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	b := buf[:size]
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, fmt.Errorf("wal: read segment %d: %w", id, err)
	}
	sc, err := scanBytes(b, id, name, isLast)
	return sc, buf, err
}

// scanBytes validates the bytes of a segment; see scanSegment.
func scanBytes(buf []byte, id uint64, name string, isLast bool) (*scan, error) {
	corrupt := func(off int, why string) error {
		return &CorruptError{Segment: id, File: name, Offset: int64(off), Reason: why}
	}
	if v, ok := newerVersion(buf, segFamily, SegmentFormatVersion, headerIntact); ok {
		return nil, &VersionError{Segment: id, File: name, Version: v, Newest: SegmentFormatVersion}
	}
	ds, why := checkHeader(buf, id)
	if why != "" {
		if _, ok := validBatchAfter(buf, 0); isLast && !ok {
			return nil, nil
		}
		return nil, corrupt(0, why)
	}
	sc := &scan{seg: &segment{id: id, name: name}}
	p := ds
	failAt, bad := -1, 0
	for p < len(buf) {
		var end int
		end, bad, why = parseBatch(buf, p)
		if why != "" {
			failAt = p
			break
		}
		sealed := sc.add(buf, p, end-commitLen)
		p = end
		if sealed {
			sc.seg.sealed = true
			break
		}
	}
	sc.seg.size = int64(p)
	sc.seg.filled = sc.seg.size
	switch {
	case sc.seg.sealed:
	case failAt < 0 || allZero(buf[failAt:]):
		if !isLast {
			return nil, corrupt(p, "segment ends without a seal")
		}
	case !isLast:
		return nil, corrupt(bad, why)
	default:
		if _, ok := validBatchAfter(buf, failAt+1); ok {
			return nil, corrupt(bad, why)
		}
		sc.torn = true
	}
	return sc, nil
}

// replay rebuilds the index from the records of the live segments.
func (l *Log) replay(scans []*scan) error {
	hint := uint64(1) // the next index when the log ends up empty
	for _, sc := range scans {
		s := sc.seg
		for k, o := range sc.ops {
			switch o.kind {
			case kindEntry:
				// The run o starts holds the entries up to the next op.
				end := sc.offs.len()
				if k+1 < len(sc.ops) {
					end = sc.ops[k+1].at
				}
				idx := o.a
				// An empty log may start at any index, as StoreLogs allows.
				want := idx
				if n := len(l.live); n > 0 {
					want = l.live[n-1].ix.last() + 1
				}
				if idx == 0 || idx != want {
					return &CorruptError{Segment: s.id, File: s.name, Offset: o.off,
						Reason: fmt.Sprintf("entry %d where %d was expected", idx, want)}
				}
				if n := len(l.live); n == 0 || l.live[n-1] != s {
					if o.at == 0 && end == sc.offs.len() {
						// The common case, the whole segment's entries
						// live: the index is the scan's.
						s.ix, sc.offs = sc.offs, segIndex{}
						s.ix.first = idx
						l.live = append(l.live, s)
						hint = idx + uint64(end)
						continue
					}
					s.ix = segIndex{first: idx}
					l.live = append(l.live, s)
				}
				for j := o.at; j < end; j++ {
					s.ix.push(sc.offs.at(j))
				}
				s.ix.tail = sc.offs.tail
				if end < sc.offs.len() {
					s.ix.tail = sc.offs.at(end)
				}
				hint = idx + uint64(end-o.at)
			case kindSuffix:
				k := o.a
				if n := len(l.live); n > 0 && k < l.live[n-1].ix.last() {
					l.dropFrom(k + 1)
					hint = k + 1
				}
				if len(l.live) == 0 {
					hint = k + 1
				}
			case kindPrefix:
				if len(l.live) > 0 && o.a > l.live[0].ix.first {
					l.dropBefore(o.a)
				}
				if len(l.live) == 0 {
					hint = max(hint, o.a)
				}
			}
		}
		// The segment is complete: release the scan's copy, and what the
		// index's growth left unused.
		sc.offs, sc.ops = segIndex{}, nil
		if s.ix.slack() {
			s.ix.fit()
		}
	}
	if n := len(l.live); n > 0 {
		l.next = l.live[n-1].ix.last() + 1
	} else {
		l.next, l.empty = hint, true
	}
	return nil
}
