package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/filesnap"
	"github.com/keelraft/raft/storage/wal"
)

// offlineStores are a stopped server's stores, opened by -inspect and
// -recover. Opening the log takes its lock, so a data directory a running
// server uses is refused.
type offlineStores struct {
	logs   *wal.Log
	stable *wal.Stable
	snaps  *filesnap.Store
}

func openOffline(dir string) (*offlineStores, error) {
	var s offlineStores
	var err error
	if s.logs, err = wal.Open(filepath.Join(dir, "log"), wal.Options{}); err != nil {
		return nil, fmt.Errorf("open log (is a server running on %s?): %w", dir, err)
	}
	if s.stable, err = wal.OpenStable(filepath.Join(dir, "stable")); err != nil {
		s.logs.Close()
		return nil, fmt.Errorf("open stable store: %w", err)
	}
	if s.snaps, err = filesnap.New(filepath.Join(dir, "snapshots"), filesnap.Options{}); err != nil {
		s.logs.Close()
		s.stable.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return &s, nil
}

func (s *offlineStores) Close() error {
	return errors.Join(s.logs.Close(), s.stable.Close())
}

// inspectDir prints, as JSON, what a stopped server's data directory holds:
// its term and vote, last log index and term, and latest configuration.
// Of several survivors, recover the one with the highest (last_term,
// last_index) when in doubt.
func inspectDir(dir string, out io.Writer) error {
	s, err := openOffline(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := raft.InspectStores(s.logs, s.stable, s.snaps)
	if err != nil {
		return err
	}
	return printState(out, st)
}

func printState(out io.Writer, st raft.StoreState) error {
	type server struct {
		ID, Address, Suffrage string
	}
	var servers []server
	for _, sv := range st.Configuration.Servers {
		servers = append(servers, server{string(sv.ID), string(sv.Address), sv.Suffrage.String()})
	}
	b, err := json.MarshalIndent(map[string]any{
		"term": st.Term, "vote": st.Vote, "last_index": st.LastIndex, "last_term": st.LastTerm,
		"snapshot_index": st.SnapshotIndex, "servers": servers, "joint": st.Configuration.Joint(),
	}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// recoverDir rewrites a stopped server's configuration to the voters named
// in ids (each one of peers) with raft.RecoverCluster: the quorum-loss
// runbook in the README. It prints the state before and after.
func recoverDir(dir string, self raft.ServerID, ids string, peers []peer, out io.Writer) error {
	var conf raft.Configuration
	for _, id := range strings.Split(ids, ",") {
		id = strings.TrimSpace(id)
		p, ok := findPeer(peers, raft.ServerID(id))
		if !ok {
			return fmt.Errorf("-recover: %q is not in -peers", id)
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: p.ID, Address: p.RaftAddr})
	}
	s, err := openOffline(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	before, err := raft.InspectStores(s.logs, s.stable, s.snaps)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "before:")
	if err := printState(out, before); err != nil {
		return err
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = self
	if err := raft.RecoverCluster(cfg, newFSM(), s.logs, s.stable, s.snaps, conf); err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	after, err := raft.InspectStores(s.logs, s.stable, s.snaps)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "after:")
	return printState(out, after)
}
