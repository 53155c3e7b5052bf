package raft_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/rafttest"
	"github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
	"github.com/stretchr/testify/require"
)

// A newer snapshot stops the start even when an older snapshot and the log
// could do without it: falling back would run this build on state a newer
// build wrote.
func TestNewerSnapshotIsNotFallenBackFrom(t *testing.T) {
	store, snaps := inmem.NewStore(), inmem.NewSnapshotStoreRetain(2)
	conf := raft.DefaultConfig()
	conf.LocalID = "a"
	one := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}
	require.NoError(t, raft.BootstrapCluster(conf, store, store, snaps, one))
	var ents []*raft.Log
	for i := uint64(2); i <= 20; i++ {
		ents = append(ents, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("c")})
	}
	require.NoError(t, store.StoreLogs(ents))
	// A snapshot with a real header, taken by a server.
	network := transinmem.NewNetwork(1)
	defer network.Close()
	trans, err := network.NewTransport("a")
	require.NoError(t, err)
	r, err := raft.NewRaft(conf, &testFSM{}, store, store, snaps, trans)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.AppliedIndex() >= 20 }, 10*time.Second, time.Millisecond)
	require.NoError(t, r.Snapshot(context.Background()).Error())
	require.NoError(t, r.Shutdown())
	trans.Close()
	metas, err := snaps.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	_, rc, err := snaps.Open(metas[0].ID)
	require.NoError(t, err)
	body, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)

	newer := append([]byte(nil), body...)
	newer[8]++ // the header's version byte (session.go)
	sink, err := snaps.Create(metas[0].Index+1, metas[0].Term, one, 1)
	require.NoError(t, err)
	_, err = sink.Write(newer)
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	require.NoError(t, store.StoreLogs([]*raft.Log{{Index: 22, Term: 1, Type: raft.LogNoop}}))

	trans, err = network.NewTransport("a")
	require.NoError(t, err)
	defer trans.Close()
	_, err = raft.NewRaft(conf, &testFSM{}, store, store, snaps, trans)
	require.ErrorIs(t, err, raft.ErrUnsupportedVersion)
	require.NotErrorIs(t, err, raft.ErrCorruptState)
	require.NotErrorIs(t, err, raft.ErrSnapshotCorrupt)
}

// A follower of a leader that sends an entry type this build does not
// know (here: a transport wrapper turns one command into type 200 on its
// way to s3, as a newer leader would send it) never stores or applies it:
// the transport's decoder refuses the message, s3 stays behind while the
// others commit, and it catches up once the entry arrives in a form it
// understands (here: the wrapper stops; in life: s3 is upgraded).
func TestFollowerRefusesNewerEntryType(t *testing.T) {
	var rewrite atomic.Bool
	rewrite.Store(true)
	c := &cluster{rafttest.New(t, 3, newTestFSM, rafttest.WithSeed(1),
		rafttest.WithConfig(func(cfg *raft.Config) {
			if cfg.LocalID == "s3" {
				// s3 never campaigns: as leader it would append the
				// entry itself, in the form it knows.
				cfg.ElectionTimeout = time.Hour
			}
		}),
		rafttest.WithTransportWrapper(func(id raft.ServerID, tr raft.Transport) raft.Transport {
			return &futureEntryTransport{Transport: tr, to: "s3", rewrite: &rewrite}
		})), t}
	c.apply("before")
	c.apply("future")
	c.apply("after")
	s3 := c.Servers()[2]
	others := c.Others(s3)
	rafttest.WaitFor(t, 10*time.Second, "s1 and s2 to apply past the newer entry", func() bool {
		return count(commands(others[0]), "after") == 1 && count(commands(others[1]), "after") == 1
	})
	require.Never(t, func() bool { return count(commands(s3), "future") > 0 }, 300*time.Millisecond, 10*time.Millisecond,
		"s3 must not apply an entry of a type it does not know")
	requireNoType(t, s3.LogStore(), 200)
	// s3 may not even have applied "before": a leader elected after the
	// newer entry knows no match for s3 and caps its commit at 0 until s3
	// accepts an append, and every append to s3 carries the newer entry.
	require.Subset(t, []string{"before"}, commands(s3))

	rewrite.Store(false)
	got := c.waitConverged()
	require.Equal(t, []string{"before", "future", "after"}, got)
	requireNoType(t, s3.LogStore(), 200)
}

func requireNoType(t *testing.T, logs raft.LogStore, typ raft.LogType) {
	t.Helper()
	first, err := logs.FirstIndex()
	require.NoError(t, err)
	last, err := logs.LastIndex()
	require.NoError(t, err)
	for i := first; first > 0 && i <= last; i++ {
		var e raft.Log
		require.NoError(t, logs.GetLog(i, &e))
		require.NotEqual(t, typ, e.Type, "entry %d", i)
	}
}

// futureEntryTransport sends, to the server to, every "future" command as
// an entry of type 200 while rewrite is set.
type futureEntryTransport struct {
	raft.Transport
	to      raft.ServerAddress
	rewrite *atomic.Bool
}

func (f *futureEntryTransport) Send(target raft.ServerAddress, m *raft.Message) error {
	if target != f.to || m.Type != raft.MsgAppend || !f.rewrite.Load() {
		return f.Transport.Send(target, m)
	}
	cp := *m
	cp.Entries = append([]raft.Log(nil), m.Entries...)
	for i := range cp.Entries {
		if string(cp.Entries[i].Data) == "future" {
			cp.Entries[i].Type = raft.LogType(200)
		}
	}
	return f.Transport.Send(target, &cp)
}
