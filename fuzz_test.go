package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"testing"
)

// FuzzDecodeMessage feeds arbitrary bytes to the wire decoder: it must
// return a valid message or an error, never panic, and what it accepts must
// survive a round trip. The seed corpus (valid messages of every type and a
// few broken ones) runs under plain go test.
func FuzzDecodeMessage(f *testing.F) {
	conf := encodeConfiguration(bootstrapConfig(serverIDs(3)))
	seeds := []Message{
		{Type: MsgAppend, From: "s1", To: "s2", Term: 3, Index: 7, LogTerm: 2, Commit: 6,
			Entries: []Log{{Index: 8, Term: 3, Type: LogCommand, Data: []byte("x")}, {Index: 9, Term: 3, Type: LogConfiguration, Data: conf},
				{Index: 10, Term: 3, Type: LogSession, Data: regData(1, 10)}, {Index: 11, Term: 3, Type: LogSession, Data: cmdData(2, 10, 1, "y")}}},
		{Type: MsgAppendResp, From: "s2", To: "s1", Term: 3, Index: 7, Reject: true, RejectHint: 5, LogTerm: 2},
		{Type: MsgHeartbeat, From: "s1", To: "s2", Term: 3, Commit: 6, Context: []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{Type: MsgVote, From: "s3", To: "s1", Term: 4, Index: 9, LogTerm: 3, Transfer: true},
		{Type: MsgPreVoteResp, From: "s1", To: "s3", Term: 4},
		{Type: MsgTimeoutNow, From: "s1", To: "s2", Term: 4},
		{Type: MsgSnapshot, From: "s1", To: "s2", Term: 4, Index: 9, LogTerm: 3, Snapshot: &SnapshotChunk{ID: "3-9-1", Offset: 4,
			Data: []byte("data"), Done: true, Size: 8, Checksum: 7, Configuration: &Configuration{Servers: []Server{{ID: "s1", Address: "a"}}}, ConfigurationIndex: 1}},
		{Type: MsgSnapshotResp, From: "s2", To: "s1", Term: 4, Index: 9, Snapshot: &SnapshotChunk{ID: "3-9-1", Offset: 8, Done: true}},
		{Type: MsgReadIndex, From: "s2", To: "s1", Term: 4, Context: []byte{0, 0, 0, 0, 0, 0, 0, 9}},
		{Type: MsgReadIndexResp, From: "s1", To: "s2", Term: 4, Index: 12, Context: []byte{0, 0, 0, 0, 0, 0, 0, 9}},
		{Type: MsgReadIndexResp, From: "s1", To: "s2", Term: 4, Reject: true, Context: []byte{0, 0, 0, 0, 0, 0, 0, 9}},
		{Type: MsgPropose, From: "s2", To: "s1", Term: 4, Context: []byte{0, 0, 0, 0, 0, 0, 0, 10},
			Entries: []Log{{Type: LogCommand, Data: []byte("x")}, {Type: LogNoop}}},
		{Type: MsgProposeResp, From: "s1", To: "s2", Term: 4, Index: 13, LogTerm: 4, Context: []byte{0, 0, 0, 0, 0, 0, 0, 10}},
	}
	for i := range seeds {
		b, err := EncodeMessage(&seeds[i])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	bad, err := EncodeMessage(&Message{Type: MsgAppend, From: "s1", Index: 1,
		Entries: []Log{{Index: 2, Type: LogConfiguration, Data: []byte("not a configuration")}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bad)
	f.Add([]byte{})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}) // a map claiming 4G entries
	f.Add([]byte{0xdd, 0x7f, 0xff, 0xff, 0xff}) // an array claiming 2G entries
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		again, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("re-encode accepted message: %v", err)
		}
		m2, err := DecodeMessage(again)
		if err != nil {
			t.Fatalf("decode re-encoded message: %v", err)
		}
		if m2.Type != m.Type || m2.Term != m.Term || len(m2.Entries) != len(m.Entries) {
			t.Fatalf("round trip changed the message: %+v vs %+v", m, m2)
		}
	})
}

// Entries the core could not digest are refused at the wire, where they
// arrive, so the core never meets them.
func TestDecodeRefusesBadEntries(t *testing.T) {
	for name, m := range map[string]Message{
		"unreadable configuration": {Type: MsgAppend, From: "s1", Index: 1, Entries: []Log{{Index: 2, Type: LogConfiguration, Data: []byte("junk")}}},
		"configuration without voters": {Type: MsgAppend, From: "s1", Index: 1, Entries: []Log{{Index: 2, Type: LogConfiguration,
			Data: encodeConfiguration(Configuration{Servers: []Server{{ID: "a", Address: "a", Suffrage: Nonvoter}}})}}},
		"unknown entry type":       {Type: MsgAppend, From: "s1", Index: 1, Entries: []Log{{Index: 2, Type: 9}}},
		"malformed session entry":  {Type: MsgAppend, From: "s1", Index: 1, Entries: []Log{{Index: 2, Type: LogSession, Data: cmdData(1, 0, 1, "x")}}},
		"index gap":                {Type: MsgAppend, From: "s1", Index: 1, Entries: []Log{{Index: 3}}},
		"unknown type":             {Type: 99, From: "s1"},
		"no sender":                {Type: MsgHeartbeat},
		"read without context":     {Type: MsgReadIndex, From: "s2"},
		"proposal without context": {Type: MsgPropose, From: "s2", Entries: []Log{{Type: LogCommand}}},
		"forwarded entry with an index": {Type: MsgPropose, From: "s2", Context: make([]byte, 8),
			Entries: []Log{{Index: 1, Type: LogCommand}}},
		"forwarded configuration garbage": {Type: MsgPropose, From: "s2", Context: make([]byte, 8),
			Entries: []Log{{Type: LogConfiguration, Data: []byte("junk")}}},
	} {
		b, err := EncodeMessage(&m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeMessage(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// FuzzSimulator lets the fuzzer make the simulator's choices: its bytes
// are the random source that draws the fault plan, schedules faults, picks
// delays, crashes and client operations (seeded from the bytes once they
// run out). Every checker stays on; any violation fails.
func FuzzSimulator(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(bytes.Repeat([]byte{0x00, 0x80}, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		opt := simOptions{seed: 1, ticks: 600, ops: 60, clients: 4, src: newByteSource(b)}
		if res := runSim(opt, t.TempDir()); res.err != nil {
			t.Fatalf("fuzz input %x:\n%v", b, res.err)
		}
	})
}

// byteSource is a rand.Source that returns the fuzz input 8 bytes at a
// time, then continues from a generator seeded with the input.
type byteSource struct {
	b    []byte
	rest *rand.PCG
}

func newByteSource(b []byte) *byteSource {
	h := fnv.New64a()
	h.Write(b)
	return &byteSource{b: b, rest: rand.NewPCG(h.Sum64(), uint64(len(b)))}
}

func (s *byteSource) Uint64() uint64 {
	if len(s.b) == 0 {
		return s.rest.Uint64()
	}
	var x [8]byte
	n := copy(x[:], s.b)
	s.b = s.b[n:]
	return binary.LittleEndian.Uint64(x[:])
}

// FuzzStoredVersions feeds arbitrary bytes to the readers of keel's own
// stored formats: the term and vote, and the snapshot header's fixed
// prefix. Neither panics; a prefix with keel's magic and a version above
// this build's is refused as newer, never read and never called corrupt.
func FuzzStoredVersions(f *testing.F) {
	s := &fakeStable{kv: map[string][]byte{}}
	if err := saveHardState(s, hardState{Term: 3, Vote: "s1"}); err != nil {
		f.Fatal(err)
	}
	hs, _ := s.Get(hardStateKey)
	hdr, err := encodeSnapshotHeader(newSessionTable())
	if err != nil {
		f.Fatal(err)
	}
	newer := bytes.Clone(hdr)
	newer[8] = 2
	f.Add(hs)
	f.Add(hdr[:snapshotPrefixBytes])
	f.Add(newer[:snapshotPrefixBytes])
	f.Add([]byte{0x83, 0xa7, 'V', 'e', 'r', 's', 'i', 'o', 'n', 0xcc, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := decodeHardState(b); err == nil {
			if _, err := decodeHardState(encodeMsgpack(t, storedHardState{Version: hardStateVersion, Term: st.Term, Vote: st.Vote})); err != nil {
				t.Fatalf("a decoded term and vote does not survive a round trip: %v", err)
			}
		}
		if len(b) != snapshotPrefixBytes {
			return
		}
		_, _, err := parseSnapshotPrefix(b)
		if string(b[:8]) == string(snapshotMagic[:]) && b[8] > snapshotHeaderVersion {
			if !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("version %d refused with %v, want ErrUnsupportedVersion", b[8], err)
			}
		} else if errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("%x refused as newer: %v", b, err)
		}
	})
}
