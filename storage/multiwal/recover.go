package multiwal

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
)

// recover opens the segments, validates them and rebuilds every group's
// state, then makes the last segment writable.
//
// The live segments are those after the last gap in the segment IDs (a
// gap is left by an interrupted deletion; the segments before it were all
// being deleted). They are read oldest first: the oldest one's checkpoint
// is the starting state and every later record is replayed. Every live
// segment but the last must be sealed and wholly valid. In the last one,
// invalid bytes after the last valid batch are a torn write, truncated,
// unless a valid batch follows them (ErrCorrupt). A last segment without
// a complete checkpoint batch is an interrupted creation and is made
// again. A segment of a newer format is a *VersionError. Nothing on disk
// changes until every segment has been read and checked.
func (w *WAL) recover() error {
	if err := w.fs.MkdirAll(w.dir); err != nil {
		return fmt.Errorf("multiwal: %w", err)
	}
	names, err := w.fs.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("multiwal: %w", err)
	}
	var ids []uint64
	for _, n := range names {
		if id, ok := parseSegmentName(n); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	start := 0
	for i := 1; i < len(ids); i++ {
		if ids[i] != ids[i-1]+1 {
			start = i
		}
	}
	dead := ids[:start]
	for _, id := range dead {
		if err := w.checkVersion(id); err != nil {
			return err
		}
	}
	var buf []byte
	var torn *segment
	interrupted := false
	for i, id := range ids[start:] {
		isLast := start+i == len(ids)-1
		var seg *segment
		var isTorn bool
		seg, isTorn, buf, err = w.scanSegment(id, isLast, len(w.segs) == 0, buf)
		if err != nil {
			return err
		}
		if seg == nil {
			interrupted = true
			continue
		}
		w.segs = append(w.segs, seg)
		if isTorn {
			torn = seg
		}
	}
	if len(w.segs) == 0 && (len(dead) > 0 || interrupted && ids[len(ids)-1] != 1) {
		// Only a new log's first segment may be missing its checkpoint
		// with nothing before it: otherwise the state it would have
		// carried is gone, and starting empty would drop it silently.
		id := ids[len(ids)-1]
		return &CorruptError{Segment: id, File: filepath.Join(w.dir, segmentName(id)), Reason: "no complete segment: the newest has no checkpoint and the older ones are gone"}
	}
	for _, g := range w.groups {
		if !g.empty() && (len(g.runs) == 0 || g.runs[0].first != g.first) {
			s := w.segs[0]
			return &CorruptError{Segment: s.id, File: s.name, Reason: fmt.Sprintf(
				"group %d: entries from %d on are in no segment (a segment is missing)", g.id, g.first)}
		}
		g.rfirst, g.rlast = g.first, g.last
	}

	// Make the last segment writable.
	if torn != nil {
		w.opts.Logger.Warn("multiwal: truncating torn tail: the last batch was never acknowledged",
			"segment", torn.id, "offset", torn.size)
		err := torn.f.Truncate(torn.size)
		if err == nil {
			err = torn.f.Allocate(w.opts.SegmentSize)
		}
		if err == nil {
			err = torn.f.Sync()
		}
		if err != nil {
			return fmt.Errorf("multiwal: segment %d: truncate torn tail: %w", torn.id, err)
		}
	}
	if n := len(w.segs); n == 0 || w.segs[n-1].sealed {
		id := uint64(1)
		if n > 0 {
			id = w.segs[n-1].id + 1
		} else if interrupted {
			id = ids[len(ids)-1]
		}
		ckpt, count := w.checkpoint(id)
		seg, err := w.createSegment(id, ckpt, count)
		if err != nil {
			return err
		}
		w.segs = append(w.segs, seg)
	}
	return format.RemoveDead(w.fs, w.dir, dead, "multiwal")
}

// checkVersion refuses a segment of a newer format version.
func (w *WAL) checkVersion(id uint64) error {
	name := filepath.Join(w.dir, segmentName(id))
	f, err := w.fs.Open(name)
	if err != nil {
		return fmt.Errorf("multiwal: open segment %d: %w", id, err)
	}
	defer f.Close()
	var b [segHeaderLen]byte
	n, _ := f.ReadAt(b[:], 0)
	if v, ok := newerVersion(b[:n]); ok {
		return &VersionError{Segment: id, File: name, Version: v, Newest: SegmentFormatVersion}
	}
	return nil
}

// scanSegment reads segment id into buf (returned, grown if need be),
// validates it and replays its records. It returns a nil segment for a
// last segment whose creation was interrupted, and torn when the last
// segment ends with a torn batch at seg.size.
func (w *WAL) scanSegment(id uint64, isLast, oldest bool, buf []byte) (seg *segment, torn bool, _ []byte, err error) {
	name := filepath.Join(w.dir, segmentName(id))
	f, err := w.fs.Open(name)
	if err != nil {
		return nil, false, buf, fmt.Errorf("multiwal: open segment %d: %w", id, err)
	}
	defer func() {
		if seg == nil {
			f.Close()
		}
	}()
	size, err := f.Size()
	if err != nil {
		return nil, false, buf, fmt.Errorf("multiwal: segment %d: %w", id, err)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	b := buf[:size]
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, buf, fmt.Errorf("multiwal: read segment %d: %w", id, err)
	}
	s, torn, err := w.scanBytes(b, id, name, isLast, oldest)
	if s != nil {
		s.f = f
	}
	return s, torn, buf, err
}

// scanBytes validates and replays the bytes of a segment; see scanSegment.
func (w *WAL) scanBytes(b []byte, id uint64, name string, isLast, oldest bool) (*segment, bool, error) {
	corrupt := func(off int, why string) error {
		return &CorruptError{Segment: id, File: name, Offset: int64(off), Reason: why}
	}
	if v, ok := newerVersion(b); ok {
		return nil, false, &VersionError{Segment: id, File: name, Version: v, Newest: SegmentFormatVersion}
	}
	ds, why := checkHeader(b, id)
	if why != "" {
		if isLast && !validBatchAfter(b, 0) {
			return nil, false, nil
		}
		return nil, false, corrupt(0, why)
	}
	seg := &segment{id: id, name: name}
	p, failAt, bad := ds, -1, 0
	for p < len(b) {
		var end int
		end, bad, why = parseBatch(b, p)
		if why != "" {
			failAt = p
			break
		}
		recs := b[p : end-commitLen]
		isCkpt := p == ds
		// The checkpoint batch holds checkpoint records, then ckptEnd
		// (naming this segment and counting them), then padding; no
		// other batch holds either kind.
		seenEnd, groups := false, uint64(0)
		for off := 0; off < len(recs); {
			n := recHeaderLen + int(le.Uint32(recs[off+4:]))
			kind, pl := recs[off+8], recs[off+recHeaderLen:off+n]
			switch {
			case isCkpt && !seenEnd && kind == kindCkpt:
				groups++
			case isCkpt && !seenEnd && kind == kindCkptEnd && le.Uint64(pl) == id && le.Uint64(pl[8:]) == groups:
				seenEnd = true
			case kind == kindCkpt || kind == kindCkptEnd || isCkpt && kind != kindPad:
				return nil, false, corrupt(p+off, "misplaced or inconsistent checkpoint record")
			}
			off += n
		}
		if isCkpt && !seenEnd {
			return nil, false, corrupt(p, "checkpoint batch without its end")
		}
		if err := w.applyRecords(seg, int64(p), recs, true, p == ds && oldest); err != nil {
			return nil, false, err
		}
		if p == ds {
			seg.ckptEnd = int64(end)
		}
		p = end
		if recs[8] == kindSeal {
			seg.sealed = true
			break
		}
	}
	seg.size, seg.filled = int64(p), int64(p)
	switch {
	case seg.sealed:
	case p == ds && isLast && (failAt < 0 || !validBatchAfter(b, failAt+1)):
		// No checkpoint: the segment's creation was interrupted.
		return nil, false, nil
	case failAt < 0 || allZero(b[failAt:]):
		if !isLast {
			return nil, false, corrupt(p, "segment ends without a seal")
		}
	case !isLast:
		return nil, false, corrupt(bad, why)
	default:
		if validBatchAfter(b, failAt+1) {
			return nil, false, corrupt(bad, why)
		}
		return seg, true, nil
	}
	return seg, false, nil
}
