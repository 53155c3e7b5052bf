package wal

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
)

// scan is what recovery learned from one segment.
type scan struct {
	seg    *segment
	events []event
	// torn is set when the last segment ends with a torn batch at seg.size.
	torn bool
}

// recoverLog opens the segments, validates them and rebuilds the index.
//
// Segments are read newest first. The newest prefix record names the
// oldest live segment; older segment files are leftovers of an interrupted
// prefix truncation and are removed unread. Every live segment but the
// last must be sealed and wholly valid. In the last one, invalid bytes
// after the last valid batch are a torn write, and are truncated, unless a
// valid batch follows them: then synced data is damaged and recovery
// fails with ErrCorrupt.
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
	deadBelow := uint64(0)
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if id < deadBelow {
			dead = append(dead, id)
			continue
		}
		isLast := len(scans) == 0
		sc, err := l.scanSegment(id, isLast)
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
			for j := len(sc.events) - 1; j >= 0; j-- {
				ev := sc.events[j]
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
	if len(dead) > 0 {
		for _, id := range dead {
			if err := l.fs.Remove(filepath.Join(l.dir, segmentName(id))); err != nil {
				return fmt.Errorf("wal: remove dead segment %d: %w", id, err)
			}
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	return nil
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

// scanSegment reads and validates one segment. It returns nil, nil for a
// newest segment whose creation was interrupted: a bad header and no
// valid batch.
func (l *Log) scanSegment(id uint64, isLast bool) (*scan, error) {
	name := filepath.Join(l.dir, segmentName(id))
	f, err := l.fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("wal: open segment %d: %w", id, err)
	}
	sc, err := scanFile(f, id, name, isLast)
	if err != nil || sc == nil {
		f.Close()
		return nil, err
	}
	sc.seg.f = f
	return sc, nil
}

func scanFile(f interface {
	io.ReaderAt
	Size() (int64, error)
}, id uint64, name string, isLast bool) (*scan, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal: segment %d: %w", id, err)
	}
	buf := make([]byte, size)
	if n, err := f.ReadAt(buf, 0); n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wal: read segment %d: %w", id, err)
	}
	return scanBytes(buf, id, name, isLast)
}

// scanBytes validates the bytes of a segment; see scanSegment.
func scanBytes(buf []byte, id uint64, name string, isLast bool) (*scan, error) {
	corrupt := func(off int, why string) error {
		return &CorruptError{Segment: id, File: name, Offset: int64(off), Reason: why}
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
		sc.events, end, bad, why = parseBatch(buf, p, sc.events)
		if why != "" {
			failAt = p
			break
		}
		p = end
		if n := len(sc.events); n > 0 && sc.events[n-1].kind == kindSeal {
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

// replay rebuilds the index from the events of the live segments.
func (l *Log) replay(scans []*scan) error {
	var pos []entryPos
	var first uint64
	hint := uint64(1) // the next index when the log ends up empty
	for _, sc := range scans {
		for _, ev := range sc.events {
			switch ev.kind {
			case kindEntry:
				idx := ev.a
				// An empty log may start at any index, as StoreLogs allows.
				want := first + uint64(len(pos))
				if len(pos) == 0 {
					want = idx
				}
				if idx == 0 || idx != want {
					return &CorruptError{Segment: sc.seg.id, File: sc.seg.name, Offset: ev.off,
						Reason: fmt.Sprintf("entry %d where %d was expected", idx, want)}
				}
				if len(pos) == 0 {
					first = idx
				}
				pos = append(pos, entryPos{seg: sc.seg, off: ev.off, n: ev.n})
				hint = idx + 1
			case kindSuffix:
				k := ev.a
				if len(pos) > 0 && k < first+uint64(len(pos))-1 {
					if k < first {
						pos = pos[:0]
					} else {
						pos = pos[:k-first+1]
					}
					hint = k + 1
				}
				if len(pos) == 0 {
					hint = k + 1
				}
			case kindPrefix:
				f := ev.a
				if len(pos) > 0 && f > first {
					drop := min(f-first, uint64(len(pos)))
					pos = pos[drop:]
					first = f
				}
				if len(pos) == 0 {
					hint = max(hint, f)
				}
			}
		}
	}
	l.pos = slices.Clip(pos)
	if len(pos) > 0 {
		l.first = first
		l.next = first + uint64(len(pos))
	} else {
		l.first, l.next, l.empty = 0, hint, true
	}
	return nil
}
