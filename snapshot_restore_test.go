package raft_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"testing"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/require"
)

// An operator's snapshot becomes the cluster's state: every server's FSM
// holds it (followers through InstallSnapshot), commands go on after it,
// and it survives a restart.
func TestRestoreExternalSnapshot(t *testing.T) {
	stores(t, func(t *testing.T, mk func(testing.TB, int, uint64, func(*raft.Config)) *cluster) {
		c := mk(t, 3, 14, nil)
		c.apply("a")
		c.apply("b")
		var ext bytes.Buffer
		ext.Write(raft.EmptySnapshotHeader())
		require.NoError(t, gob.NewEncoder(&ext).Encode([]string{"x", "y"}))

		l := c.Leader()
		var meta raft.SnapshotMeta
		require.NoError(t, l.Raft().Restore(context.Background(), &meta, &ext))
		require.NotEmpty(t, meta.ID)
		c.apply("z")
		require.Equal(t, []string{"x", "y", "z"}, c.waitConverged())

		f := c.Others(l)[0]
		c.Crash(f)
		c.Restart(f)
		c.apply("w")
		require.Equal(t, []string{"x", "y", "z", "w"}, c.waitConverged())

		follower := c.Others(c.Leader())[0]
		err := follower.Raft().Restore(context.Background(), nil, bytes.NewReader(raft.EmptySnapshotHeader()))
		require.ErrorIs(t, err, raft.ErrNotLeader)

		// A stream without keel's header (the FSM's bytes alone) is
		// refused before anything changes.
		var raw bytes.Buffer
		require.NoError(t, gob.NewEncoder(&raw).Encode([]string{"q"}))
		err = c.Leader().Raft().Restore(context.Background(), nil, &raw)
		require.ErrorIs(t, err, raft.ErrSnapshotCorrupt)
		require.ErrorContains(t, err, "not a keel snapshot")
		c.apply("v")
		require.Equal(t, []string{"x", "y", "z", "w", "v"}, c.waitConverged())
	})
}
