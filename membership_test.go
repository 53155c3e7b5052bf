package raft

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// newGrowNet starts voters bootstrapped servers s1..sN and extra fresh
// servers after them (empty stores, in no configuration), as a cluster
// that is about to grow.
func newGrowNet(t testing.TB, voters, extra int, seed uint64, tweak func(*coreConfig)) *coreNet {
	net := newCoreNet(t, voters, seed, tweak)
	for i := voters; i < voters+extra; i++ {
		id := ServerID(fmt.Sprintf("s%d", i+1))
		cfg := testCoreConfig(id, seed*1000+uint64(i))
		if tweak != nil {
			tweak(&cfg)
		}
		net.ids = append(net.ids, id)
		net.nodes[id] = &coreNode{c: newCore(cfg, hardState{}, 0, 0, confEntry{}, nil)}
	}
	return net
}

func votersConf(ids ...ServerID) Configuration { return bootstrapConfig(ids) }

// safetyChecker watches a coreNet for the two safety properties membership
// changes endanger: at most one leader per term (Election Safety), and no
// committed entry lost (State Machine Safety and Leader Completeness).
type safetyChecker struct {
	leaders   map[uint64]ServerID
	committed map[uint64]Log    // every entry some server applied
	seenAt    map[uint64]uint64 // the highest term any server had when it was first seen applied
	checked   map[ServerID]int  // how many of a server's applied entries were checked
}

func newSafetyChecker() *safetyChecker {
	return &safetyChecker{leaders: map[uint64]ServerID{}, committed: map[uint64]Log{}, seenAt: map[uint64]uint64{}, checked: map[ServerID]int{}}
}

func (s *safetyChecker) check(net *coreNet) error {
	var maxTerm uint64
	for _, id := range net.ids {
		maxTerm = max(maxTerm, net.nodes[id].c.term)
	}
	for _, id := range net.ids {
		nd := net.nodes[id]
		if nd.down {
			continue
		}
		if len(nd.applied) < s.checked[id] {
			s.checked[id] = 0 // restarted: it applies again from the start
		}
		for _, e := range nd.applied[s.checked[id]:] {
			c, ok := s.committed[e.Index]
			if !ok {
				s.committed[e.Index], s.seenAt[e.Index] = e, maxTerm
				continue
			}
			if c.Term != e.Term || c.Type != e.Type || !bytes.Equal(c.Data, e.Data) {
				return fmt.Errorf("%s applied entry %d of term %d, another server applied one of term %d there", id, e.Index, e.Term, c.Term)
			}
		}
		s.checked[id] = len(nd.applied)
	}
	for _, id := range net.ids {
		nd := net.nodes[id]
		if nd.down || nd.c.role != roleLeader {
			continue
		}
		if l, ok := s.leaders[nd.c.term]; ok {
			if l != id {
				return fmt.Errorf("two leaders in term %d: %s and %s", nd.c.term, l, id)
			}
			continue // checked when first seen: a leader never drops entries
		}
		s.leaders[nd.c.term] = id
		// Leader Completeness: a leader elected after an entry was
		// committed holds it. Entries committed later are seen at a term
		// at least this leader's, so checking once suffices.
		for idx, e := range s.committed {
			if nd.c.term <= s.seenAt[idx] {
				continue
			}
			if t, ok := nd.c.log.term(idx); !ok || t != e.Term {
				return fmt.Errorf("leader %s of term %d lacks committed entry %d (term %d)", id, nd.c.term, idx, e.Term)
			}
		}
	}
	return nil
}

// settleChecked is coreNet.settle with the checker run after every
// delivery (and no trace hashing, which the many schedules do not need).
func settleChecked(net *coreNet, chk *safetyChecker) error {
	for i := 0; ; i++ {
		if i > 1_000_000 {
			return errors.New("coreNet did not settle")
		}
		moved := false
		for _, id := range net.ids {
			if !net.nodes[id].down && net.process(id) {
				moved = true
			}
		}
		if len(net.queue) > 0 {
			m := net.queue[0]
			net.queue = net.queue[1:]
			to := net.nodes[m.To]
			if to != nil && !to.down && !net.nodes[m.From].down && (net.drop == nil || !net.drop(&m)) {
				to.c.step(&m)
				net.process(m.To)
			}
			moved = true
		}
		if err := chk.check(net); err != nil {
			return err
		}
		if !moved {
			return nil
		}
	}
}

func tickChecked(net *coreNet, chk *safetyChecker) error {
	for _, id := range net.ids {
		if !net.nodes[id].down {
			net.nodes[id].c.tick()
		}
	}
	return settleChecked(net, chk)
}

func hasEntryFrom(m *Message, index uint64) bool {
	return m.Type == MsgAppend && len(m.Entries) > 0 && m.Entries[len(m.Entries)-1].Index >= index
}

// growSchedule is one way scenario 9 can go: the leader s1 of a 3-server
// cluster starts growing it to 5 and crashes at a chosen point.
//
// Phase 'J': C_old,new (and whatever follows it) reaches exactly the servers
// in recv (s2..s5 by bit): recv empty is "crash before C_old,new is sent", a
// minority of either half is "after it reached a minority", a majority of
// both is "after it committed" (C_new then follows to the same servers).
//
// Phase 'N': C_old,new reaches every server and commits, then C_new reaches
// exactly recv: recv empty is "after C_old,new committed, before C_new was
// sent", 3 of 5 with s1 is "after C_new committed", fewer is "after C_new
// reached a minority".
type growSchedule struct {
	phase byte
	recv  uint8
	seed  uint64
}

func (g growSchedule) String() string {
	return fmt.Sprintf("phase %c recv %04b seed %d", g.phase, g.recv, g.seed)
}

// runGrow runs one schedule with every safety check on, then lets the
// cluster run (elections, proposals, s1 restarting, lossy links) and checks
// it converges with every committed command. It returns the first
// violation.
func runGrow(t testing.TB, g growSchedule, bugs plantedBugs) error {
	net := newGrowNet(t, 3, 2, g.seed, func(c *coreConfig) { c.bugs = bugs })
	chk := newSafetyChecker()
	s1 := ServerID("s1")
	net.elect(s1)
	if net.nodes[s1].c.role != roleLeader {
		return errors.New("s1 not elected")
	}
	net.propose(s1, "a")
	net.propose(s1, "b")
	in := func(id ServerID) bool {
		i := slices.Index([]ServerID{"s2", "s3", "s4", "s5"}, id)
		return i >= 0 && g.recv&(1<<i) != 0
	}
	joint := net.nodes[s1].c.log.lastIndex() + 1
	net.drop = func(m *Message) bool {
		if m.From != s1 {
			return false
		}
		if g.phase == 'J' {
			return hasEntryFrom(m, joint) && !in(m.To)
		}
		return hasEntryFrom(m, joint+1) && !in(m.To)
	}
	net.nodes[s1].c.appendConfStep(votersConf(serverIDs(5)...))
	if err := settleChecked(net, chk); err != nil {
		return err
	}
	if g.phase == 'N' && net.nodes[s1].c.log.committed < joint {
		return fmt.Errorf("C_old,new not committed before the crash")
	}
	net.nodes[s1].down = true
	net.queue = nil
	if g.seed%2 == 0 {
		// Even seeds: the new servers are slow to come up after the crash,
		// so the old servers decide the first election among themselves.
		net.nodes["s4"].down, net.nodes["s5"].down = true, true
	}

	// The rest of the cluster carries on: random elections, proposals,
	// 5% of messages lost; s1 comes back after a while.
	net.drop = func(*Message) bool { return net.rng.IntN(20) == 0 }
	proposed := 0
	for tick := 0; tick < 400; tick++ {
		if tick == 60 {
			net.nodes["s4"].down, net.nodes["s5"].down = false, false
		}
		if tick == 120 {
			net.restart(s1)
		}
		if tick == 300 {
			net.drop = nil
		}
		if tick%15 == 0 {
			if ls := net.leaders(); len(ls) > 0 {
				if _, err := net.nodes[ls[len(ls)-1]].c.propose([]Log{{Type: LogCommand, Data: []byte(fmt.Sprintf("c%d", proposed))}}); err == nil {
					proposed++
				}
			}
		}
		if err := tickChecked(net, chk); err != nil {
			return err
		}
	}
	// Converged: one configuration, not joint, committed everywhere; the
	// commands committed before the change are still there.
	ls := net.leaders()
	if len(ls) != 1 {
		return fmt.Errorf("no single leader at the end: %v", ls)
	}
	lc := net.nodes[ls[0]].c
	latest := lc.confs.latest()
	if latest.conf.Joint() || latest.index > lc.log.committed {
		return fmt.Errorf("configuration change did not finish: %+v", latest)
	}
	n := len(latest.conf.Servers)
	if n != 3 && n != 5 {
		return fmt.Errorf("ended with %d servers", n)
	}
	for _, id := range net.ids {
		cmds := net.commands(id)
		if !inConf(latest.conf, id) {
			continue
		}
		if len(cmds) < 2 || cmds[0] != "a" || cmds[1] != "b" {
			return fmt.Errorf("%s lost committed commands: %v", id, cmds)
		}
		if net.nodes[id].c.log.committed != lc.log.committed {
			return fmt.Errorf("%s commit %d, leader %d", id, net.nodes[id].c.log.committed, lc.log.committed)
		}
	}
	return nil
}

func inConf(c Configuration, id ServerID) bool {
	_, ok := c.address(id)
	return ok
}

func growSchedules(seeds int) []growSchedule {
	var gs []growSchedule
	for _, phase := range []byte{'J', 'N'} {
		for recv := uint8(0); recv < 16; recv++ {
			for seed := 1; seed <= seeds; seed++ {
				gs = append(gs, growSchedule{phase, recv, uint64(seed)})
			}
		}
	}
	return gs
}

// TestScenario9GrowWhileLeaderFails is DESIGN.md scenario 9: growing 3 → 5
// while the leader fails before C_old,new is sent, after it reached a
// minority, after it committed, after C_new reached a minority and after C_new
// committed (every subset of receivers, in both phases) never yields two
// leaders in one term and loses no committed entry.
func TestScenario9GrowWhileLeaderFails(t *testing.T) {
	seeds := 4
	if testing.Short() {
		seeds = 1
	}
	for _, g := range growSchedules(seeds) {
		if err := runGrow(t, g, plantedBugs{}); err != nil {
			t.Fatalf("%v: %v", g, err)
		}
	}
}

// TestScenario9CatchesSingleMajorityWhileJoint plants the bug of counting
// only C_new while joint: some schedule of scenario 9 must then break
// safety, which shows the test above would catch it. (Only phase J can show
// it: in phase N, C_old,new was committed correctly before the crash.)
func TestScenario9CatchesSingleMajorityWhileJoint(t *testing.T) {
	for _, g := range growSchedules(12) {
		if g.phase != 'J' {
			continue
		}
		if err := runGrow(t, g, plantedBugs{SingleMajorityWhileJoint: true}); err != nil {
			t.Logf("caught by %v: %v", g, err)
			return
		}
	}
	t.Fatal("no schedule caught the planted bug")
}

func latestConf(net *coreNet, id ServerID) Configuration { return net.nodes[id].c.confs.latest().conf }

func suffrageOf(c Configuration, id ServerID) (ServerSuffrage, bool) {
	for _, s := range c.Servers {
		if s.ID == id {
			return s.Suffrage, true
		}
	}
	return 0, false
}

// A new voter joins as a nonvoter and is promoted only once it has been
// caught up for promotionStableTicks ticks; the change is done when C_new
// commits.
func TestCorePromotionAfterCatchUp(t *testing.T) {
	net := newGrowNet(t, 3, 1, 1, func(c *coreConfig) { c.promotionStableTicks, c.promotionMaxLag = 5, 1000 })
	net.elect("s1")
	l := net.nodes["s1"].c
	net.nodes["s4"].down = true
	seq, err := l.changeConfig(votersConf(serverIDs(4)...))
	require.NoError(t, err)
	net.settle()
	sf, ok := suffrageOf(latestConf(net, "s1"), "s4")
	require.True(t, ok)
	require.Equal(t, Nonvoter, sf, "a new voter joins as a nonvoter")
	require.False(t, latestConf(net, "s1").Joint(), "adding a nonvoter changes no voter set: no joint step")
	for range 50 {
		net.tickAll()
	}
	sf, _ = suffrageOf(latestConf(net, "s1"), "s4")
	require.Equal(t, Nonvoter, sf, "an unreachable server is never promoted")
	done, _ := l.changeStatus(seq)
	require.False(t, done)
	_, err = l.changeConfig(votersConf("s1", "s2"))
	require.ErrorIs(t, err, ErrConfigChangeInProgress, "the change waiting for a promotion is still under way")

	net.nodes["s4"].down = false
	for i := 0; ; i++ {
		require.Less(t, i, 100, "not promoted")
		net.tickAll()
		if sf, _ := suffrageOf(latestConf(net, "s1"), "s4"); sf == Voter {
			require.GreaterOrEqual(t, i, 4, "promoted before it was caught up for 5 ticks")
			break
		}
	}
	net.settle()
	done, err = l.changeStatus(seq)
	require.True(t, done)
	require.NoError(t, err)
	for _, id := range serverIDs(4) {
		c := latestConf(net, id)
		require.False(t, c.Joint())
		require.True(t, sameServers(c.Servers, votersConf(serverIDs(4)...).Servers), "%s: %+v", id, c)
		require.Equal(t, []ServerID{"s1", "s2", "s3", "s4"}, net.nodes[id].c.incoming)
	}
}

// One change at a time: a second request while one is under way, and any
// request before the leader has committed an entry of its term, is refused.
func TestCoreOneChangeAtATime(t *testing.T) {
	net := newGrowNet(t, 3, 2, 2, nil)
	l := net.nodes["s1"].c
	l.campaign(campaignElection)
	for l.role != roleLeader || !l.committedInTerm() {
		if l.role == roleLeader {
			_, err := l.changeConfig(votersConf("s1", "s2"))
			require.ErrorIs(t, err, ErrConfigChangeInProgress, "before an entry of its term commits")
		}
		require.True(t, net.deliverOne() || net.process("s1") || net.process("s2") || net.process("s3"))
	}
	net.drop = func(m *Message) bool { return m.To == "s2" || m.To == "s3" }
	_, err := l.changeConfig(votersConf("s1", "s2"))
	require.NoError(t, err)
	net.settle()
	require.True(t, latestConf(net, "s1").Joint())
	_, err = l.changeConfig(votersConf("s1", "s3"))
	require.ErrorIs(t, err, ErrConfigChangeInProgress)
	_, err = l.changeConfig(Configuration{Servers: []Server{{Suffrage: Nonvoter, ID: "s1", Address: "s1"}}})
	require.ErrorIs(t, err, ErrConfigChangeInProgress)
	net.drop = nil
	for range 5 {
		net.tickAll()
	}
	require.False(t, latestConf(net, "s1").Joint())
	_, err = l.changeConfig(Configuration{Servers: []Server{{Suffrage: Nonvoter, ID: "s1", Address: "s1"}}})
	require.ErrorIs(t, err, ErrInvalidConfiguration)
	_, err = l.changeConfig(votersConf("s1", "s2", "s3"))
	require.NoError(t, err, "once the change is done, the next may start")
}

// A leader that is not in C_new keeps leading (and replicating) while
// joint, does not count itself toward C_new's majority, and steps down
// once C_new commits; the remaining voters elect a leader at once and the
// removed server never campaigns.
func TestCoreRemovedLeaderStepsDown(t *testing.T) {
	net := newCoreNet(t, 3, 3, nil)
	net.elect("s1")
	l := net.nodes["s1"].c
	net.propose("s1", "x")
	// s3 never gets C_new: C_new {s2, s3} needs s3, s1 does not count.
	cnew := l.log.lastIndex() + 2
	net.drop = func(m *Message) bool { return m.To == "s3" && hasEntryFrom(m, cnew) }
	seq, err := l.changeConfig(votersConf("s2", "s3"))
	require.NoError(t, err)
	net.settle()
	for range 3 {
		net.tickAll()
	}
	require.Equal(t, roleLeader, l.role, "leads until C_new commits")
	latest := l.confs.latest()
	require.False(t, latest.conf.Joint(), "C_new appended after C_old,new committed")
	require.Equal(t, cnew, latest.index)
	require.Less(t, l.log.committed, latest.index, "C_new committed without s3: the leader counted itself")
	done, _ := l.changeStatus(seq)
	require.False(t, done)

	net.drop = nil
	term := l.term
	net.tickAll()
	done, err = l.changeStatus(seq)
	require.True(t, done)
	require.NoError(t, err)
	require.NotEqual(t, roleLeader, l.role, "steps down once C_new commits")
	for range 3 {
		net.tickAll()
	}
	ls := net.leaders()
	require.Len(t, ls, 1)
	require.NotEqual(t, ServerID("s1"), ls[0])
	require.Equal(t, term+1, net.nodes[ls[0]].c.term, "handed over at once (TimeoutNow), one election")
	for range 200 {
		net.tickAll()
	}
	require.Equal(t, term+1, net.nodes[ls[0]].c.term, "no disruption")
	require.NotEqual(t, roleCandidate, l.role)
	require.NotEqual(t, rolePreCandidate, l.role, "a removed server never campaigns")
}

// A removed server that never learned it was removed keeps running: it
// campaigns (it still thinks it votes) but never bumps the remaining
// cluster's term. With PreVote its pre-votes are refused; without PreVote,
// leader stickiness (CheckQuorum) ignores its votes.
func TestCoreRemovedServerDoesNotDisrupt(t *testing.T) {
	for _, preVote := range []bool{true, false} {
		t.Run(fmt.Sprintf("prevote=%v", preVote), func(t *testing.T) {
			net := newCoreNet(t, 3, 4, func(c *coreConfig) { c.preVote = preVote })
			net.elect("s1")
			l := net.nodes["s1"].c
			net.drop = func(m *Message) bool { return m.To == "s3" || m.From == "s3" }
			seq, err := l.changeConfig(votersConf("s1", "s2"))
			require.NoError(t, err)
			for range 3 {
				net.tickAll()
			}
			done, err := l.changeStatus(seq)
			require.True(t, done)
			require.NoError(t, err)
			require.True(t, net.nodes["s3"].c.isVoter("s3"), "s3 did not learn it was removed")
			campaigned := false
			net.drop = func(m *Message) bool {
				campaigned = campaigned || m.From == "s3" && (m.Type == MsgVote || m.Type == MsgPreVote)
				return false
			}
			term := l.term
			for range 300 {
				net.tickAll()
			}
			require.True(t, campaigned, "s3 should have tried to campaign")
			require.Equal(t, roleLeader, l.role)
			require.Equal(t, term, l.term, "the leader's term moved")
			require.Equal(t, term, net.nodes["s2"].c.term, "s2's term moved")
		})
	}
}

// A configuration entry that is truncated away rolls the configuration
// back.
func TestCoreConfigRollback(t *testing.T) {
	net := newGrowNet(t, 3, 1, 5, nil)
	net.elect("s1")
	l := net.nodes["s1"].c
	// s1 appends C_old,new and crashes before sending it.
	l.appendConfStep(votersConf(serverIDs(4)...))
	net.process("s1")
	net.queue = nil
	require.True(t, latestConf(net, "s1").Joint())
	require.Equal(t, []ServerID{"s1", "s2", "s3"}, l.outgoing)
	net.nodes["s1"].down = true
	net.nodes["s2"].c.campaign(campaignTransfer)
	net.settle()
	require.Equal(t, []ServerID{"s2"}, net.leaders())
	net.propose("s2", "y")
	net.restart("s1")
	require.True(t, latestConf(net, "s1").Joint(), "restarted from its log")
	for range 3 {
		net.tickAll()
	}
	c := net.nodes["s1"].c
	require.False(t, c.confs.latest().conf.Joint(), "C_old,new truncated: configuration rolled back")
	require.Equal(t, []ServerID{"s1", "s2", "s3"}, c.incoming)
	require.Empty(t, c.outgoing)
	require.Equal(t, []string{"y"}, net.commands("s1"))
}

// A server that an uncommitted C_new removes may campaign — it can be the
// only one holding C_new — even after a restart, when its commit index no
// longer shows that the configuration before C_new was committed (the
// simulator's seed 487, see TestSimulatorRegressions).
func TestRestartedRemovedServerCampaigns(t *testing.T) {
	both := Configuration{Servers: []Server{{ID: "s1", Address: "s1"}, {ID: "s2", Address: "s2"}}}
	onlyS2 := Configuration{Servers: []Server{{ID: "s2", Address: "s2"}}}
	ents := []Log{
		{Index: 1, Term: 1, Type: LogConfiguration, Data: encodeConfiguration(both)},
		{Index: 2, Term: 1, Type: LogConfiguration, Data: encodeConfiguration(onlyS2)},
	}
	restarted := func(id ServerID) *core {
		return newCore(testCoreConfig(id, 1), hardState{Term: 1}, 0, 0, confEntry{}, slices.Clone(ents))
	}
	c := restarted("s1")
	require.Zero(t, c.log.committed)
	require.True(t, c.canCampaign(), "s1 votes in the configuration before the uncommitted C_new")
	c.log.committed = 2
	require.False(t, c.canCampaign(), "once C_new is known committed, s1 never campaigns")
	require.False(t, restarted("s3").canCampaign(), "a server in no configuration never campaigns")
}
