package multiwal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// On-disk format
//
// A shared log is a directory of segment files named %020d.mwal after
// their ID, which counts up from 1, plus the lock file LOCK. A segment
// starts with a header block:
//
//	[0:8]   magic "keelmwl1": the family "keelmwl" and the format version, '1'
//	[8:16]  segment ID
//	[16:20] dataStart: offset of the first batch; bytes [32:dataStart) are zero
//	[20:28] zero
//	[28:32] CRC32-C of [0:28]
//
// followed by batches. A batch is a run of records ending with a commit
// record, written with one write and made durable with one fsync; it
// carries the records of every call that was queued when it was written,
// from any number of groups (group commit). A record is
//
//	[0:4]   CRC32-C of [4:9+len]
//	[4:8]   len, the payload length
//	[8]     kind
//	[9:]    payload
//
// and the payloads are (g is the group ID, u64, never 0)
//
//	entry:      g, index u64, term u64, type u8, data
//	set:        g, key length u32, key, value — a stable value; an empty value deletes the key
//	prefix:     g, first u64 — the group's entries below first are deleted
//	suffix:     g, after u64 — the group's entries above after are deleted
//	remove:     g — the group and all its state are deleted
//	checkpoint: g, first u64, last u64, key count u32, then per key: key length u32,
//	            key, value length u32, value — the group's whole state when the
//	            segment was started: its log is [first, last] (empty when last < first)
//	ckptEnd:    segment u64, groups u64 — ends the checkpoint batch
//	commit:     batch start offset u64, record count u32, CRC32-C of the batch's
//	            bytes before the commit record u32
//	seal:       empty — the segment is complete; the next one continues the log
//	pad:        zeros — fills the batch to the alignment
//
// All integers are little-endian. A batch is valid only as a whole: every
// record's CRC, the commit record's count and start, and the batch CRC
// must match; so the entries of one StoreLogs call are all there after a
// crash or none is. Batches are padded so that each ends on an
// Options.Align boundary; the next batch never rewrites a block holding
// acknowledged data, so a torn write cannot damage it.
//
// # Checkpoints and reclamation
//
// The first batch of every segment is its checkpoint: one checkpoint
// record per group with state, then ckptEnd. It is written, synced and
// linked into the directory before any other batch goes into the segment.
// Recovery applies the checkpoint of the oldest segment and replays every
// later record in order (the checkpoints of later segments repeat what
// replay already knows and are skipped). So a segment's stable records
// are superseded once the next segment exists, and a sealed segment may
// be deleted as soon as no group's live entries are in it; segments are
// deleted oldest first. If deleting several was interrupted, recovery
// starts after the last gap in the segment IDs and deletes what is before
// it; a checkpoint naming entries that no live segment holds is
// ErrCorrupt, so a segment lost any other way is never silently passed
// over.
//
// # Versions
//
// The first 8 bytes are the one part every version keeps: "keelmwl" and
// the version as an ASCII digit. A segment of a newer version than
// SegmentFormatVersion is refused with a *VersionError before anything is
// changed, unless its header checksum matches with the version byte set
// back to SegmentFormatVersion: then it is a damaged byte, ErrCorrupt.

// SegmentFormatVersion is the segment format this build writes, and the
// newest it reads.
const SegmentFormatVersion = 1

const (
	segFamily    = "keelmwl"
	segMagic     = segFamily + string(rune('0'+SegmentFormatVersion))
	segHeaderLen = 32
	recHeaderLen = 9
	entryHdrLen  = 8 + 8 + 8 + 1 // group, index, term, type
	commitLen    = recHeaderLen + 16
	// maxRecordLen bounds a record's length field. Recovery reads whole
	// segments, so a length is also bounded by the segment's size: no
	// length read from disk sizes an allocation.
	maxRecordLen = 1<<30 + 1<<20
)

const (
	kindEntry   byte = 1
	kindCommit  byte = 2
	kindSet     byte = 3
	kindPrefix  byte = 4
	kindSuffix  byte = 5
	kindRemove  byte = 6
	kindCkpt    byte = 7
	kindCkptEnd byte = 8
	kindSeal    byte = 9
	kindPad     byte = 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var le = binary.LittleEndian

func segmentName(id uint64) string { return fmt.Sprintf("%020d.mwal", id) }

// parseSegmentName returns the ID of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != 25 || name[20:] != ".mwal" {
		return 0, false
	}
	var id uint64
	for _, c := range []byte(name[:20]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if id > (1<<64-1-d)/10 {
			return 0, false
		}
		id = id*10 + d
	}
	return id, id > 0
}

func encodeHeader(id uint64, dataStart int) []byte {
	b := make([]byte, dataStart)
	copy(b, segMagic)
	le.PutUint64(b[8:], id)
	le.PutUint32(b[16:], uint32(dataStart))
	le.PutUint32(b[28:], crc(b[:28]))
	return b
}

func headerIntact(b []byte) bool {
	return len(b) >= segHeaderLen && le.Uint32(b[28:]) == crc(b[:28])
}

// checkHeader validates a segment header and returns where data starts.
func checkHeader(b []byte, id uint64) (int, string) {
	if len(b) < segHeaderLen {
		return 0, "short header"
	}
	if !headerIntact(b) {
		return 0, "header checksum mismatch"
	}
	if string(b[:8]) != segMagic {
		return 0, "bad magic"
	}
	if got := le.Uint64(b[8:]); got != id {
		return 0, fmt.Sprintf("header names segment %d", got)
	}
	ds := int(le.Uint32(b[16:]))
	if ds < segHeaderLen || ds > len(b) || ds > maxAlign {
		return 0, fmt.Sprintf("bad data start %d", ds)
	}
	if !allZero(b[20:28]) || !allZero(b[segHeaderLen:ds]) {
		return 0, "non-zero header padding"
	}
	return ds, ""
}

// newerVersion returns the version of a segment b that starts with the
// family and a version digit newer than this build's, unless the header
// checksum matches with the digit set back to this build's (a damaged
// byte). b is unchanged on return.
func newerVersion(b []byte) (int, bool) {
	if len(b) <= len(segFamily) || string(b[:len(segFamily)]) != segFamily {
		return 0, false
	}
	c := b[len(segFamily)]
	if c < '1' || c > '9' || int(c-'0') <= SegmentFormatVersion {
		return 0, false
	}
	b[len(segFamily)] = '0' + SegmentFormatVersion
	rotted := headerIntact(b)
	b[len(segFamily)] = c
	if rotted {
		return 0, false
	}
	return int(c - '0'), true
}

// appendRecord appends a record of the given kind whose payload is head
// followed by tail.
func appendRecord(buf []byte, kind byte, head, tail []byte) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	le.PutUint32(buf[start+4:], uint32(len(head)+len(tail)))
	buf = append(buf, head...)
	buf = append(buf, tail...)
	le.PutUint32(buf[start:], crc(buf[start+4:]))
	return buf
}

func appendEntry(buf []byte, g, index, term uint64, typ uint8, data []byte) []byte {
	var h [entryHdrLen]byte
	le.PutUint64(h[0:], g)
	le.PutUint64(h[8:], index)
	le.PutUint64(h[16:], term)
	h[24] = typ
	return appendRecord(buf, kindEntry, h[:], data)
}

func appendU64s(buf []byte, kind byte, vs ...uint64) []byte {
	var h [24]byte
	for i, v := range vs {
		le.PutUint64(h[8*i:], v)
	}
	return appendRecord(buf, kind, h[:8*len(vs)], nil)
}

func appendSet(buf []byte, g uint64, key, val []byte) []byte {
	h := make([]byte, 12, 12+len(key)+len(val))
	le.PutUint64(h, g)
	le.PutUint32(h[8:], uint32(len(key)))
	h = append(h, key...)
	return appendRecord(buf, kindSet, h, val)
}

var zeros [zeroChunk]byte

// finishBatch pads buf, a batch of count records to be written at offset
// base, so that it ends on an align boundary, and appends the commit
// record.
func finishBatch(buf []byte, base int64, count int, align int) []byte {
	if align > 1 {
		r := (base + int64(len(buf)) + commitLen) % int64(align)
		if r != 0 {
			pad := int64(align) - r
			if pad < recHeaderLen {
				pad += int64(align)
			}
			buf = appendRecord(buf, kindPad, zeros[:pad-recHeaderLen], nil)
			count++
		}
	}
	var h [16]byte
	le.PutUint64(h[0:], uint64(base))
	le.PutUint32(h[8:], uint32(count))
	le.PutUint32(h[12:], crc(buf))
	return appendRecord(buf, kindCommit, h[:], nil)
}

// record is a parsed record.
type record struct {
	kind    byte
	payload []byte
	n       int // total length, header included
}

// parseRecord parses the record at b[off:], checking its checksum and the
// shape of its payload. It returns a reason when the bytes are not a
// valid record.
func parseRecord(b []byte, off int) (record, string) {
	if off < 0 || off+recHeaderLen > len(b) {
		return record{}, "truncated record header"
	}
	h := b[off:]
	n := le.Uint32(h[4:])
	if n > maxRecordLen || int64(n) > int64(len(b)-off-recHeaderLen) {
		return record{}, fmt.Sprintf("record length %d overruns the segment", n)
	}
	end := recHeaderLen + int(n)
	if le.Uint32(h) != crc(h[4:end]) {
		return record{}, "record checksum mismatch"
	}
	r := record{kind: h[8], payload: h[recHeaderLen:end], n: end}
	p := r.payload
	ok := true
	switch r.kind {
	case kindEntry:
		ok = len(p) >= entryHdrLen
	case kindCommit:
		ok = len(p) == 16
	case kindSet:
		ok = len(p) >= 12 && uint64(le.Uint32(p[8:])) <= uint64(len(p)-12)
	case kindPrefix, kindSuffix:
		ok = len(p) == 16
	case kindRemove:
		ok = len(p) == 8
	case kindCkpt:
		_, _, _, _, ok = parseCkpt(p)
	case kindCkptEnd:
		ok = len(p) == 16
	case kindSeal:
		ok = len(p) == 0
	case kindPad:
	default:
		return record{}, fmt.Sprintf("unknown record kind %d", r.kind)
	}
	if !ok {
		return record{}, fmt.Sprintf("malformed record of kind %d, length %d", r.kind, len(p))
	}
	if r.kind != kindCommit && r.kind != kindCkptEnd && r.kind != kindSeal && r.kind != kindPad && le.Uint64(p) == 0 {
		return record{}, fmt.Sprintf("record of kind %d names group 0", r.kind)
	}
	return r, ""
}

// parseCkpt parses a checkpoint payload.
func parseCkpt(p []byte) (g, first, last uint64, kv map[string][]byte, ok bool) {
	if len(p) < 28 {
		return 0, 0, 0, nil, false
	}
	g, first, last = le.Uint64(p), le.Uint64(p[8:]), le.Uint64(p[16:])
	n := le.Uint32(p[24:])
	p = p[28:]
	if uint64(n) > uint64(len(p))/8 {
		return 0, 0, 0, nil, false
	}
	kv = make(map[string][]byte, n)
	for range n {
		if len(p) < 4 {
			return 0, 0, 0, nil, false
		}
		kl := uint64(le.Uint32(p))
		if kl+8 > uint64(len(p)) {
			return 0, 0, 0, nil, false
		}
		k := string(p[4 : 4+kl])
		p = p[4+kl:]
		vl := uint64(le.Uint32(p))
		if vl+4 > uint64(len(p)) {
			return 0, 0, 0, nil, false
		}
		kv[k] = bytes.Clone(p[4 : 4+vl])
		p = p[4+vl:]
	}
	return g, first, last, kv, len(p) == 0
}

func appendCkpt(buf []byte, g, first, last uint64, kv map[string][]byte, keys []string) []byte {
	h := make([]byte, 28)
	le.PutUint64(h, g)
	le.PutUint64(h[8:], first)
	le.PutUint64(h[16:], last)
	le.PutUint32(h[24:], uint32(len(keys)))
	for _, k := range keys {
		h = le.AppendUint32(h, uint32(len(k)))
		h = append(h, k...)
		h = le.AppendUint32(h, uint32(len(kv[k])))
		h = append(h, kv[k]...)
	}
	return appendRecord(buf, kindCkpt, h, nil)
}

// parseBatch validates the batch starting at b[start:]. On success it
// returns the batch's end and its record count (the commit record
// excluded). Otherwise it returns the offset of the first invalid byte
// found and why.
func parseBatch(b []byte, start int) (end, bad int, why string) {
	off, count := start, 0
	for {
		r, why := parseRecord(b, off)
		if why != "" {
			return 0, off, why
		}
		if r.kind == kindCommit {
			p := r.payload
			switch {
			case le.Uint64(p) != uint64(start):
				return 0, off, "commit record names another batch"
			case int(le.Uint32(p[8:])) != count:
				return 0, off, "commit record count mismatch"
			case le.Uint32(p[12:]) != crc(b[start:off]):
				return 0, start, "batch checksum mismatch"
			case count == 0:
				return 0, off, "empty batch"
			}
			return off + r.n, 0, ""
		}
		count++
		off += r.n
	}
}

// validBatchAfter reports whether a valid batch starts at or after from.
// Recovery calls it past the first invalid byte of the last segment: if
// a valid batch follows, the damage is not a torn tail.
func validBatchAfter(b []byte, from int) bool {
	for i := from; i >= 0 && i+commitLen <= len(b); {
		j := bytes.IndexByte(b[i+8:], kindCommit)
		if j < 0 {
			return false
		}
		q := i + j
		i = q + 1
		if q+commitLen > len(b) || le.Uint32(b[q+4:]) != 16 {
			continue
		}
		r, why := parseRecord(b, q)
		if why != "" || r.kind != kindCommit {
			continue
		}
		s := le.Uint64(r.payload)
		if s < uint64(from) || s >= uint64(q) {
			continue
		}
		if _, _, why := parseBatch(b, int(s)); why == "" {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if le.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
