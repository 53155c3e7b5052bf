package raft

import (
	"strings"
	"testing"
)

// Malformed snapshot chunks are refused at the wire.
func TestDecodeRefusesBadSnapshotChunks(t *testing.T) {
	conf := bootstrapConfig(serverIDs(3))
	good := func() *SnapshotChunk {
		c := conf.Clone()
		return &SnapshotChunk{ID: "1-9-1", Data: []byte("abc"), Configuration: &c, ConfigurationIndex: 1}
	}
	with := func(f func(c *SnapshotChunk)) *SnapshotChunk { c := good(); f(c); return c }
	for name, m := range map[string]Message{
		"no chunk":             {Type: MsgSnapshot, From: "s1", Index: 9},
		"no ID":                {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.ID = "" })},
		"long ID":              {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.ID = strings.Repeat("x", 300) })},
		"index 0":              {Type: MsgSnapshot, From: "s1", Snapshot: good()},
		"size mismatch":        {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.Done, c.Size = true, 2 })},
		"huge offset":          {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.Offset = 1 << 63 })},
		"no configuration":     {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.Configuration = nil })},
		"bad configuration":    {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.Configuration = &Configuration{} })},
		"conf index too high":  {Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: with(func(c *SnapshotChunk) { c.ConfigurationIndex = 10 })},
		"chunk on an append":   {Type: MsgAppend, From: "s1", Snapshot: good()},
		"long ID in an answer": {Type: MsgSnapshotResp, From: "s1", Snapshot: &SnapshotChunk{ID: strings.Repeat("x", 300)}},
	} {
		b, err := EncodeMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeMessage(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	ok := Message{Type: MsgSnapshot, From: "s1", Index: 9, Snapshot: good()}
	b, _ := EncodeMessage(&ok)
	if _, err := DecodeMessage(b); err != nil {
		t.Fatalf("a good chunk: %v", err)
	}
}
