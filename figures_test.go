package raft

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// logWithTerms builds a log whose entry i+1 has terms[i]; entry 1 carries
// the configuration.
func logWithTerms(ids []ServerID, terms ...uint64) []Log {
	ents := make([]Log, len(terms))
	for i, t := range terms {
		ents[i] = Log{Index: uint64(i + 1), Term: t, Type: LogCommand, Data: []byte{byte(i), byte(t)}}
	}
	ents[0].Type, ents[0].Data = LogConfiguration, encodeConfiguration(bootstrapConfig(ids))
	return ents
}

func termsOf(ents []Log) []uint64 {
	out := make([]uint64, len(ents))
	for i, e := range ents {
		out[i] = e.Term
	}
	return out
}

// TestFigure7 repairs each follower log of the Raft paper's Figure 7 to the
// leader's log (§5.3), and checks that the conflict hint makes this cost at
// most one rejection per divergent term rather than one per entry.
func TestFigure7(t *testing.T) {
	leaderTerms := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	cases := map[string]struct {
		terms         []uint64
		maxRejections int
	}{
		"a missing one":              {[]uint64{1, 1, 1, 4, 4, 5, 5, 6, 6}, 1},
		"b missing many":             {[]uint64{1, 1, 1, 4}, 1},
		"c one extra":                {[]uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 1},
		"d extra of a later term":    {[]uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 1},
		"e divergent suffix":         {[]uint64{1, 1, 1, 4, 4, 4, 4}, 2},
		"f divergent, several terms": {[]uint64{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ids := serverIDs(3)
			net := newCoreNet(t, 3, 7, nil)
			logs := map[ServerID][]Log{
				ids[0]: logWithTerms(ids, leaderTerms...),
				ids[1]: logWithTerms(ids, tc.terms...),
				ids[2]: logWithTerms(ids, leaderTerms...),
			}
			for _, id := range ids {
				nd := net.nodes[id]
				nd.hs = hardState{Term: 7}
				nd.durable = logs[id]
				net.restart(id)
			}
			rejections := 0
			net.drop = func(m *Message) bool {
				if m.Type == MsgAppendResp && m.From == ids[1] && m.Reject {
					rejections++
				}
				return false
			}
			// The leader of term 8 (elected with the votes of servers
			// not shown in the figure).
			leader := net.nodes[ids[0]].c
			leader.becomeCandidate()
			leader.becomeLeader()
			net.settle()

			want := append(slices.Clone(leaderTerms), 8) // and the new leader's no-op
			require.Equal(t, want, termsOf(net.nodes[ids[0]].durable))
			require.Equal(t, want, termsOf(net.nodes[ids[1]].durable), "follower log repaired")
			require.Equal(t, net.nodes[ids[0]].durable, net.nodes[ids[1]].durable)
			require.LessOrEqual(t, rejections, tc.maxRejections)
			require.Equal(t, uint64(11), leader.log.committed)
		})
	}
}

// TestFigure8 plays the Raft paper's Figure 8: an entry of an earlier term
// stored on a majority is not committed by counting replicas (§5.4.2); only
// an entry of the leader's own term commits it, indirectly.
func TestFigure8(t *testing.T) {
	ids := serverIDs(5)
	s1, s2, s3, s5 := ids[0], ids[1], ids[2], ids[4]
	build := func() *coreNet {
		net := newCoreNet(t, 5, 8, func(c *coreConfig) {
			c.preVote, c.checkQuorum = false, false
			c.maxAppendEntries = 1
		})
		// (a) S1 leads term 2; its entry at index 2 reaches only S2.
		net.drop = func(m *Message) bool { return m.Type == MsgAppend && m.From == s1 && m.To != s2 }
		net.elect(s1)
		require.Equal(t, roleLeader, net.nodes[s1].c.role)
		require.Equal(t, []uint64{1, 2}, termsOf(net.nodes[s2].durable))
		// (b) S1 crashes; S5 leads term 3 with the votes of S3, S4 and
		// itself, and takes a different entry at index 2, alone.
		net.nodes[s1].down = true
		net.drop = func(m *Message) bool { return m.Type == MsgAppend && m.From == s5 }
		net.elect(s5)
		require.Equal(t, roleLeader, net.nodes[s5].c.role)
		require.Equal(t, uint64(3), net.nodes[s5].c.term)
		// (c) S5 crashes; S1 restarts and leads term 4. It replicates its
		// index 2 (term 2) to S3 — now on S1, S2, S3, a majority — but its
		// own-term entry (index 3) reaches nobody yet: the network strips
		// it from every append.
		net.nodes[s5].down = true
		net.restart(s1)
		net.drop = func(m *Message) bool {
			if m.Type == MsgAppend && m.From == s1 {
				m.Entries = slices.DeleteFunc(slices.Clone(m.Entries), func(e Log) bool { return e.Index >= 3 })
			}
			return false
		}
		for net.nodes[s1].c.role != roleLeader {
			net.elect(s1)
		}
		require.Equal(t, uint64(4), net.nodes[s1].c.term)
		for _, id := range []ServerID{s1, s2, s3} {
			require.Equal(t, []uint64{1, 2}, termsOf(net.nodes[id].durable)[:2], "index 2 on %s", id)
		}
		return net
	}

	t.Run("old-term entry on a majority is not committed", func(t *testing.T) {
		net := build()
		require.Less(t, net.nodes[s1].c.log.committed, uint64(2),
			"S1 must not count an entry of term 2 committed in term 4")
		// (d) Indeed S1 may crash and S5 win term 5 with the votes of S2,
		// S3 and S4, overwriting index 2 everywhere.
		net.nodes[s1].down = true
		net.restart(s5)
		net.drop = nil
		for net.nodes[s5].c.role != roleLeader {
			net.elect(s5)
		}
		for _, id := range []ServerID{s2, s3, s5} {
			require.Equal(t, uint64(3), termsOf(net.nodes[id].durable)[1], "index 2 on %s overwritten by term 3", id)
		}
	})

	t.Run("current-term entry commits the old one indirectly", func(t *testing.T) {
		net := build()
		// (e) S1 replicates its term-4 entry to a majority: index 3
		// commits, and index 2 with it.
		net.drop = nil
		for i := 0; i < 5; i++ {
			net.tickAll() // the stalled stream to each follower is resent
		}
		require.Equal(t, uint64(3), net.nodes[s1].c.log.committed)
		require.Equal(t, []uint64{1, 2, 4}, termsOf(net.nodes[s1].applied))
		// S5 can no longer win: a majority holds a term-4 entry.
		net.nodes[s1].down = true
		net.restart(s5)
		for i := 0; i < 5; i++ {
			net.elect(s5)
			require.NotEqual(t, roleLeader, net.nodes[s5].c.role)
		}
	})
}
