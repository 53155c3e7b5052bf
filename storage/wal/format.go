package wal

import (
	"encoding/binary"
	"fmt"

	"github.com/keelraft/raft/storage/internal/frame"
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
	segHeaderLen = frame.HeaderLen
	recHeaderLen = frame.RecHeaderLen
	entryHdrLen  = 17
	commitLen    = frame.CommitLen
	maxRecordLen = frame.MaxRecordLen
)

const (
	kindEntry  byte = 1
	kindCommit byte = 2
	kindSuffix byte = 3
	kindPrefix byte = 4
	kindSeal   byte = 5
	kindPad    byte = 6
)

// format is the segment framing, shared with storage/multiwal through
// storage/internal/frame; this package supplies the magic, the file-name
// extension and the record kinds.
var format = &frame.Format{
	Family:     segFamily,
	Version:    SegmentFormatVersion,
	Ext:        ".wal",
	KindCommit: kindCommit,
	KindPad:    kindPad,
	Check:      checkPayload,
}

// checkPayload validates the payload of a record of the given kind.
func checkPayload(kind byte, p []byte) string {
	want := -1
	switch kind {
	case kindEntry:
		if len(p) < entryHdrLen {
			return "short entry record"
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
		return fmt.Sprintf("unknown record kind %d", kind)
	}
	if want >= 0 && len(p) != want {
		return fmt.Sprintf("record kind %d has length %d", kind, len(p))
	}
	return ""
}

func crc(b []byte) uint32 { return frame.CRC(b) }

var le = binary.LittleEndian

func segmentName(id uint64) string { return format.SegmentName(id) }

// parseSegmentName returns the ID of a segment file name.
func parseSegmentName(name string) (uint64, bool) { return format.ParseSegmentName(name) }

func encodeHeader(id uint64, dataStart int) []byte { return format.EncodeHeader(id, dataStart) }

// headerIntact reports whether b starts with a header whose checksum
// matches.
func headerIntact(b []byte) bool { return frame.HeaderIntact(b) }

// checkHeader validates a segment header and returns where data starts.
func checkHeader(b []byte, id uint64) (int, string) { return format.CheckHeader(b, id) }

// appendRecord appends a record of the given kind whose payload is the
// concatenation of head and tail.
func appendRecord(buf []byte, kind byte, head, tail []byte) []byte {
	return frame.AppendRecord(buf, kind, head, tail)
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
	return format.FinishBatch(buf, base, count, align)
}

// parseRecord parses the record at b[off:]. It returns a reason when the
// bytes are not a valid record.
func parseRecord(b []byte, off int) (frame.Record, string) { return format.ParseRecord(b, off) }

// parseBatch validates the batch starting at b[start:]. On success it
// returns the batch's end. Otherwise it returns the offset of the first
// invalid byte found and why.
func parseBatch(b []byte, start int) (end, bad int, why string) { return format.ParseBatch(b, start) }

// validBatchAfter reports whether a valid batch starts at or after from.
// Recovery calls it past the first invalid byte of the last segment: if
// a valid batch follows, the damage is not a torn tail.
func validBatchAfter(b []byte, from int) (int, bool) { return format.ValidBatchAfter(b, from) }

func allZero(b []byte) bool { return frame.AllZero(b) }
