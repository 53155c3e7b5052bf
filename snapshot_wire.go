package raft

import (
	"errors"
	"fmt"
)

// MaxSnapshotChunk is the largest snapshot chunk a server accepts.
const MaxSnapshotChunk = 16 << 20

// maxSnapshotIDLen bounds a snapshot ID on the wire.
const maxSnapshotIDLen = 256

// SnapshotChunk is the snapshot part of MsgSnapshot and MsgSnapshotResp.
type SnapshotChunk struct {
	// ID is the leader's ID of the snapshot; a new ID starts a new transfer.
	ID string
	// Offset is where Data starts in the snapshot (MsgSnapshot), or how
	// many bytes the follower holds (MsgSnapshotResp).
	Offset uint64
	Data   []byte
	// Done marks the last chunk (MsgSnapshot) or an installed snapshot
	// (MsgSnapshotResp).
	Done bool
	// Size and Checksum (CRC-64/ECMA of the whole snapshot) are set in the
	// last chunk.
	Size     uint64
	Checksum uint64
	// Configuration as of the snapshot and the index of its entry; set in
	// every MsgSnapshot chunk.
	Configuration      *Configuration
	ConfigurationIndex uint64
}

func (m *Message) validateSnapshot() error {
	if m.Type != MsgSnapshot && m.Type != MsgSnapshotResp {
		if m.Snapshot != nil {
			return fmt.Errorf("%v carries a snapshot chunk", m.Type)
		}
		return nil
	}
	if m.Type == MsgSnapshotResp {
		if m.Snapshot != nil && len(m.Snapshot.ID) > maxSnapshotIDLen {
			return errors.New("snapshot ID too long")
		}
		return nil
	}
	ch := m.Snapshot
	switch {
	case ch == nil:
		return errors.New("MsgSnapshot without a chunk")
	case ch.ID == "" || len(ch.ID) > maxSnapshotIDLen:
		return fmt.Errorf("snapshot ID of %d bytes", len(ch.ID))
	case m.Index == 0:
		return errors.New("snapshot at index 0")
	case len(ch.Data) > MaxSnapshotChunk:
		return fmt.Errorf("snapshot chunk of %d bytes, more than %d", len(ch.Data), MaxSnapshotChunk)
	case ch.Offset > 1<<62 || (ch.Done && ch.Offset+uint64(len(ch.Data)) != ch.Size):
		return fmt.Errorf("snapshot chunk at offset %d of %d bytes does not end at size %d", ch.Offset, len(ch.Data), ch.Size)
	case ch.Configuration == nil:
		return errors.New("snapshot chunk without a configuration")
	case ch.ConfigurationIndex > m.Index:
		return fmt.Errorf("snapshot configuration index %d beyond the snapshot's %d", ch.ConfigurationIndex, m.Index)
	}
	if err := ch.Configuration.Validate(); err != nil {
		return fmt.Errorf("snapshot %s: %w", ch.ID, err)
	}
	return nil
}
