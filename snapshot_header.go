package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Every snapshot keel stores starts with a small header of its own — the
// client session table and the log time (format in session.go) — and the
// FSM's bytes follow. keel writes the header before FSMSnapshot.Persist
// writes, and reads it back before FSM.Restore reads, so an FSM never sees
// it; SnapshotFuture.Open and Restore deal in the whole stream.

// readSnapshotHeader reads keel's header from the start of a snapshot and
// returns its session table, leaving r at the FSM's first byte. A damaged
// header is an ErrSnapshotCorrupt naming what is wrong. Memory grows with
// the bytes that arrive, never with what a length field claims.
func readSnapshotHeader(r io.Reader) (*sessionTable, error) {
	var prefix [snapshotPrefixBytes]byte
	if n, err := io.ReadFull(r, prefix[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if err := checkSnapshotMagic(prefix[:n]); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
			}
			return nil, fmt.Errorf("%w: %d bytes, too short for keel's snapshot header", ErrSnapshotCorrupt, n)
		}
		return nil, fmt.Errorf("raft: read snapshot header: %w", err)
	}
	bodyLen, sum, err := parseSnapshotPrefix(prefix[:])
	if errors.Is(err, ErrUnsupportedVersion) {
		// Not damage: a newer build wrote it. Never read it as this one's.
		return nil, fmt.Errorf("raft: snapshot: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
	}
	var body bytes.Buffer
	if n, err := io.CopyN(&body, r, int64(bodyLen)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: snapshot header claims %d bytes, the snapshot ends after %d", ErrSnapshotCorrupt, bodyLen, n)
		}
		return nil, fmt.Errorf("raft: read snapshot header: %w", err)
	}
	t, err := decodeSessionState(body.Bytes(), sum)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshotCorrupt, err)
	}
	return t, nil
}
