package raft

import (
	"errors"
	"fmt"
	"log/slog"
)

// ErrNothingToRecover is returned by RecoverCluster for stores that hold no
// log entry and no snapshot: there is nothing to keep, so bootstrap instead.
var ErrNothingToRecover = errors.New("raft: recover: the stores hold no log and no snapshot")

// recoverBatch is how many entries RecoverCluster applies at once.
const recoverBatch = 1024

// RecoverCluster is the last resort after a cluster lost a quorum of its
// voters for good (two of three disks gone, a lost data centre): no leader
// can be elected, so membership cannot change the normal way. Run it on a
// stopped server's stores, never on a running one, with the new
// configuration the operator chose: typically the surviving servers, with
// their IDs and addresses. It is the equivalent of hashicorp/raft's
// RecoverCluster (and of peers.json in Consul and Nomad).
//
// It restores fsm from the newest snapshot, applies every entry of the log
// after it, committed or not, then stores a snapshot of the result at the
// log's last index and term whose configuration is configuration, and
// deletes the log it covers. The term and vote are kept. When the server
// starts, configuration is its membership, and the servers recovered with
// it can elect a leader among themselves.
//
// What it keeps: every entry this server holds, committed or not — which
// includes every entry this server knew to be committed. What can be lost:
// entries committed by the old majority that no survivor received. What can
// change: an entry the old leader never committed, and would have let a
// later leader overwrite, is now final on this server.
//
// Run it with the same configuration on every survivor. If their logs
// diverge (one holds entries of a leader the other never heard from), the
// one with the newest last term, then the longest log, becomes leader and
// the others keep what they applied on their own. To be safe when in
// doubt, recover only the survivor with the newest (last term, last index)
// (InspectStores reports them) and start the others with empty stores:
// they catch up from it.
//
// conf is the server's Config (for validation and its Logger); fsm must be
// a fresh FSM, as for NewRaft. Only the stores are changed, and on an error
// they hold either the old state or the new snapshot (a snapshot alone is
// enough for the next start; the log it covers is ignored then).
func RecoverCluster(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, configuration Configuration) error {
	if err := ValidateConfig(conf); err != nil {
		return err
	}
	if fsm == nil || logs == nil || stable == nil || snaps == nil {
		return errors.New("raft: RecoverCluster needs an FSM, a LogStore, a StableStore and a SnapshotStore")
	}
	if err := configuration.Validate(); err != nil {
		return fmt.Errorf("%w: recover: %v", ErrInvalidConfiguration, err)
	}
	if configuration.Joint() {
		return fmt.Errorf("%w: recover: a recovered cluster cannot start in a joint configuration", ErrInvalidConfiguration)
	}
	logger := conf.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, err := loadHardState(stable); err != nil {
		return err
	}
	snap, sessions, err := restoreNewestSnapshot(logger, fsm, snaps, logs)
	if err != nil {
		return err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raft: read last log index: %w", err)
	}
	if last == 0 && snap.Index == 0 {
		return ErrNothingToRecover
	}
	a := newApplier(fsm, snap.Index, sessions, func() {})
	a.lastTerm, a.conf, a.confIndex = snap.Term, snap.Configuration, snap.ConfigurationIndex
	prevTerm := snap.Term
	for i := snap.Index + 1; i <= last; {
		batch := make([]Log, 0, min(recoverBatch, last-i+1))
		for ; i <= last && len(batch) < recoverBatch; i++ {
			e, err := readStoredEntry(logs, i, prevTerm)
			if err != nil {
				return fmt.Errorf("raft: recover: %w", err)
			}
			prevTerm = e.Term
			batch = append(batch, e)
		}
		a.apply(applyBatch{entries: batch})
	}
	index := max(last, snap.Index)
	meta := SnapshotMeta{Index: index, Term: a.lastTerm, Configuration: configuration.Clone(), ConfigurationIndex: index}
	hdr, err := encodeSnapshotHeader(a.sessions)
	if err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	fs, err := fsm.Snapshot()
	if err != nil {
		return fmt.Errorf("raft: recover: FSM snapshot at index %d: %w", index, err)
	}
	meta, err = persistSnapshotTo(snaps, nil, fs, meta, hdr)
	fs.Release()
	if err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft: read first log index: %w", err)
	}
	if first > 0 && last >= first {
		if err := logs.DeleteRange(first, last); err != nil {
			return fmt.Errorf("raft: recover: delete log entries [%d, %d] now in snapshot %s: %w", first, last, meta.ID, err)
		}
	}
	logger.Warn("recovered cluster configuration", "server", conf.LocalID, "snapshot", meta.ID, "index", index, "term", meta.Term, "servers", configuration.Servers)
	return nil
}

// StoreState is what a stopped server's stores hold, as InspectStores
// reports it: enough for an operator to pick whom to recover.
type StoreState struct {
	Term      uint64   // the current term
	Vote      ServerID // the vote in Term, if any
	LastIndex uint64   // the last entry's index (or the newest snapshot's)
	LastTerm  uint64   // the last entry's term (or the newest snapshot's)
	// Configuration is the latest configuration in the log or the newest
	// snapshot, committed or not.
	Configuration Configuration
	// SnapshotIndex is the newest snapshot's index (0: none).
	SnapshotIndex uint64
}

// InspectStores reads a stopped server's stores without changing them. Of
// several survivors, the one with the highest (LastTerm, LastIndex) is the
// one an election among them would pick.
func InspectStores(logs LogStore, stable StableStore, snaps SnapshotStore) (StoreState, error) {
	hs, err := loadHardState(stable)
	if err != nil {
		return StoreState{}, err
	}
	st := StoreState{Term: hs.Term, Vote: hs.Vote}
	metas, err := snaps.List()
	if err != nil {
		return StoreState{}, fmt.Errorf("raft: list snapshots: %w", err)
	}
	if len(metas) > 0 {
		m := metas[0]
		st.SnapshotIndex, st.LastIndex, st.LastTerm = m.Index, m.Index, m.Term
		st.Configuration = m.Configuration.Clone()
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return StoreState{}, fmt.Errorf("raft: read first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return StoreState{}, fmt.Errorf("raft: read last log index: %w", err)
	}
	for i := max(first, st.SnapshotIndex+1); first > 0 && i <= last; i++ {
		var e Log
		if err := logs.GetLog(i, &e); err != nil {
			return StoreState{}, fmt.Errorf("raft: read log entry %d: %w", i, err)
		}
		st.LastIndex, st.LastTerm = e.Index, e.Term
		if e.Type == LogConfiguration {
			c, err := decodeConfiguration(e.Data)
			if err != nil {
				return StoreState{}, fmt.Errorf("%w: log entry %d: %v", ErrCorruptState, i, err)
			}
			st.Configuration = c
		}
	}
	return st, nil
}
