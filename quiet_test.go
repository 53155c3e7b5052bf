package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func quietFollower(g GroupID, leader ServerAddress) *quietGroup {
	return &quietGroup{quietBeat: quietBeat{group: g, term: 3, commit: 9}, leaderAddr: leader, timeout: 4}
}

func quietLeader(g GroupID, peers ...ServerAddress) *quietGroup {
	return &quietGroup{quietBeat: quietBeat{group: g, term: 3, commit: 9}, leader: true, peers: peers, timeout: 4}
}

// A quiet follower stays quiet while its own leader's host vouches for it:
// in full, with the term and commit it went quiet at, then by naming that
// list's version. A list from another host, or with another term or
// commit, does not count; a version this host does not know is answered
// "send it in full". Not vouched for longer than the election timeout, it
// is woken, once.
func TestQuietFollowerWatch(t *testing.T) {
	tr := newQuietTracker()
	tr.quiet(quietFollower(1, "A"))
	line := quietBeat{group: 1, term: 3, commit: 9}
	full := hostBeat{kind: beatFull, version: 5, lines: []quietBeat{line, {2, 3, 9}}}
	vouched, answer := tr.heardBeat("A", full)
	require.Len(t, vouched, 1)
	require.Equal(t, hostBeat{kind: beatFull, version: 5, lines: []quietBeat{line}}, answer)
	for range 10 {
		tr.now += 2
		vouched, answer := tr.heardBeat("A", hostBeat{kind: beatSame, version: 5})
		require.Len(t, vouched, 1)
		require.Equal(t, hostBeat{kind: beatSame, version: 5}, answer)
		require.Empty(t, tr.expired())
	}
	_, answer = tr.heardBeat("A", hostBeat{kind: beatSame, version: 4})
	require.Equal(t, hostBeat{kind: beatWhich, version: 4}, answer)
	for _, bad := range []struct {
		from ServerAddress
		line quietBeat
	}{{"B", line}, {"A", quietBeat{1, 4, 9}}, {"A", quietBeat{1, 3, 10}}} {
		vouched, _ := tr.heardBeat(bad.from, hostBeat{kind: beatFull, version: 6, lines: []quietBeat{bad.line}})
		require.Empty(t, vouched, "%v", bad)
	}
	// That last list from A (version 6) vouched for nothing: it stands.
	vouched, _ = tr.heardBeat("A", hostBeat{kind: beatSame, version: 6})
	require.Empty(t, vouched)
	tr.now += 4
	require.Empty(t, tr.expired(), "at the timeout")
	tr.now++
	require.Equal(t, map[GroupID]wakeReason{1: wakeLeaderLost}, tr.expired())
	require.Empty(t, tr.expired(), "woken once")
	tr.loud(1)
	require.Empty(t, tr.groups)

	// A follower going quiet makes its leader's host's list unknown here,
	// so that the next one comes in full and names it.
	tr.quiet(quietFollower(3, "A"))
	_, answer = tr.heardBeat("A", hostBeat{kind: beatSame, version: 6})
	require.Equal(t, beatWhich, answer.kind)
}

// A quiet leader is listed to every peer host (learners too): in full
// until the peer answers that version in full, then by version. It is
// woken when a peer's host has not vouched for its replica within its
// lease timeout. Answers from hosts that are not members, for another
// version or another term, do not count.
func TestQuietLeaderWatch(t *testing.T) {
	tr := newQuietTracker()
	tr.quiet(quietLeader(1, "learner", "B", "C"))
	line := quietBeat{1, 3, 9}
	beats := tr.beats()
	require.Len(t, beats, 3)
	for p, b := range beats {
		require.Equal(t, beatFull, b.kind, p)
		require.Equal(t, []quietBeat{line}, b.lines, p)
	}
	vB, vC, vL := beats["B"].version, beats["C"].version, beats["learner"].version
	tr.heardAnswer("B", hostBeat{kind: beatFull, version: vB, lines: []quietBeat{line}})
	tr.heardAnswer("C", hostBeat{kind: beatFull, version: vC, lines: []quietBeat{line}})
	beats = tr.beats()
	require.Equal(t, hostBeat{kind: beatSame, version: vB}, beats["B"])
	require.Equal(t, beatFull, beats["learner"].kind, "unanswered: sent in full again")
	tr.heardAnswer("learner", hostBeat{kind: beatFull, version: vL, lines: []quietBeat{line}})
	for range 10 {
		tr.now += 2
		for _, p := range []ServerAddress{"B", "C", "learner"} {
			tr.heardAnswer(p, hostBeat{kind: beatSame, version: beats[p].version})
		}
		require.Empty(t, tr.expired())
	}
	// The learner's host stops vouching (say its replica restarted).
	tr.now += 3
	tr.heardAnswer("B", hostBeat{kind: beatSame, version: vB})
	tr.heardAnswer("C", hostBeat{kind: beatSame, version: vC})
	tr.heardAnswer("X", hostBeat{kind: beatSame, version: vL})
	require.Empty(t, tr.expired(), "within the timeout")
	tr.now += 2
	tr.heardAnswer("B", hostBeat{kind: beatSame, version: vB})
	tr.heardAnswer("C", hostBeat{kind: beatSame, version: vC})
	require.Equal(t, map[GroupID]wakeReason{1: wakePeerLost}, tr.expired())
	require.Empty(t, tr.beats(), "a leader being woken is no longer vouched for")

	// A peer asking for the list again counts only once it has it.
	tr.quiet(quietLeader(2, "B"))
	v := tr.beats()["B"].version
	tr.heardAnswer("B", hostBeat{kind: beatFull, version: v, lines: []quietBeat{{2, 3, 9}}})
	tr.heardAnswer("B", hostBeat{kind: beatWhich, version: v})
	require.Equal(t, beatFull, tr.beats()["B"].kind, "asked again in full")
	tr.now += 5
	tr.heardAnswer("B", hostBeat{kind: beatSame, version: v}) // not answered in full since
	require.Equal(t, map[GroupID]wakeReason{2: wakePeerLost}, tr.expired())

	// A full answer naming the group with another term vouches for nothing.
	tr.quiet(quietLeader(3, "B"))
	v = tr.beats()["B"].version
	tr.heardAnswer("B", hostBeat{kind: beatFull, version: v, lines: []quietBeat{{3, 2, 9}}})
	tr.now += 5
	tr.heardAnswer("B", hostBeat{kind: beatSame, version: v})
	require.Equal(t, map[GroupID]wakeReason{3: wakePeerLost}, tr.expired())
}

func TestHostBeatRoundTrip(t *testing.T) {
	for _, b := range []hostBeat{
		{kind: beatFull, version: 1, lines: []quietBeat{{1, 1, 0}, {hostGroup - 1, 1 << 60, 1 << 62}, {7, 3, 9}}},
		{kind: beatFull, version: 1 << 63},
		{kind: beatSame, version: 3},
		{kind: beatWhich, version: 4},
	} {
		got, err := decodeHostBeat(encodeHostBeat(b))
		require.NoError(t, err)
		require.Equal(t, b, got)
	}
	for _, bad := range [][]byte{nil, {'F'}, {'X', 1}, {'F', 1, 0x80}, {'F', 1, 1, 2}, {'S', 1, 1}, {'W', 0x80}} {
		_, err := decodeHostBeat(bad)
		require.ErrorIs(t, err, errBadBeats, "%x", bad)
	}
	_, err := decodeHostBeat(encodeHostBeat(hostBeat{kind: beatFull, lines: make([]quietBeat, maxBeatLines+1)}))
	require.ErrorIs(t, err, errBadBeats, "too many lines")
}

// FuzzDecodeHostBeat: a peer host's message never panics the decoder, and
// what decodes encodes back to the same content.
func FuzzDecodeHostBeat(f *testing.F) {
	f.Add(encodeHostBeat(hostBeat{kind: beatFull, version: 9, lines: []quietBeat{{1, 2, 3}, {hostGroup - 1, 1 << 63, 0}}}))
	f.Add(encodeHostBeat(hostBeat{kind: beatSame, version: 9}))
	f.Add([]byte{'F', 0x80, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		hb, err := decodeHostBeat(b)
		if err != nil {
			return
		}
		again, err := decodeHostBeat(encodeHostBeat(hb))
		require.NoError(t, err)
		require.Equal(t, hb, again)
	})
}
