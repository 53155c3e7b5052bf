package raft

import (
	"math"
	"testing"
	"testing/quick"

	"github.com/stretchr/testify/require"
)

// The naive versions say what the functions mean, by brute force.

// naiveCommitIndex tries every candidate index, highest first, and returns
// the first one held by a majority.
func naiveCommitIndex(voters []ServerID, match map[ServerID]uint64) uint64 {
	if len(voters) == 0 {
		return math.MaxUint64
	}
	best := uint64(0)
	for _, cand := range voters {
		n := 0
		for _, v := range voters {
			if match[v] >= match[cand] {
				n++
			}
		}
		if n > len(voters)/2 && match[cand] > best {
			best = match[cand]
		}
	}
	return best
}

func naiveVote(voters []ServerID, votes map[ServerID]bool) voteResult {
	if len(voters) == 0 {
		return voteWon
	}
	yes, no := 0, 0
	for _, v := range voters {
		if g, ok := votes[v]; ok && g {
			yes++
		} else if ok {
			no++
		}
	}
	switch {
	case 2*yes > len(voters):
		return voteWon
	case 2*no >= len(voters): // a majority can no longer say yes
		return voteLost
	default:
		return votePending
	}
}

// quorumCase is a random configuration: up to 9 voters in each half drawn
// from 12 servers, with random match indexes and votes.
type quorumCase struct {
	incoming, outgoing []ServerID
	match              map[ServerID]uint64
	votes              map[ServerID]bool
}

func randomQuorumCase(seed []byte) quorumCase {
	ids := serverIDs(12)
	c := quorumCase{match: map[ServerID]uint64{}, votes: map[ServerID]bool{}}
	for i, id := range ids {
		b := byte(i * 7)
		if i < len(seed) {
			b = seed[i]
		}
		if b&1 != 0 && len(c.incoming) < 9 {
			c.incoming = append(c.incoming, id)
		}
		if b&2 != 0 && len(c.outgoing) < 9 {
			c.outgoing = append(c.outgoing, id)
		}
		c.match[id] = uint64(b >> 4)
		switch b >> 2 & 3 {
		case 1:
			c.votes[id] = true
		case 2:
			c.votes[id] = false
		}
	}
	return c
}

func TestQuorumMatchesNaive(t *testing.T) {
	check := func(seed [12]byte) bool {
		c := randomQuorumCase(seed[:])
		matchFn := func(id ServerID) uint64 { return c.match[id] }
		wantCommit := min(naiveCommitIndex(c.incoming, c.match), naiveCommitIndex(c.outgoing, c.match))
		if jointCommitIndex(c.incoming, c.outgoing, matchFn) != wantCommit {
			return false
		}
		in, out := naiveVote(c.incoming, c.votes), naiveVote(c.outgoing, c.votes)
		want := votePending
		switch {
		case in == voteWon && out == voteWon:
			want = voteWon
		case in == voteLost || out == voteLost:
			want = voteLost
		}
		return jointVoteResult(c.incoming, c.outgoing, c.votes) == want
	}
	require.NoError(t, quick.Check(check, &quick.Config{MaxCount: 20000}))
}

func TestQuorumExamples(t *testing.T) {
	ids := serverIDs(5)
	match := map[ServerID]uint64{ids[0]: 5, ids[1]: 4, ids[2]: 3, ids[3]: 2, ids[4]: 1}
	fn := func(id ServerID) uint64 { return match[id] }
	require.Equal(t, uint64(3), majorityCommitIndex(ids, fn))
	require.Equal(t, uint64(4), majorityCommitIndex(ids[:3], fn))
	require.Equal(t, uint64(3), majorityCommitIndex(ids[:4], fn), "4 voters need 3")
	require.Equal(t, uint64(2), jointCommitIndex(ids[:3], ids[2:], fn), "joint: min of both halves")
	require.Equal(t, voteWon, majorityVoteResult(ids[:3], map[ServerID]bool{ids[0]: true, ids[1]: true}))
	require.Equal(t, voteLost, majorityVoteResult(ids[:3], map[ServerID]bool{ids[0]: false, ids[1]: false}))
	require.Equal(t, votePending, majorityVoteResult(ids[:4], map[ServerID]bool{ids[0]: true, ids[1]: true}))
	require.Equal(t, votePending, jointVoteResult(ids[:3], ids[2:], map[ServerID]bool{ids[0]: true, ids[1]: true}),
		"joint: a win in one half is not enough")
}
