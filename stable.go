package raft

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// hardStateKey holds the term and vote together, so one atomic Set updates
// both: a crash can never leave a new term with an old term's vote.
var hardStateKey = []byte("keel/hardstate")

func loadHardState(s StableStore) (hardState, error) {
	var hs hardState
	b, err := s.Get(hardStateKey)
	if err != nil {
		return hs, fmt.Errorf("raft: read term and vote: %w", err)
	}
	if len(b) == 0 {
		return hs, nil
	}
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(&hs); err != nil {
		return hs, fmt.Errorf("%w: term and vote (%q): %v", ErrCorruptState, hardStateKey, err)
	}
	return hs, nil
}

func saveHardState(s StableStore, hs hardState) error {
	var b []byte
	if err := codec.NewEncoderBytes(&b, wireHandle).Encode(hs); err != nil {
		return fmt.Errorf("raft: encode term and vote: %w", err)
	}
	if err := s.Set(hardStateKey, b); err != nil {
		return fmt.Errorf("raft: persist term %d and vote %q: %w", hs.Term, hs.Vote, err)
	}
	return nil
}
