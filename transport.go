package raft

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// MessageType says what a Message is.
type MessageType uint8

const (
	// MsgAppend is AppendEntries: entries after (Index, LogTerm), and the
	// leader's commit index.
	MsgAppend MessageType = iota + 1
	// MsgAppendResp answers MsgAppend. On success Index is the last index
	// the follower now holds durably in agreement with the leader; on
	// rejection Index is the rejected prevLogIndex and (RejectHint, LogTerm)
	// the follower's conflict hint.
	MsgAppendResp
	// MsgHeartbeat tells followers the leader is alive and its commit index
	// (Commit, capped at what the follower is known to hold).
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat, echoing its Context.
	MsgHeartbeatResp
	// MsgVote is RequestVote: the candidate's last log (Index, LogTerm).
	MsgVote
	// MsgVoteResp answers MsgVote; Reject is false when the vote is granted.
	MsgVoteResp
	// MsgPreVote asks whether the receiver would vote for the sender in
	// Term, without changing anyone's term.
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgTimeoutNow tells the receiver to start an election at once
	// (leadership transfer).
	MsgTimeoutNow
	// MsgSnapshot is one chunk of InstallSnapshot: the leader's snapshot
	// ending at (Index, LogTerm), in Snapshot.
	MsgSnapshot
	// MsgSnapshotResp answers MsgSnapshot for the snapshot at Index:
	// Snapshot.Offset is how many bytes the follower holds, Snapshot.Done
	// that it has installed the snapshot (or already covered it), Reject
	// that it gave the transfer up.
	MsgSnapshotResp
	// MsgReadIndex asks the leader for a read index for a follower read;
	// Context identifies the request and is echoed.
	MsgReadIndex
	// MsgReadIndexResp answers MsgReadIndex: Index is the read index once
	// the leader confirmed its leadership, Reject that it could not.
	MsgReadIndexResp
	// MsgPropose hands a follower's proposals (Entries: types and data)
	// to the leader; Context identifies the request and is echoed.
	MsgPropose
	// MsgProposeResp answers MsgPropose: Index and LogTerm are where the
	// leader appended the first entry, or Reject that it did not
	// (RejectHint says why).
	MsgProposeResp
	// MsgQuiesce is a heartbeat after which a follower holding exactly
	// the leader's log (up to Commit) stops ticking, as the leader did:
	// the group is idle (groups on a Host only; quiesce.go).
	MsgQuiesce

	msgTypeEnd // one past the last valid type
)

var msgTypeNames = [...]string{
	MsgAppend: "MsgAppend", MsgAppendResp: "MsgAppendResp",
	MsgHeartbeat: "MsgHeartbeat", MsgHeartbeatResp: "MsgHeartbeatResp",
	MsgVote: "MsgVote", MsgVoteResp: "MsgVoteResp",
	MsgPreVote: "MsgPreVote", MsgPreVoteResp: "MsgPreVoteResp",
	MsgTimeoutNow: "MsgTimeoutNow",
	MsgSnapshot:   "MsgSnapshot", MsgSnapshotResp: "MsgSnapshotResp",
	MsgReadIndex: "MsgReadIndex", MsgReadIndexResp: "MsgReadIndexResp",
	MsgPropose: "MsgPropose", MsgProposeResp: "MsgProposeResp",
	MsgQuiesce: "MsgQuiesce",
}

// String returns the message type's name.
func (t MessageType) String() string {
	if t > 0 && t < msgTypeEnd {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is one Raft message between servers. Messages are one-way:
// responses are Messages too, so a Transport only has to deliver them, and
// the leader can keep several appends in flight per follower.
//
// Which fields are set depends on Type (see the MessageType constants).
type Message struct {
	Type     MessageType
	From     ServerID
	FromAddr ServerAddress // where replies go, so a sender need not be in the receiver's configuration
	To       ServerID
	Term     uint64

	Index      uint64 // prevLogIndex (append), last log index (votes), match or rejected index (append response)
	LogTerm    uint64 // prevLogTerm (append), last log term (votes), hint term (rejected append)
	Entries    []Log
	Commit     uint64
	Reject     bool
	RejectHint uint64 // the last index at which the follower's log may match (rejected append)
	Context    []byte // echoed in the response (heartbeats)
	Transfer   bool   // the vote is part of a leadership transfer: bypass leader stickiness

	Snapshot *SnapshotChunk // MsgSnapshot and MsgSnapshotResp
}

// Transport carries Messages between servers. keel calls Send from several
// goroutines at once.
//
// Writing one over any RPC or messaging system takes little: deliver each
// Message to the server at an address, and hand what arrives to Consumer.
// Delivery may be lossy, duplicated or reordered; Raft copes, at the cost of
// retransmissions.
type Transport interface {
	// Send queues m for delivery to the server at target and returns without
	// waiting for it to be delivered. It must not block for long: when a
	// peer cannot keep up, dropping the message is correct. Neither the
	// transport nor keel modifies m after Send.
	Send(target ServerAddress, m *Message) error
	// Consumer returns the channel on which messages for this server arrive.
	Consumer() <-chan *Message
	// LocalAddr returns this server's address.
	LocalAddr() ServerAddress
	// Close stops the transport and every goroutine it runs.
	Close() error
}

// The wire protocol versions this build speaks: a transport that connects
// two servers agrees on the highest version both speak (transport/tcp does
// it in a hello when it connects) and refuses a peer with no version in
// common. Version 1 is EncodeMessage's format.
const (
	ProtocolVersion    = 1 // the newest version this build speaks
	MinProtocolVersion = 1 // the oldest version this build still speaks
)

// ErrMalformedMessage is returned by DecodeMessage for bytes that are not a
// valid Message.
var ErrMalformedMessage = errors.New("raft: malformed message")

func msgpackHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.WriteExt = true
	// A corrupt length field must not make the decoder allocate without
	// limit: collections start at most this big and grow as data arrives.
	h.MaxInitLen = 4096
	return h
}

var wireHandle = msgpackHandle()

// Encoders and decoders are costly to build and reusable: pool them.
var (
	encoderPool = sync.Pool{New: func() any { return codec.NewEncoderBytes(nil, wireHandle) }}
	decoderPool = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, wireHandle) }}
)

// EncodeMessage encodes m in keel's wire format (msgpack). Transports use it
// so that every server speaks the same format.
func EncodeMessage(m *Message) ([]byte, error) {
	var b []byte
	enc := encoderPool.Get().(*codec.Encoder)
	enc.ResetBytes(&b)
	err := enc.Encode(m)
	enc.ResetBytes(nil)
	encoderPool.Put(enc)
	if err != nil {
		return nil, fmt.Errorf("raft: encode %v: %w", m.Type, err)
	}
	return b, nil
}

// DecodeMessage decodes a Message encoded by EncodeMessage. Malformed input
// gives an error wrapping ErrMalformedMessage, never a panic.
func DecodeMessage(b []byte) (m *Message, err error) {
	m = new(Message)
	dec := decoderPool.Get().(*codec.Decoder)
	dec.ResetBytes(b)
	err = dec.Decode(m)
	dec.ResetBytes(nil)
	decoderPool.Put(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedMessage, err)
	}
	if err := m.validate(); err != nil {
		// %w twice: a newer build's entry is ErrUnsupportedVersion too.
		return nil, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	return m, nil
}

func (m *Message) validate() error {
	if m.Type == 0 || m.Type >= msgTypeEnd {
		return fmt.Errorf("unknown message type %d", m.Type)
	}
	if m.From == "" {
		return errors.New("empty sender ID")
	}
	if (m.Type == MsgReadIndex || m.Type == MsgReadIndexResp || m.Type == MsgPropose || m.Type == MsgProposeResp) && len(m.Context) != 8 {
		return fmt.Errorf("%v needs an 8-byte context", m.Type)
	}
	if err := m.validateSnapshot(); err != nil {
		return err
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if m.Type == MsgPropose {
			// The leader places forwarded proposals.
			if e.Index != 0 || e.Term != 0 {
				return fmt.Errorf("forwarded entry %d has index %d term %d, want none", i, e.Index, e.Term)
			}
		} else if e.Index != m.Index+uint64(i)+1 {
			return fmt.Errorf("entry %d has index %d, want %d", i, e.Index, m.Index+uint64(i)+1)
		}
		if err := validateEntry(e); err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
	}
	return nil
}
