package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// On-disk format
//
// A log is a directory of segment files named %020d.wal after their ID,
// which counts up from 1. A segment starts with a header block:
//
//	[0:8]   magic "keelwal1": the family "keelwal" and the format version, '1'
//	[8:16]  segment ID
//	[16:20] dataStart: offset of the first record; bytes [32:dataStart) are zero
//	[20:28] zero
//	[28:32] CRC32-C of [0:28]
//
// followed by batches. A batch is a run of records ending with a commit
// record, written with one write and made durable with one fsync. A record
// is
//
//	[0:4]   CRC32-C of [4:9+len]
//	[4:8]   len, the payload length
//	[8]     kind
//	[9:]    payload
//
// and the payloads are
//
//	entry:    index u64, term u64, type u8, data
//	commit:   batch start offset u64, record count u32, CRC32-C of the batch's bytes before the commit record u32
//	suffix:   after u64 — entries with a higher index are deleted
//	prefix:   first u64, segment u64 — entries below first are deleted, and so
//	          are the segments below segment (0: below the one holding this record)
//	seal:     empty — the segment is complete; the next one continues the log
//	pad:      zeros — fills the batch to the alignment
//
// All integers are little-endian. A batch is valid only as a whole: every
// record's CRC, the commit record's count and start, and the batch CRC
// must match. Batches are padded so that each ends on an Options.Align
// boundary; the next batch therefore never rewrites a block that holds
// acknowledged data, and a torn write cannot damage it.
//
// # Versions
//
// The first 8 bytes are the one part every version keeps: "keelwal" and
// the version as an ASCII digit. A segment of a newer version than
// SegmentFormatVersion is refused with a *VersionError before the rest of
// its header is trusted, since a newer layout may differ, and recovery
// then stops: a segment this build cannot read is never mistaken for a
// torn or half-created one, to be truncated or overwritten. The one
// exception is a header whose checksum matches once its version byte is
// set back to SegmentFormatVersion: that is a damaged byte of this
// version, and corruption. Any other byte there, or another family, is
// corruption too.

// SegmentFormatVersion is the segment format this build writes, and the
// newest it reads.
const SegmentFormatVersion = 1

const (
	segFamily    = "keelwal"
	segMagic     = segFamily + string(rune('0'+SegmentFormatVersion))
	segHeaderLen = 32
	recHeaderLen = 9
	entryHdrLen  = 17
	commitLen    = recHeaderLen + 16
	// maxRecordLen bounds a record's length field. Recovery reads whole
	// segments, so a length is also bounded by the segment's size: no
	// length read from disk ever sizes an allocation.
	maxRecordLen = 1<<30 + 1<<20
)

const (
	kindEntry  byte = 1
	kindCommit byte = 2
	kindSuffix byte = 3
	kindPrefix byte = 4
	kindSeal   byte = 5
	kindPad    byte = 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var le = binary.LittleEndian

func segmentName(id uint64) string { return fmt.Sprintf("%020d.wal", id) }

// parseSegmentName returns the ID of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != 24 || name[20:] != ".wal" {
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

// headerIntact reports whether b starts with a header whose checksum
// matches.
func headerIntact(b []byte) bool {
	return len(b) >= segHeaderLen && le.Uint32(b[28:]) == crc(b[:28])
}

// checkHeader validates a segment header and returns where data starts.
func checkHeader(b []byte, id uint64) (int, string) {
	if len(b) < segHeaderLen {
		return 0, "short header"
	}
	if le.Uint32(b[28:]) != crc(b[:28]) {
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

// appendRecord appends a record of the given kind whose payload is the
// concatenation of head and tail.
func appendRecord(buf []byte, kind byte, head, tail []byte) []byte {
	start := len(buf)
	n := len(head) + len(tail)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	le.PutUint32(buf[start+4:], uint32(n))
	buf = append(buf, head...)
	buf = append(buf, tail...)
	le.PutUint32(buf[start:], crc(buf[start+4:]))
	return buf
}

func appendEntry(buf []byte, index, term uint64, typ uint8, data []byte) []byte {
	var h [entryHdrLen]byte
	le.PutUint64(h[0:], index)
	le.PutUint64(h[8:], term)
	h[16] = typ
	return appendRecord(buf, kindEntry, h[:], data)
}

func appendU64s(buf []byte, kind byte, vs ...uint64) []byte {
	h := make([]byte, 8*len(vs))
	for i, v := range vs {
		le.PutUint64(h[8*i:], v)
	}
	return appendRecord(buf, kind, h, nil)
}

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

// parseRecord parses the record at b[off:]. It returns a reason when the
// bytes are not a valid record.
func parseRecord(b []byte, off int) (record, string) {
	if off+recHeaderLen > len(b) {
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
	want := -1
	switch r.kind {
	case kindEntry:
		if len(r.payload) < entryHdrLen {
			return record{}, "short entry record"
		}
	case kindCommit:
		want = 16
	case kindSuffix:
		want = 8
	case kindPrefix:
		want = 16
	case kindSeal:
		want = 0
	case kindPad:
	default:
		return record{}, fmt.Sprintf("unknown record kind %d", r.kind)
	}
	if want >= 0 && len(r.payload) != want {
		return record{}, fmt.Sprintf("record kind %d has length %d", r.kind, len(r.payload))
	}
	return r, ""
}

// parseBatch validates the batch starting at b[start:]. On success it
// returns the batch's end. Otherwise it returns the offset of the first
// invalid byte found and why.
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
func validBatchAfter(b []byte, from int) (int, bool) {
	for i := from; i+commitLen <= len(b); {
		j := bytes.IndexByte(b[i+8:], kindCommit)
		if j < 0 {
			return 0, false
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
			return int(s), true
		}
	}
	return 0, false
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
