package raft

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLogCacheMatchesUnboundedLog drives a log that evicts after a few
// entries and one that keeps everything through the same random appends
// (with conflicting suffixes), commits, applies and compactions: every
// question the protocol asks of a log must get the same answer from both.
func TestLogCacheMatchesUnboundedLog(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		limit := uint64(100 + rng.IntN(600)) // one to ten entries
		bounded, full := newRaftLog(0, 0, nil), newRaftLog(0, 0, nil)
		both := func(f func(l *raftLog)) { f(bounded); f(full) }
		term := uint64(1)
		evicted := false
		for step := 0; step < 300; step++ {
			switch op := rng.IntN(10); {
			case op < 4: // append, sometimes replacing an uncommitted suffix
				first := full.lastIndex() + 1
				if rng.IntN(4) == 0 && full.lastIndex() > full.committed {
					first = full.committed + 1 + uint64(rng.IntN(int(full.lastIndex()-full.committed)))
				}
				if rng.IntN(3) == 0 {
					term++
				}
				ents := make([]Log, 1+rng.IntN(4))
				for i := range ents {
					ents[i] = Log{Index: first + uint64(i), Term: term, Data: make([]byte, rng.IntN(40))}
				}
				both(func(l *raftLog) { l.append(ents...) })
			case op < 6: // persist and commit some
				both(func(l *raftLog) {
					l.unpersisted()
					l.persisted(l.lastIndex(), l.lastTerm())
				})
				if full.lastIndex() > full.committed {
					c := full.committed + 1 + uint64(rng.IntN(int(full.lastIndex()-full.committed)))
					both(func(l *raftLog) { l.committed = c })
				}
			case op < 9: // apply what is committed, evicting
				both(func(l *raftLog) {
					if ents := l.toApply(l.committed); len(ents) > 0 {
						l.setApplied(ents[len(ents)-1].Index)
					}
				})
				bounded.evict(limit)
			default: // compact behind the applied index
				if full.applied > full.snapIndex {
					to := full.snapIndex + 1 + uint64(rng.IntN(int(full.applied-full.snapIndex)))
					tm, _ := full.term(to)
					both(func(l *raftLog) { l.forget(to, tm) })
				}
			}
			evicted = evicted || bounded.base > bounded.snapIndex
			requireSameLog(t, seed, step, bounded, full, rng)
			require.LessOrEqual(t, bounded.memBytes-bounded.pendingBytes(), max(limit, entryOverhead+40), "seed %d step %d: applied entries over the cache bound", seed, step)
		}
		require.True(t, evicted, "seed %d: nothing was evicted", seed)
	}
}

func requireSameLog(t *testing.T, seed uint64, step int, a, b *raftLog, rng *rand.Rand) {
	t.Helper()
	require.Equal(t, b.lastIndex(), a.lastIndex(), "seed %d step %d", seed, step)
	require.Equal(t, b.lastTerm(), a.lastTerm(), "seed %d step %d", seed, step)
	for i := b.snapIndex; i <= b.lastIndex()+1; i++ {
		ta, oka := a.term(i)
		tb, okb := b.term(i)
		require.Equal(t, [2]any{tb, okb}, [2]any{ta, oka}, "seed %d step %d: term of %d", seed, step, i)
		if a.inMemory(i) {
			require.Equal(t, *b.entry(i), *a.entry(i), "seed %d step %d: entry %d", seed, step, i)
		}
	}
	for k := 0; k < 5; k++ {
		idx := b.snapIndex + uint64(rng.IntN(int(b.lastIndex()-b.snapIndex)+3))
		tm := uint64(rng.IntN(int(b.lastTerm()) + 2))
		ia, ta := a.findConflictByTerm(idx, tm)
		ib, tb := b.findConflictByTerm(idx, tm)
		require.Equal(t, [2]uint64{ib, tb}, [2]uint64{ia, ta}, "seed %d step %d: findConflictByTerm(%d, %d)", seed, step, idx, tm)
	}
	require.Equal(t, b.pendingBytes(), a.pendingBytes(), "seed %d step %d: pending bytes", seed, step)
}

// A follower that was down while the leader evicted the entries it lacks
// gets them read back from the leader's LogStore — not a snapshot, none
// was taken — and the leader's memory stays within the cache bound.
func TestLaggingFollowerCatchesUpFromLogStore(t *testing.T) {
	const limit = 2000
	net := newCoreNet(t, 3, 1, func(c *coreConfig) { c.logCacheBytes = limit; c.maxAppendEntries = 8 })
	net.elect("s1")
	require.Equal(t, []ServerID{"s1"}, net.leaders())
	net.nodes["s3"].down = true
	for i := 0; i < 200; i++ {
		net.propose("s1", "command-"+string(rune('a'+i%26)))
	}
	leader := net.nodes["s1"].c
	evicted := leader.log.base
	require.Greater(t, evicted, uint64(100), "the leader evicted what s3 lacks")
	require.LessOrEqual(t, leader.log.memBytes, uint64(limit))
	net.nodes["s3"].down = false
	for i := 0; i < 20 && len(net.commands("s3")) < 200; i++ {
		net.tickAll()
	}
	require.Equal(t, net.commands("s1"), net.commands("s3"))
	require.Equal(t, net.nodes["s1"].durable, net.nodes["s3"].durable)
	require.Zero(t, net.installs, "no snapshot was needed")
	require.GreaterOrEqual(t, net.loads, int(evicted)/8, "s3's evicted entries came from the LogStore in batches of 8")
	require.LessOrEqual(t, leader.log.memBytes, uint64(limit))
}

// Entries read back from the LogStore that the log does not hold (a store
// that returns wrong data) are refused, not sent.
func TestLoadedEntriesMustMatchTheLog(t *testing.T) {
	net := newCoreNet(t, 3, 1, func(c *coreConfig) { c.logCacheBytes = 500 })
	net.elect("s1")
	net.nodes["s3"].down = true
	for i := 0; i < 30; i++ {
		net.propose("s1", "x")
	}
	leader := net.nodes["s1"].c
	pr := leader.prs["s3"]
	pr.becomeProbe()
	pr.next = 2
	leader.sendAppend("s3")
	rd := leader.ready()
	require.Len(t, rd.loads, 1)
	ld := rd.loads[0]
	bad := []Log{{Index: ld.Lo, Term: 99, Type: LogCommand}}
	leader.loaded(ld, bad)
	require.Len(t, leader.violations, 1)
	leader.violations = nil
	for _, m := range leader.ready().msgs {
		require.NotEqual(t, MsgAppend, m.Type, "an append of entries the log does not hold")
	}
}

// A leader refuses proposals once MaxPendingBytes of them wait to be
// applied, and takes them again once they are; forwarded proposals get
// the same answer.
func TestProposalQueueFull(t *testing.T) {
	net := newCoreNet(t, 3, 1, func(c *coreConfig) { c.maxPendingBytes = 1000 })
	net.elect("s1")
	// Appends are lost: nothing more commits, but s2 still knows the leader.
	net.drop = func(m *Message) bool { return m.Type == MsgAppend }
	leader := net.nodes["s1"].c
	var err error
	n := 0
	for ; n < 100; n++ {
		if _, err = leader.propose([]Log{{Type: LogCommand, Data: make([]byte, 36)}}); err != nil {
			break
		}
		net.settle()
	}
	require.ErrorIs(t, err, ErrProposalQueueFull)
	require.Equal(t, 1000/(36+entryOverhead), n, "admitted up to the bound")
	require.LessOrEqual(t, leader.log.pendingBytes(), uint64(1000))

	follower := net.nodes["s2"]
	require.NoError(t, follower.c.forwardProposals(1, []Log{{Type: LogCommand, Data: []byte("f")}}))
	net.settle()
	require.Len(t, follower.proposed, 1)
	require.ErrorIs(t, follower.proposed[0].err, ErrProposalQueueFull, "a forwarded proposal is refused alike")

	// Once applied, proposals are admitted again.
	net.drop = nil
	for i := 0; i < 5; i++ {
		net.tickAll()
	}
	require.Zero(t, leader.log.pendingBytes())
	_, err = leader.propose([]Log{{Type: LogCommand, Data: []byte("again")}})
	require.NoError(t, err)
}

// A follower whose FSM lags takes no new entries once MaxPendingBytes of
// them wait to be applied, so it never buffers without bound; it catches
// up once its FSM does.
func TestSlowFollowerFSMHoldsBackEntries(t *testing.T) {
	const limit = 1000
	net := newCoreNet(t, 3, 1, func(c *coreConfig) { c.maxPendingBytes = limit; c.maxAppendEntries = 1 })
	net.elect("s1")
	slow := net.nodes["s3"]
	slow.holdApplies = true
	for i := 0; i < 50; i++ {
		net.propose("s1", string(make([]byte, 36)))
		// Within the bound, plus the few uncommitted entries it took
		// while under it (they join the backlog when they commit).
		require.LessOrEqual(t, slow.c.log.pendingBytes(), uint64(limit+3*(36+entryOverhead)), "after proposal %d", i)
	}
	require.Less(t, slow.c.log.lastIndex(), net.nodes["s1"].c.log.lastIndex(), "s3 held entries back")
	slow.holdApplies = false
	slow.c.appliedTo(slow.c.log.applying)
	for i := 0; i < 60 && len(net.commands("s3")) < 50; i++ {
		net.tickAll()
	}
	require.Len(t, net.commands("s3"), 50)
	require.Equal(t, net.nodes["s1"].durable, slow.durable)
}

// A read of evicted entries that fails stops the server, as a failed write
// does — unless the entry is missing because a compaction removed it
// meanwhile (at or below the snapshot), when the follower gets a snapshot
// instead.
func TestFailedLoadStopsTheServer(t *testing.T) {
	net := newCoreNet(t, 1, 1, nil)
	c := net.nodes["s1"].c
	c.log.forget(1, 1) // a snapshot at 1
	r := &Raft{core: c}
	take := func(lo uint64, err error) error {
		r.loadResults = []loadResult{{load: logLoad{To: "s2", Lo: lo, Hi: lo}, err: err}}
		return r.takeLoads()
	}
	require.NoError(t, take(1, ErrLogNotFound), "compacted meanwhile")
	require.ErrorIs(t, take(2, ErrLogNotFound), ErrLogNotFound, "missing above the snapshot")
	require.Error(t, take(2, errors.New("disk on fire")))
}
