package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/storage/filesnap"
	"github.com/keelraft/raft/storage/multiwal"
	"github.com/keelraft/raft/transport/tcp"
)

// keelFSM is the in-memory state machine both systems run: it counts
// the commands and their bytes.
type keelFSM struct{ n, bytes atomic.Uint64 }

func (f *keelFSM) Apply(l *raft.Log) any {
	f.n.Add(1)
	f.bytes.Add(uint64(len(l.Data)))
	return nil
}

func (f *keelFSM) Snapshot() (raft.FSMSnapshot, error) {
	return counterSnapshot{f.n.Load(), f.bytes.Load()}, nil
}

func (f *keelFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return fmt.Errorf("restore counter: %w", err)
	}
	f.n.Store(binary.BigEndian.Uint64(b[:8]))
	f.bytes.Store(binary.BigEndian.Uint64(b[8:]))
	return nil
}

type counterSnapshot struct{ n, bytes uint64 }

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.n)
	binary.BigEndian.PutUint64(b[8:], s.bytes)
	if _, err := sink.Write(b[:]); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist counter: %w", err)
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

// keelCluster is three raft.Hosts on loopback TCP (tcp.NewHost), each with
// one multiwal shared by its groups and a filesnap store per group.
type keelCluster struct {
	hosts  []*raft.Host
	trans  []*tcp.HostTransport
	wals   []*multiwal.WAL
	snaps  []*filesnap.Store
	byID   map[raft.ServerID]int
	groups int
}

func startKeel(p params) (_ *keelCluster, err error) {
	k := &keelCluster{byID: map[raft.ServerID]int{}, groups: p.Groups}
	defer func() {
		if err != nil {
			err = errors.Join(err, k.close())
		}
	}()
	var conf raft.Configuration
	for i := range 3 {
		tr, err := tcp.NewHost("127.0.0.1:0", tcp.Options{})
		if err != nil {
			return nil, fmt.Errorf("host %d: transport: %w", i, err)
		}
		k.trans = append(k.trans, tr)
		h, err := raft.NewHost(raft.HostConfig{Transport: tr, HeartbeatInterval: p.Heartbeat, PersistWorkers: p.PersistWorkers})
		if err != nil {
			return nil, fmt.Errorf("host %d: %w", i, err)
		}
		k.hosts = append(k.hosts, h)
		w, err := multiwal.Open(filepath.Join(p.Dir, fmt.Sprintf("h%d", i+1), "wal"), multiwal.Options{})
		if err != nil {
			return nil, fmt.Errorf("host %d: %w", i, err)
		}
		k.wals = append(k.wals, w)
		id := raft.ServerID(fmt.Sprintf("h%d", i+1))
		k.byID[id] = i
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: tr.LocalAddr()})
	}
	for g := 1; g <= p.Groups; g++ {
		for i, h := range k.hosts {
			st, err := k.wals[i].Group(uint64(g))
			if err != nil {
				return nil, fmt.Errorf("host %d, group %d: %w", i, g, err)
			}
			snaps, err := filesnap.New(filepath.Join(p.Dir, fmt.Sprintf("h%d", i+1), "snap", fmt.Sprint(g)), filesnap.Options{})
			if err != nil {
				return nil, fmt.Errorf("host %d, group %d: %w", i, g, err)
			}
			k.snaps = append(k.snaps, snaps)
			rc := raft.DefaultConfig()
			rc.LocalID = conf.Servers[i].ID
			rc.HeartbeatInterval, rc.ElectionTimeout = p.Heartbeat, p.Election
			// Clients go to the leader themselves, as dragonboat's do: a
			// follower answers NotLeader instead of forwarding.
			rc.ForwardingDisabled = true
			if err := raft.BootstrapCluster(rc, st, st, snaps, conf); err != nil {
				return nil, fmt.Errorf("host %d, group %d: bootstrap: %w", i, g, err)
			}
			if _, err := h.StartGroup(raft.GroupID(g), rc, &keelFSM{}, st, st, snaps); err != nil {
				return nil, fmt.Errorf("host %d: %w", i, err)
			}
		}
	}
	return k, nil
}

func (k *keelCluster) propose(ctx context.Context, cs *clientState, cmd []byte) (bool, error) {
	r := k.hosts[cs.leader].Group(raft.GroupID(cs.group + 1))
	if r == nil {
		return false, fmt.Errorf("group %d, host %d: %w", cs.group+1, cs.leader, errNoGroup)
	}
	err := r.Apply(ctx, cmd).Error()
	if err == nil {
		return false, nil
	}
	var nle *raft.NotLeaderError
	if errors.As(err, &nle) {
		if l, ok := k.byID[nle.LeaderID]; ok && l != cs.leader {
			cs.leader = l
			return true, err
		}
	}
	return false, fmt.Errorf("group %d, host %d: %w", cs.group+1, cs.leader, err)
}

func (k *keelCluster) findLeader(g int, within time.Duration) (int, error) {
	return pollLeader(g, within, func() (int, bool) {
		for i, h := range k.hosts {
			if r := h.Group(raft.GroupID(g + 1)); r != nil && r.State() == raft.Leader {
				return i, true
			}
		}
		return 0, false
	})
}

func (k *keelCluster) fsyncs() (uint64, bool) {
	var n uint64
	for _, w := range k.wals {
		n += w.Stats().Fsyncs
	}
	return n, true
}

// close closes the hosts, then the transports and the stores.
func (k *keelCluster) close() error {
	var errs []error
	for i, h := range k.hosts {
		if err := h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("keel host %d: %w", i, err))
		}
	}
	for i, tr := range k.trans {
		if err := tr.Close(); err != nil {
			errs = append(errs, fmt.Errorf("keel host %d: transport: %w", i, err))
		}
	}
	for i, w := range k.wals {
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("keel host %d: wal: %w", i, err))
		}
	}
	for _, s := range k.snaps {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("keel snapshot store: %w", err))
		}
	}
	k.hosts, k.trans, k.wals, k.snaps = nil, nil, nil, nil
	return errors.Join(errs...)
}
