package frame

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testFormat = Format{
	Family: "keeltst", Version: 1, Ext: ".tst", KindCommit: 1, KindPad: 2,
	Check: func(kind byte, payload []byte) string {
		if kind == 1 || kind == 2 || kind == 3 {
			return ""
		}
		return "unknown kind"
	},
}

// TestBatchRoundTrip: a header and a padded batch read back as written,
// and any single flipped byte of the batch is refused.
func TestBatchRoundTrip(t *testing.T) {
	f := &testFormat
	const align = 512
	hdr := f.EncodeHeader(7, align)
	if ds, why := f.CheckHeader(hdr, 7); why != "" || ds != align {
		t.Fatalf("CheckHeader = %d, %q", ds, why)
	}
	if _, why := f.CheckHeader(hdr, 8); why == "" {
		t.Fatal("a header of segment 7 read as segment 8's")
	}
	buf := AppendRecord(nil, 3, []byte("head"), []byte("tail"))
	buf = AppendRecord(buf, 3, nil, []byte("second"))
	batch := f.FinishBatch(buf, align, 2, align)
	if len(batch)%align != 0 {
		t.Fatalf("batch of %d bytes does not end on a %d boundary", len(batch), align)
	}
	seg := append(append([]byte{}, hdr...), batch...)
	end, bad, why := f.ParseBatch(seg, align)
	if why != "" || end != len(seg) {
		t.Fatalf("ParseBatch = %d, %d, %q; want %d", end, bad, why, len(seg))
	}
	r, why := f.ParseRecord(seg, align)
	if why != "" || r.Kind != 3 || string(r.Payload) != "headtail" {
		t.Fatalf("first record = %+v, %q", r, why)
	}
	for i := align; i < len(seg); i++ {
		seg[i] ^= 0x40
		if _, _, why := f.ParseBatch(seg, align); why == "" {
			t.Fatalf("a flipped byte at %d went unnoticed", i)
		}
		seg[i] ^= 0x40
	}
}

func TestSegmentNames(t *testing.T) {
	f := &testFormat
	name := f.SegmentName(42)
	if id, ok := f.ParseSegmentName(name); !ok || id != 42 {
		t.Fatalf("ParseSegmentName(%q) = %d, %v", name, id, ok)
	}
	for _, bad := range []string{"00000000000000000042.wal", "42.tst", "00000000000000000000.tst", "LOCK"} {
		if _, ok := f.ParseSegmentName(bad); ok {
			t.Fatalf("%q parsed as a segment name", bad)
		}
	}
}
