package raft

import (
	"math"
	"slices"
)

// The functions here are pure: they decide commit indexes and election
// results from plain values, so they can be checked against naive versions
// (quorum_test.go) and reused by the simulator's checkers.

// voteResult is the state of an election tally.
type voteResult uint8

const (
	votePending voteResult = iota
	voteLost
	voteWon
)

// majorityCommitIndex returns the largest index that a majority of voters
// have matched. For an empty voter set it returns math.MaxUint64, so that an
// empty half of a joint configuration never holds a commit back.
func majorityCommitIndex(voters []ServerID, match func(ServerID) uint64) uint64 {
	n := len(voters)
	if n == 0 {
		return math.MaxUint64
	}
	var stack [7]uint64 // clusters are small: avoid an allocation per commit
	idx := stack[:0]
	if n > len(stack) {
		idx = make([]uint64, 0, n)
	}
	for _, id := range voters {
		idx = append(idx, match(id))
	}
	slices.Sort(idx)
	// Sorted ascending, the entry at n-(n/2+1) is held by n/2+1 voters.
	return idx[n-(n/2+1)]
}

// jointCommitIndex is the commit index of a joint configuration: an entry
// must be on a majority of the incoming AND of the outgoing voters.
func jointCommitIndex(incoming, outgoing []ServerID, match func(ServerID) uint64) uint64 {
	return min(majorityCommitIndex(incoming, match), majorityCommitIndex(outgoing, match))
}

// majorityVoteResult tallies votes: granted (true), rejected (false) or
// missing (absent). An empty voter set wins, like majorityCommitIndex.
func majorityVoteResult(voters []ServerID, votes map[ServerID]bool) voteResult {
	if len(voters) == 0 {
		return voteWon
	}
	granted, missing := 0, 0
	for _, id := range voters {
		v, ok := votes[id]
		switch {
		case !ok:
			missing++
		case v:
			granted++
		}
	}
	q := len(voters)/2 + 1
	switch {
	case granted >= q:
		return voteWon
	case granted+missing >= q:
		return votePending
	default:
		return voteLost
	}
}

// jointVoteResult needs a win in both halves; a loss in either loses.
func jointVoteResult(incoming, outgoing []ServerID, votes map[ServerID]bool) voteResult {
	in, out := majorityVoteResult(incoming, votes), majorityVoteResult(outgoing, votes)
	switch {
	case in == voteWon && out == voteWon:
		return voteWon
	case in == voteLost || out == voteLost:
		return voteLost
	default:
		return votePending
	}
}
