package raft

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// hardStateKey holds the term and vote together, so one atomic Set updates
// both: a crash can never leave a new term with an old term's vote.
var hardStateKey = []byte("keel/hardstate")

// hardStateVersion is the newest format of the stored term and vote this
// build writes and reads. The value is a msgpack map; version 1 wrote no
// Version field, so a missing one reads as 1. A later format that an older
// build must not misread sets a higher Version, and the older build
// refuses it with ErrUnsupportedVersion.
const hardStateVersion = 1

// storedHardState is the stored form of hardState.
type storedHardState struct {
	Version uint8
	Term    uint64
	Vote    ServerID
}

func loadHardState(s StableStore) (hardState, error) {
	b, err := s.Get(hardStateKey)
	if err != nil {
		return hardState{}, fmt.Errorf("raft: read term and vote: %w", err)
	}
	if len(b) == 0 {
		return hardState{}, nil
	}
	return decodeHardState(b)
}

func decodeHardState(b []byte) (hardState, error) {
	var st storedHardState
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(&st); err != nil {
		return hardState{}, fmt.Errorf("%w: term and vote (%q): %v", ErrCorruptState, hardStateKey, err)
	}
	if st.Version > hardStateVersion {
		return hardState{}, fmt.Errorf("%w: term and vote (%q) in format version %d, this build reads up to %d",
			ErrUnsupportedVersion, hardStateKey, st.Version, hardStateVersion)
	}
	return hardState{Term: st.Term, Vote: st.Vote}, nil
}

func saveHardState(s StableStore, hs hardState) error {
	var b []byte
	st := storedHardState{Version: hardStateVersion, Term: hs.Term, Vote: hs.Vote}
	if err := codec.NewEncoderBytes(&b, wireHandle).Encode(st); err != nil {
		return fmt.Errorf("raft: encode term and vote: %w", err)
	}
	if err := s.Set(hardStateKey, b); err != nil {
		return fmt.Errorf("raft: persist term %d and vote %q: %w", hs.Term, hs.Vote, err)
	}
	return nil
}
