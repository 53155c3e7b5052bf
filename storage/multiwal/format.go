package multiwal

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/keelraft/raft/storage/internal/frame"
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
	segHeaderLen = frame.HeaderLen
	recHeaderLen = frame.RecHeaderLen
	entryHdrLen  = 8 + 8 + 8 + 1 // group, index, term, type
	commitLen    = frame.CommitLen
	maxRecordLen = frame.MaxRecordLen
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

// format is the segment framing, shared with storage/wal through
// storage/internal/frame; this package supplies the magic, the file-name
// extension and the record kinds.
var format = &frame.Format{
	Family:     segFamily,
	Version:    SegmentFormatVersion,
	Ext:        ".mwal",
	KindCommit: kindCommit,
	KindPad:    kindPad,
	Check:      checkPayload,
}

func crc(b []byte) uint32 { return frame.CRC(b) }

var le = binary.LittleEndian

func segmentName(id uint64) string { return format.SegmentName(id) }

// parseSegmentName returns the ID of a segment file name.
func parseSegmentName(name string) (uint64, bool) { return format.ParseSegmentName(name) }

func encodeHeader(id uint64, dataStart int) []byte { return format.EncodeHeader(id, dataStart) }

func headerIntact(b []byte) bool { return frame.HeaderIntact(b) }

// checkHeader validates a segment header and returns where data starts.
func checkHeader(b []byte, id uint64) (int, string) { return format.CheckHeader(b, id) }

// newerVersion returns the version of a segment b that starts with the
// family and a version digit newer than this build's, unless the header
// checksum matches with the digit set back to this build's (a damaged
// byte). b is unchanged on return.
func newerVersion(b []byte) (int, bool) { return format.NewerSegmentVersion(b) }

// appendRecord appends a record of the given kind whose payload is head
// followed by tail.
func appendRecord(buf []byte, kind byte, head, tail []byte) []byte {
	return frame.AppendRecord(buf, kind, head, tail)
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

// finishBatch pads buf, a batch of count records to be written at offset
// base, so that it ends on an align boundary, and appends the commit
// record.
func finishBatch(buf []byte, base int64, count int, align int) []byte {
	return format.FinishBatch(buf, base, count, align)
}

// parseRecord parses the record at b[off:], checking its checksum and the
// shape of its payload. It returns a reason when the bytes are not a
// valid record.
func parseRecord(b []byte, off int) (frame.Record, string) { return format.ParseRecord(b, off) }

// checkPayload validates the payload of a record of the given kind.
func checkPayload(kind byte, p []byte) string {
	ok := true
	switch kind {
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
		return fmt.Sprintf("unknown record kind %d", kind)
	}
	if !ok {
		return fmt.Sprintf("malformed record of kind %d, length %d", kind, len(p))
	}
	if kind != kindCommit && kind != kindCkptEnd && kind != kindSeal && kind != kindPad && le.Uint64(p) == 0 {
		return fmt.Sprintf("record of kind %d names group 0", kind)
	}
	return ""
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
// returns the batch's end. Otherwise it returns the offset of the first
// invalid byte found and why.
func parseBatch(b []byte, start int) (end, bad int, why string) { return format.ParseBatch(b, start) }

// validBatchAfter reports whether a valid batch starts at or after from.
// Recovery calls it past the first invalid byte of the last segment: if
// a valid batch follows, the damage is not a torn tail.
func validBatchAfter(b []byte, from int) bool {
	_, ok := format.ValidBatchAfter(b, from)
	return ok
}

func allZero(b []byte) bool { return frame.AllZero(b) }
