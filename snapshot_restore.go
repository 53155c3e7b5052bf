package raft

import (
	"context"
	"fmt"
	"io"
)

// Restore replaces the cluster's state with an external snapshot, for
// disaster recovery (hashicorp/raft's Restore). It must be called on the
// leader; reader gives a snapshot as SnapshotFuture.Open returns it: keel's
// header (the client session table), then the FSM's bytes (meta is
// informational: its Index and Term are replaced). A reader that does not
// start with a readable header is refused (ErrSnapshotCorrupt) before
// anything changes.
//
// The client sessions become the snapshot's: sessions registered since
// it was taken are gone (ErrSessionExpired), and a retry of a command the
// snapshot covers gets its cached response.
//
// The leader refuses new commands (ErrRestoreInProgress) while it commits a
// barrier, so that the FSM reflects everything committed before; it then
// writes the snapshot to its SnapshotStore at the index after its last
// entry, restores its FSM from it, resets its log to start after it, and
// sends it to every follower with InstallSnapshot. Restore returns once a
// no-op entry after the snapshot has committed, which means a quorum holds
// the snapshot: from then on the restored state is the cluster's.
//
// An error leaves the outcome unknown (the snapshot may or may not have
// become the cluster's state); call Restore again. Restore is an operator's
// tool: it discards whatever the cluster's state was.
func (r *Raft) Restore(ctx context.Context, meta *SnapshotMeta, reader io.Reader) error {
	// 0. Read keel's header: a stream that is not a snapshot stops here.
	sessions, err := readSnapshotHeader(reader)
	if err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	// 1. Stop accepting commands and commit a barrier.
	barrier := newFuture(ctx, r.shutdownCh)
	barrier.log = Log{Type: LogNoop}
	var term uint64
	var conf confEntry
	err = r.do(ctx, func() {
		if r.core.role != roleLeader {
			barrier.respond(0, nil, r.notLeader())
			return
		}
		if r.restoring {
			barrier.respond(0, nil, ErrRestoreInProgress)
			return
		}
		r.proposeBatch(barrier)
		r.restoring = true
		term, conf = r.core.term, r.core.confs.latest()
	})
	if err != nil {
		return err
	}
	if err := barrier.Error(); err != nil {
		r.endRestore()
		return fmt.Errorf("raft: restore: barrier: %w", err)
	}
	// 2. Store the snapshot at the index after the barrier, off the loop.
	index := barrier.Index() + 1
	sink, err := r.snaps.Create(index, term, conf.conf, conf.index)
	if err != nil {
		r.endRestore()
		return fmt.Errorf("raft: restore: create snapshot: %w", err)
	}
	gs := &guardedSink{SnapshotSink: sink, stop: r.shutdownCh}
	// Session IDs are register indexes: those at or above index, from a
	// longer log, would collide with the sessions registered from now on.
	sessions.dropFrom(index)
	hdr, err := encodeSnapshotHeader(sessions)
	if err == nil {
		_, err = gs.Write(hdr)
	}
	if err == nil {
		_, err = io.Copy(gs, reader)
	}
	if err != nil {
		gs.Cancel()
		r.endRestore()
		return fmt.Errorf("raft: restore: write snapshot %s: %w", sink.ID(), err)
	}
	if err := gs.Close(); err != nil {
		r.endRestore()
		return fmt.Errorf("raft: restore: store snapshot %s: %w", sink.ID(), err)
	}
	installed := SnapshotMeta{ID: sink.ID(), Index: index, Term: term,
		Configuration: conf.conf.Clone(), ConfigurationIndex: conf.index, Size: gs.n}
	if meta != nil {
		*meta = installed
	}
	// 3. Install it and commit a no-op after it.
	done := newFuture(ctx, r.shutdownCh)
	done.log = Log{Type: LogNoop}
	err = r.do(ctx, func() {
		r.restoring = false
		if err := r.core.installLocal(installed); err != nil {
			done.respond(0, nil, fmt.Errorf("raft: restore: %w", err))
			return
		}
		r.logger.Warn("restoring the cluster from an external snapshot", "id", installed.ID, "index", index)
		r.proposeBatch(done)
	})
	if err != nil {
		r.endRestore()
		return err
	}
	if err := done.Error(); err != nil {
		return fmt.Errorf("raft: restore: snapshot %s installed on the leader, not known committed: %w", installed.ID, err)
	}
	return nil
}

func (r *Raft) endRestore() {
	r.do(context.Background(), func() { r.restoring = false })
}
