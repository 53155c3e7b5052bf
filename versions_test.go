package raft

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/stretchr/testify/require"
)

// requireNewer checks that err refuses a newer format: ErrUnsupportedVersion,
// not damage, and a message naming the version.
func requireNewer(t *testing.T, err error, version string) {
	t.Helper()
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	require.NotErrorIs(t, err, ErrCorruptState, "a newer format is not damage")
	require.NotErrorIs(t, err, ErrSnapshotCorrupt, "a newer format is not damage")
	require.Contains(t, err.Error(), version)
}

func encodeMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	var b []byte
	require.NoError(t, codec.NewEncoderBytes(&b, wireHandle).Encode(v))
	return b
}

func TestHardStateVersions(t *testing.T) {
	// The format before the Version field: a map of Term and Vote.
	legacy := encodeMsgpack(t, struct {
		Term uint64
		Vote ServerID
	}{7, "s2"})
	hs, err := decodeHardState(legacy)
	require.NoError(t, err)
	require.Equal(t, hardState{Term: 7, Vote: "s2"}, hs, "state written before versions existed reads as version 1")

	s := &fakeStable{kv: map[string][]byte{}}
	require.NoError(t, saveHardState(s, hardState{Term: 9, Vote: "s3"}))
	hs, err = loadHardState(s)
	require.NoError(t, err)
	require.Equal(t, hardState{Term: 9, Vote: "s3"}, hs)

	newer := encodeMsgpack(t, storedHardState{Version: hardStateVersion + 1, Term: 9, Vote: "s3"})
	_, err = decodeHardState(newer)
	requireNewer(t, err, "format version 2")

	_, err = decodeHardState([]byte{0xc1})
	require.ErrorIs(t, err, ErrCorruptState, "garbage is still damage")
}

func TestSnapshotHeaderVersions(t *testing.T) {
	hdr, err := encodeSnapshotHeader(newSessionTable())
	require.NoError(t, err)
	_, err = readSnapshotHeader(bytes.NewReader(hdr))
	require.NoError(t, err)

	newer := bytes.Clone(hdr)
	newer[8] = snapshotHeaderVersion + 1
	_, err = readSnapshotHeader(bytes.NewReader(newer))
	requireNewer(t, err, "snapshot header version 2")

	zero := bytes.Clone(hdr)
	zero[8] = 0
	_, err = readSnapshotHeader(bytes.NewReader(zero))
	require.ErrorIs(t, err, ErrSnapshotCorrupt)
}

func TestNewerEntryTypeRefused(t *testing.T) {
	newer := Log{Index: 5, Term: 2, Type: lastLogType + 1, Data: []byte("x")}
	requireNewer(t, validateEntry(&newer), "entry type 4")
	require.NoError(t, newerEntryType([]Log{{Type: LogCommand}, {Type: LogSession}}))
	requireNewer(t, newerEntryType([]Log{{Type: LogCommand}, newer}), "type 4")

	// On the wire: refused as malformed and as newer, so a transport can
	// tell the two apart.
	b, err := EncodeMessage(&Message{Type: MsgAppend, From: "s1", To: "s2", Term: 2, Index: 4, LogTerm: 2, Entries: []Log{newer}})
	require.NoError(t, err)
	_, err = DecodeMessage(b)
	require.ErrorIs(t, err, ErrMalformedMessage)
	require.ErrorIs(t, err, ErrUnsupportedVersion)

	// In the log: the server refuses to start rather than skip or apply it.
	newer.Index = 2
	logs := &fakeLogStore{}
	require.NoError(t, logs.StoreLogs([]*Log{{Index: 1, Term: 1, Type: LogNoop}, &newer}))
	_, _, err = loadLog(logs, 0, 1<<20)
	requireNewer(t, err, "entry type 4")
}

// A transport that hands messages over without DecodeMessage (a user's
// own) still cannot make a server store an entry type it does not know:
// the loop drops the message, and a later append of the same index in a
// known type is stored.
func TestLoopDropsNewerEntryTypes(t *testing.T) {
	conf := DefaultConfig()
	conf.LocalID = "a"
	conf.HeartbeatInterval = 10 * time.Millisecond
	conf.ElectionTimeout = 10 * time.Second // a follower throughout
	logs, stable := &fakeLogStore{}, &fakeStable{kv: map[string][]byte{}}
	servers := Configuration{Servers: []Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}, {ID: "c", Address: "c"}}}
	require.NoError(t, BootstrapCluster(conf, logs, stable, noSnapshots{}, servers))
	trans := &recordingTransport{in: make(chan *Message)}
	r, err := NewRaft(conf, nopFSM{}, logs, stable, noSnapshots{}, trans)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Shutdown()) }()
	app := func(typ LogType) *Message {
		return &Message{Type: MsgAppend, From: "b", FromAddr: "b", To: "a", Term: 2, Index: 1, LogTerm: 1, Commit: 1,
			Entries: []Log{{Index: 2, Term: 2, Type: typ, Data: []byte("x")}}}
	}
	trans.in <- app(lastLogType + 1)
	trans.in <- app(LogCommand)
	require.Eventually(t, func() bool { last, _ := logs.LastIndex(); return last == 2 }, 5*time.Second, time.Millisecond)
	var e Log
	require.NoError(t, logs.GetLog(2, &e))
	require.Equal(t, LogCommand, e.Type, "the newer entry was never stored")
	require.Eventually(t, func() bool { return trans.count(MsgAppendResp) == 1 }, 5*time.Second, time.Millisecond)
	require.Never(t, func() bool { return trans.count(MsgAppendResp) > 1 }, 50*time.Millisecond, 5*time.Millisecond,
		"only the append it could store is answered")
}
