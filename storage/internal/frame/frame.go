// Package frame is the segment framing shared by storage/wal and
// storage/multiwal: the segment header, CRC32-C record framing, batches
// closed by a commit record, and segment file names. The two formats
// differ only in their magic, file-name extension, record kinds and
// payload shapes, which a Format supplies; everything here writes and
// reads exactly the bytes each package wrote before it existed.
//
// A segment starts with a header block:
//
//	[0:8]   magic: the family and the format version as an ASCII digit
//	[8:16]  segment ID
//	[16:20] dataStart: offset of the first batch; bytes [32:dataStart) are zero
//	[20:28] zero
//	[28:32] CRC32-C of [0:28]
//
// A record is
//
//	[0:4]   CRC32-C of [4:9+len]
//	[4:8]   len, the payload length
//	[8]     kind
//	[9:]    payload
//
// and a batch is a run of records ending with a commit record whose
// payload is the batch's start offset u64, its record count u32 (the
// commit record excluded) and the CRC32-C of the batch's bytes before the
// commit record u32. Batches may be padded with a pad record so that each
// ends on an alignment boundary. All integers are little-endian.
package frame

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

const (
	// HeaderLen is the length of a segment header.
	HeaderLen = 32
	// RecHeaderLen is the length of a record header.
	RecHeaderLen = 9
	// CommitLen is the length of a commit record.
	CommitLen = RecHeaderLen + 16
	// MaxRecordLen bounds a record's length field. Recovery reads whole
	// segments, so a length is also bounded by the segment's size: no
	// length read from disk ever sizes an allocation.
	MaxRecordLen = 1<<30 + 1<<20
	// MaxAlign is the largest batch alignment, and the largest data start.
	MaxAlign = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC32-C of b.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var le = binary.LittleEndian

// padZeros is the longest pad payload FinishBatch writes.
var padZeros [2 * MaxAlign]byte

// Format describes one segment format.
type Format struct {
	// Family is the magic without its version digit, 7 bytes, e.g.
	// "keelwal".
	Family string
	// Version is the format version this build writes and the newest it
	// reads, 1 to 9.
	Version int
	// Ext is the segment file-name extension, dot included, e.g. ".wal".
	Ext string
	// KindCommit and KindPad are the kinds of the commit and pad records.
	KindCommit, KindPad byte
	// Check validates the payload of a record whose checksum matched. It
	// returns why the record is invalid, or "". It must accept only a
	// 16-byte payload for KindCommit, accept any payload for KindPad, and
	// reject unknown kinds.
	Check func(kind byte, payload []byte) string
}

// Magic returns the 8-byte magic: Family and the version digit.
func (f *Format) Magic() string { return f.Family + string(rune('0'+f.Version)) }

// hasMagic reports whether b starts with f's magic.
func (f *Format) hasMagic(b []byte) bool {
	n := len(f.Family)
	return len(b) > n && string(b[:n]) == f.Family && b[n] == byte('0'+f.Version)
}

// SegmentName returns the file name of segment id.
func (f *Format) SegmentName(id uint64) string { return fmt.Sprintf("%020d%s", id, f.Ext) }

// ParseSegmentName returns the ID of a segment file name.
func (f *Format) ParseSegmentName(name string) (uint64, bool) {
	if len(name) != 20+len(f.Ext) || name[20:] != f.Ext {
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

// EncodeHeader returns the header block of segment id, dataStart bytes.
func (f *Format) EncodeHeader(id uint64, dataStart int) []byte {
	b := make([]byte, dataStart)
	copy(b, f.Family)
	b[len(f.Family)] = byte('0' + f.Version)
	le.PutUint64(b[8:], id)
	le.PutUint32(b[16:], uint32(dataStart))
	le.PutUint32(b[28:], CRC(b[:28]))
	return b
}

// HeaderIntact reports whether b starts with a header whose checksum
// matches.
func HeaderIntact(b []byte) bool {
	return len(b) >= HeaderLen && le.Uint32(b[28:]) == CRC(b[:28])
}

// CheckHeader validates a segment header and returns where data starts,
// or why the header is invalid.
func (f *Format) CheckHeader(b []byte, id uint64) (int, string) {
	if len(b) < HeaderLen {
		return 0, "short header"
	}
	if !HeaderIntact(b) {
		return 0, "header checksum mismatch"
	}
	if !f.hasMagic(b) {
		return 0, "bad magic"
	}
	if got := le.Uint64(b[8:]); got != id {
		return 0, fmt.Sprintf("header names segment %d", got)
	}
	ds := int(le.Uint32(b[16:]))
	if ds < HeaderLen || ds > len(b) || ds > MaxAlign {
		return 0, fmt.Sprintf("bad data start %d", ds)
	}
	if !AllZero(b[20:28]) || !AllZero(b[HeaderLen:ds]) {
		return 0, "non-zero header padding"
	}
	return ds, ""
}

// NewerSegmentVersion is NewerVersion for a segment header of f.
func (f *Format) NewerSegmentVersion(b []byte) (int, bool) {
	return NewerVersion(b, f.Family, f.Version, HeaderIntact)
}

// NewerVersion returns the version of a file b that starts with family
// and a version byte newer than newest. Versions are the ASCII digits 1 to
// 9; any other byte there is not a version, and the caller's checks call
// the file corrupt.
//
// A bit flip can turn '1' into '3' or '9', and should not send an operator
// off to find a newer build: when b passes intact, the check of format
// newest that covers the version byte, once the byte is set back to
// newest, it is a damaged file of this build's format, not a newer one.
// (A newer format that kept this checksum computes it over its own
// version byte.) b is restored before NewerVersion returns.
func NewerVersion(b []byte, family string, newest int, intact func([]byte) bool) (int, bool) {
	if len(b) <= len(family) || string(b[:len(family)]) != family {
		return 0, false
	}
	c := b[len(family)]
	if c < '1' || c > '9' || int(c-'0') <= newest {
		return 0, false
	}
	b[len(family)] = byte('0' + newest)
	rotted := intact(b)
	b[len(family)] = c
	if rotted {
		return 0, false
	}
	return int(c - '0'), true
}

// AppendRecord appends a record of the given kind whose payload is head
// followed by tail.
func AppendRecord(buf []byte, kind byte, head, tail []byte) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	le.PutUint32(buf[start+4:], uint32(len(head)+len(tail)))
	buf = append(buf, head...)
	buf = append(buf, tail...)
	le.PutUint32(buf[start:], CRC(buf[start+4:]))
	return buf
}

// FinishBatch pads buf, a batch of count records to be written at offset
// base, so that it ends on an align boundary (align at most MaxAlign),
// and appends the commit record.
func (f *Format) FinishBatch(buf []byte, base int64, count int, align int) []byte {
	if align > 1 {
		r := (base + int64(len(buf)) + CommitLen) % int64(align)
		if r != 0 {
			pad := int64(align) - r
			if pad < RecHeaderLen {
				pad += int64(align)
			}
			buf = AppendRecord(buf, f.KindPad, padZeros[:pad-RecHeaderLen], nil)
			count++
		}
	}
	var h [16]byte
	le.PutUint64(h[0:], uint64(base))
	le.PutUint32(h[8:], uint32(count))
	le.PutUint32(h[12:], CRC(buf))
	return AppendRecord(buf, f.KindCommit, h[:], nil)
}

// Record is a parsed record.
type Record struct {
	Kind    byte
	Payload []byte
	N       int // total length, header included
}

// ParseRecord parses the record at b[off:], checking its checksum and,
// with f.Check, the shape of its payload. It returns a reason when the
// bytes are not a valid record.
func (f *Format) ParseRecord(b []byte, off int) (Record, string) {
	if off < 0 || off+RecHeaderLen > len(b) {
		return Record{}, "truncated record header"
	}
	h := b[off:]
	n := le.Uint32(h[4:])
	if n > MaxRecordLen || int64(n) > int64(len(b)-off-RecHeaderLen) {
		return Record{}, fmt.Sprintf("record length %d overruns the segment", n)
	}
	end := RecHeaderLen + int(n)
	if le.Uint32(h) != CRC(h[4:end]) {
		return Record{}, "record checksum mismatch"
	}
	r := Record{Kind: h[8], Payload: h[RecHeaderLen:end], N: end}
	if why := f.Check(r.Kind, r.Payload); why != "" {
		return Record{}, why
	}
	if r.Kind == f.KindCommit && len(r.Payload) != 16 {
		return Record{}, fmt.Sprintf("commit record has length %d", len(r.Payload))
	}
	return r, ""
}

// ParseBatch validates the batch starting at b[start:]. On success it
// returns the batch's end. Otherwise it returns the offset of the first
// invalid byte found and why.
func (f *Format) ParseBatch(b []byte, start int) (end, bad int, why string) {
	off, count := start, 0
	for {
		r, why := f.ParseRecord(b, off)
		if why != "" {
			return 0, off, why
		}
		if r.Kind == f.KindCommit {
			p := r.Payload
			switch {
			case le.Uint64(p) != uint64(start):
				return 0, off, "commit record names another batch"
			case int(le.Uint32(p[8:])) != count:
				return 0, off, "commit record count mismatch"
			case le.Uint32(p[12:]) != CRC(b[start:off]):
				return 0, start, "batch checksum mismatch"
			case count == 0:
				return 0, off, "empty batch"
			}
			return off + r.N, 0, ""
		}
		count++
		off += r.N
	}
}

// ValidBatchAfter reports whether a valid batch starts at or after from,
// and where the first one found starts. Recovery calls it past the first
// invalid byte of the last segment: if a valid batch follows, the damage
// is not a torn tail.
func (f *Format) ValidBatchAfter(b []byte, from int) (int, bool) {
	for i := from; i >= 0 && i+CommitLen <= len(b); {
		j := bytes.IndexByte(b[i+8:], f.KindCommit)
		if j < 0 {
			return 0, false
		}
		q := i + j
		i = q + 1
		if q+CommitLen > len(b) || le.Uint32(b[q+4:]) != 16 {
			continue
		}
		r, why := f.ParseRecord(b, q)
		if why != "" || r.Kind != f.KindCommit {
			continue
		}
		s := le.Uint64(r.Payload)
		if s < uint64(from) || s >= uint64(q) {
			continue
		}
		if _, _, why := f.ParseBatch(b, int(s)); why == "" {
			return int(s), true
		}
	}
	return 0, false
}

// AllZero reports whether every byte of b is zero.
func AllZero(b []byte) bool {
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
