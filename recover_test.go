package raft_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
	"github.com/stretchr/testify/require"
)

// TestRecoverAfterLosingThreeOfFive is the quorum-loss runbook end to end:
// a 5-server cluster loses s3, s4 and s5 for good; RecoverCluster on the
// two survivors with the configuration {s1, s2} lets them elect a leader
// and take writes again.
//
// What it shows can be lost, and what cannot:
//   - Writes acknowledged while every server was reachable reached the
//     survivors (the test waits until they applied them): all kept.
//   - Writes acknowledged by the majority {s3, s4, s5} while the survivors
//     were cut off from it never reached a survivor: all lost. No
//     recovery can bring back what no survivor held.
//   - Whatever the longer survivor's log held, committed or not, is applied
//     after recovery: recovery makes the tail it holds final.
func TestRecoverAfterLosingThreeOfFive(t *testing.T) {
	c := newCluster(t, 5, 1, func(cfg *raft.Config) { cfg.SnapshotThreshold = 1 << 40 })
	s := c.Servers()
	s1, s2, s3, s4, s5 := s[0], s[1], s[2], s[3], s[4]

	var kept []string
	for i := range 40 {
		cmd := fmt.Sprintf("all-%d", i)
		c.apply(cmd)
		kept = append(kept, cmd)
	}
	_, index := c.Apply([]byte("all-last"))
	kept = append(kept, "all-last")
	c.WaitApplied(index)

	// The survivors are cut off; the doomed majority elects its own leader
	// and acknowledges writes no survivor sees.
	c.Partition([]*rafttest.Server{s1, s2}, []*rafttest.Server{s3, s4, s5})
	lead := c.WaitLeader(s3, s4, s5)
	var lost []string
	for i := range 20 {
		cmd := fmt.Sprintf("majority-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := lead.Raft().Apply(ctx, []byte(cmd)).Error()
		cancel()
		require.NoError(t, err, "the majority side commits on its own")
		lost = append(lost, cmd)
	}
	for _, x := range []*rafttest.Server{s3, s4, s5, s1, s2} {
		c.Crash(x)
	}
	c.Heal()
	held := map[string]bool{}
	for _, x := range []*rafttest.Server{s1, s2} {
		for _, cmd := range logCommands(t, x.LogStore()) {
			held[cmd] = true
		}
	}
	for _, cmd := range lost {
		require.False(t, held[cmd], "%s reached a survivor; the scenario is not the one documented", cmd)
	}

	// Before recovery the survivors are two of five: no leader.
	c.Restart(s1)
	c.Restart(s2)
	require.Never(t, func() bool { return s1.Raft().State() == raft.Leader || s2.Raft().State() == raft.Leader },
		time.Second, 10*time.Millisecond, "two of five voters must not elect a leader (10 election timeouts)")
	c.Crash(s1)
	c.Crash(s2)

	c.Recover(s1, s1, s2)
	c.Recover(s2, s1, s2)
	c.Restart(s1)
	c.Restart(s2)
	c.WaitLeader(s1, s2)
	c.apply("after-recovery")
	got := c.waitConverged()

	for _, cmd := range kept {
		require.Equal(t, 1, count(got, cmd), "acknowledged write %s, held by the survivors, must be kept once", cmd)
	}
	for cmd := range held {
		require.Equal(t, 1, count(got, cmd), "%s was in a survivor's log: recovery applies it", cmd)
	}
	for _, cmd := range lost {
		require.Zero(t, count(got, cmd), "%s never reached a survivor", cmd)
	}
	require.Equal(t, 1, count(got, "after-recovery"))
	t.Logf("kept %d acknowledged writes, lost the %d the majority acknowledged without the survivors", len(kept), len(lost))

	conf, err := c.CurrentLeader().GetConfiguration(context.Background())
	require.NoError(t, err)
	require.ElementsMatch(t, []raft.ServerID{"s1", "s2"}, voterIDsOf(conf))
}

// logCommands returns the commands in a log store, in order.
func logCommands(t *testing.T, logs raft.LogStore) []string {
	t.Helper()
	first, err := logs.FirstIndex()
	require.NoError(t, err)
	last, err := logs.LastIndex()
	require.NoError(t, err)
	var cmds []string
	for i := first; first > 0 && i <= last; i++ {
		var e raft.Log
		require.NoError(t, logs.GetLog(i, &e))
		if e.Type == raft.LogCommand {
			cmds = append(cmds, string(e.Data))
		}
	}
	return cmds
}

func voterIDsOf(c raft.Configuration) []raft.ServerID {
	var ids []raft.ServerID
	for _, s := range c.Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// TestRecoverClusterKeepsTheWholeLog checks RecoverCluster on one server's
// stores: the snapshot it writes holds every entry of the log, committed or
// not, at the log's last index and term, with the new configuration, and
// the log is gone.
func TestRecoverClusterKeepsTheWholeLog(t *testing.T) {
	store, snaps := inmem.NewStore(), inmem.NewSnapshotStore()
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	old := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}, {ID: "c", Address: "c"}}}
	require.NoError(t, raft.BootstrapCluster(conf, store, store, snaps, old))
	var ents []*raft.Log
	for i := uint64(2); i <= 10; i++ {
		ents = append(ents, &raft.Log{Index: i, Term: 1 + i/5, Type: raft.LogCommand, Data: fmt.Appendf(nil, "cmd-%d", i)})
	}
	require.NoError(t, store.StoreLogs(ents))
	before, err := raft.InspectStores(store, store, snaps)
	require.NoError(t, err)
	require.Equal(t, raft.StoreState{Term: 1, LastIndex: 10, LastTerm: 3, Configuration: old}, before)

	recovered := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}
	fsm := &testFSM{}
	require.NoError(t, raft.RecoverCluster(conf, fsm, store, store, snaps, recovered))
	want := []string{"cmd-2", "cmd-3", "cmd-4", "cmd-5", "cmd-6", "cmd-7", "cmd-8", "cmd-9", "cmd-10"}
	require.Equal(t, want, fsm.commands(), "every entry of the log, committed or not, is applied")
	metas, err := snaps.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	require.Equal(t, uint64(10), metas[0].Index)
	require.Equal(t, uint64(3), metas[0].Term)
	require.Equal(t, recovered, metas[0].Configuration)
	last, err := store.LastIndex()
	require.NoError(t, err)
	require.Zero(t, last, "the log is in the snapshot now")
	after, err := raft.InspectStores(store, store, snaps)
	require.NoError(t, err)
	require.Equal(t, raft.StoreState{Term: 1, LastIndex: 10, LastTerm: 3, Configuration: recovered, SnapshotIndex: 10}, after)

	// A single recovered voter elects itself and serves writes on top.
	network := transinmem.NewNetwork(1)
	t.Cleanup(func() { network.Close() })
	trans, err := network.NewTransport("a")
	require.NoError(t, err)
	fsm2 := &testFSM{}
	r, err := raft.NewRaft(conf, fsm2, store, store, snaps, trans)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Shutdown()) })
	require.Eventually(t, func() bool { return r.State() == raft.Leader }, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Apply(ctx, []byte("next")).Error())
	require.Equal(t, append(slices.Clone(want), "next"), fsm2.commands())
}

func TestRecoverClusterRefuses(t *testing.T) {
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	one := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}
	store, snaps := inmem.NewStore(), inmem.NewSnapshotStore()
	err := raft.RecoverCluster(conf, &testFSM{}, store, store, snaps, one)
	require.ErrorIs(t, err, raft.ErrNothingToRecover, "empty stores: bootstrap instead")

	require.NoError(t, raft.BootstrapCluster(conf, store, store, snaps, one))
	err = raft.RecoverCluster(conf, &testFSM{}, store, store, snaps, raft.Configuration{})
	require.ErrorIs(t, err, raft.ErrInvalidConfiguration)
	joint := raft.Configuration{Servers: one.Servers, Old: []raft.Server{{ID: "b", Address: "b"}}}
	err = raft.RecoverCluster(conf, &testFSM{}, store, store, snaps, joint)
	require.ErrorIs(t, err, raft.ErrInvalidConfiguration)
	require.NoError(t, store.StoreLogs([]*raft.Log{{Index: 2, Term: 1, Type: raft.LogType(200)}}))
	err = raft.RecoverCluster(conf, &testFSM{}, store, store, snaps, one)
	require.ErrorIs(t, err, raft.ErrUnsupportedVersion, "an entry of a newer build is never applied or dropped")
	metas, err := snaps.List()
	require.NoError(t, err)
	require.Empty(t, metas, "a refused recovery writes nothing")
}
