package raft

import (
	"encoding/binary"
	"fmt"
)

// GroupID names a Raft group on a Host. Every host that runs a replica of
// a group knows it by the same ID. Zero is not a valid ID.
type GroupID uint64

// GroupMessage is a Message of one group, as a HostTransport carries it.
type GroupMessage struct {
	Group GroupID
	Msg   *Message
}

// HostTransport carries the messages of every group of a Host to other
// hosts: one set of connections per peer host, however many groups the
// two share. It has Transport's contract otherwise: Send must not block
// for long (dropping a message is correct when a peer cannot keep up),
// delivery may be lossy, duplicated or reordered, and keel calls Send from
// several goroutines at once.
//
// An implementation should batch: messages of many groups queued for one
// peer host go out in one write.
type HostTransport interface {
	// Send queues m, a message of group g, for the host at target.
	Send(target ServerAddress, g GroupID, m *Message) error
	// Consumer returns the channel on which every group's messages for
	// this host arrive.
	Consumer() <-chan GroupMessage
	// LocalAddr returns this host's address.
	LocalAddr() ServerAddress
	// Close stops the transport and every goroutine it runs.
	Close() error
}

// groupTagLen is the size of the group ID in front of an encoded message.
const groupTagLen = 8

// EncodeGroupMessage encodes m of group g: the group ID (8 bytes, big
// endian), then EncodeMessage's bytes. HostTransports use it so that every
// host speaks the same format.
func EncodeGroupMessage(g GroupID, m *Message) ([]byte, error) {
	if g == 0 {
		return nil, fmt.Errorf("raft: encode %v: group ID 0 is not valid", m.Type)
	}
	b, err := EncodeMessage(m)
	if err != nil {
		return nil, err
	}
	out := make([]byte, groupTagLen+len(b))
	binary.BigEndian.PutUint64(out, uint64(g))
	copy(out[groupTagLen:], b)
	return out, nil
}

// DecodeGroupMessage decodes what EncodeGroupMessage encoded. Malformed
// input gives an error wrapping ErrMalformedMessage, never a panic.
func DecodeGroupMessage(b []byte) (GroupMessage, error) {
	if len(b) < groupTagLen {
		return GroupMessage{}, fmt.Errorf("%w: %d bytes, shorter than a group ID", ErrMalformedMessage, len(b))
	}
	g := GroupID(binary.BigEndian.Uint64(b))
	if g == 0 {
		return GroupMessage{}, fmt.Errorf("%w: group ID 0", ErrMalformedMessage)
	}
	m, err := DecodeMessage(b[groupTagLen:])
	if err != nil {
		return GroupMessage{}, err
	}
	return GroupMessage{Group: g, Msg: m}, nil
}
