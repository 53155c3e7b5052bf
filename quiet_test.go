package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func quietFollower(g GroupID, leader ServerAddress) *quietGroup {
	return &quietGroup{quietBeat: quietBeat{group: g, term: 3, commit: 9}, leaderAddr: leader, timeout: 4}
}

func quietLeader(g GroupID, voters ...ServerAddress) *quietGroup {
	q := &quietGroup{quietBeat: quietBeat{group: g, term: 3, commit: 9}, leader: true, selfVoter: true,
		voters: map[ServerAddress]bool{}, peers: append([]ServerAddress{"learner"}, voters...), timeout: 4}
	for _, v := range voters {
		q.voters[v] = true
	}
	return q
}

// A quiet follower stays quiet while its own leader's host lists it with
// the term and commit it went quiet at; a list from another host, or with
// another term or commit, does not count. Unlisted for longer than the
// election timeout, it is woken, once.
func TestQuietFollowerWatch(t *testing.T) {
	tr := newQuietTracker()
	tr.quiet(quietFollower(1, "A"))
	b := quietBeat{group: 1, term: 3, commit: 9}
	for range 10 {
		tr.now += 2
		require.Equal(t, []quietBeat{b}, tr.heardBeats("A", []quietBeat{b}))
		require.Empty(t, tr.expired())
	}
	for _, bad := range []struct {
		from ServerAddress
		b    quietBeat
	}{{"B", b}, {"A", quietBeat{1, 4, 9}}, {"A", quietBeat{1, 3, 10}}, {"A", quietBeat{2, 3, 9}}} {
		require.Empty(t, tr.heardBeats(bad.from, []quietBeat{bad.b}), "%v", bad)
	}
	tr.now += 4
	require.Empty(t, tr.expired(), "at the timeout")
	tr.now++
	require.Equal(t, map[GroupID]wakeReason{1: wakeLeaderLost}, tr.expired())
	require.Empty(t, tr.expired(), "woken once")
	tr.loud(1)
	require.Empty(t, tr.groups)
}

// A quiet leader is listed to every peer host, learners too; it is woken
// when fewer than a quorum of voters (itself included) answered within
// its lease timeout. Answers from hosts that are not members, or for
// another term, do not count.
func TestQuietLeaderWatch(t *testing.T) {
	tr := newQuietTracker()
	tr.quiet(quietLeader(1, "B", "C"))
	line := quietBeat{1, 3, 9}
	require.Equal(t, map[ServerAddress][]quietBeat{"learner": {line}, "B": {line}, "C": {line}}, tr.beats())
	for range 10 {
		tr.now += 2
		tr.heardAcks("B", []quietBeat{line}) // with itself, 2 of 3
		tr.heardAcks("X", []quietBeat{line})
		tr.heardAcks("C", []quietBeat{{1, 2, 9}})
		require.Empty(t, tr.expired())
	}
	tr.now += 5
	tr.heardAcks("X", []quietBeat{line})
	tr.heardAcks("learner", []quietBeat{line})
	require.Equal(t, map[GroupID]wakeReason{1: wakeQuorumLost}, tr.expired())
	require.Empty(t, tr.beats(), "a leader being woken is no longer vouched for")

	// A leader that does not vote itself needs a majority of the others.
	q := quietLeader(2, "B", "C", "D")
	q.selfVoter = false
	tr.quiet(q)
	tr.now += 5
	tr.heardAcks("B", []quietBeat{{2, 3, 9}})
	require.Equal(t, map[GroupID]wakeReason{2: wakeQuorumLost}, tr.expired(), "1 of 3")
}

func TestBeatsRoundTrip(t *testing.T) {
	lines := []quietBeat{{1, 1, 0}, {hostGroup - 1, 1 << 60, 1 << 62}, {7, 3, 9}}
	got, err := decodeBeats(encodeBeats(lines))
	require.NoError(t, err)
	require.Equal(t, lines, got)
	got, err = decodeBeats(nil)
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range [][]byte{{0x80}, {1, 2}, {1, 2, 0xff, 0xff}} {
		_, err := decodeBeats(bad)
		require.ErrorIs(t, err, errBadBeats, "%x", bad)
	}
	_, err = decodeBeats(encodeBeats(make([]quietBeat, beatsPerMessage+1)))
	require.ErrorIs(t, err, errBadBeats, "too many lines")
}

// FuzzDecodeBeats: a peer host's message never panics the decoder, and
// what decodes encodes back to the same lines.
func FuzzDecodeBeats(f *testing.F) {
	f.Add(encodeBeats([]quietBeat{{1, 2, 3}, {hostGroup - 1, 1 << 63, 0}}))
	f.Add([]byte{0x80, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := decodeBeats(b)
		if err != nil {
			return
		}
		again, err := decodeBeats(encodeBeats(lines))
		require.NoError(t, err)
		require.Equal(t, lines, again)
	})
}
