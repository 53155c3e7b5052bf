package raft

import "fmt"

// HasExistingState reports whether any of the stores holds Raft state: a
// term, a log entry or a snapshot.
func HasExistingState(logs LogStore, stable StableStore, snaps SnapshotStore) (bool, error) {
	hs, err := loadHardState(stable)
	if err != nil {
		return false, err
	}
	if hs.Term > 0 {
		return true, nil
	}
	last, err := logs.LastIndex()
	if err != nil {
		return false, fmt.Errorf("raft: read last log index: %w", err)
	}
	if last > 0 {
		return true, nil
	}
	metas, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("raft: list snapshots: %w", err)
	}
	return len(metas) > 0, nil
}

// BootstrapCluster gives a new server its initial configuration: the
// first log entry, in term 1. Call it on every server of a new cluster with
// the same configuration (or on one server, which then elects itself and
// adds the others), before NewRaft. It returns ErrCantBootstrap when the
// stores hold state already.
func BootstrapCluster(conf *Config, logs LogStore, stable StableStore, snaps SnapshotStore, configuration Configuration) error {
	if err := ValidateConfig(conf); err != nil {
		return err
	}
	if err := configuration.Validate(); err != nil {
		return fmt.Errorf("raft: bootstrap: %w", err)
	}
	if configuration.Joint() {
		return fmt.Errorf("raft: bootstrap: a new cluster cannot start in a joint configuration")
	}
	exists, err := HasExistingState(logs, stable, snaps)
	if err != nil {
		return err
	}
	if exists {
		return ErrCantBootstrap
	}
	if err := saveHardState(stable, hardState{Term: 1}); err != nil {
		return err
	}
	entry := &Log{Index: 1, Term: 1, Type: LogConfiguration, Data: encodeConfiguration(configuration)}
	if err := logs.StoreLogs([]*Log{entry}); err != nil {
		return fmt.Errorf("raft: bootstrap: store configuration entry: %w", err)
	}
	return nil
}
