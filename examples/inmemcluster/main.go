// Command inmemcluster runs a 3-server keel cluster in one process, on
// in-memory stores and transport: it applies commands, stops the leader,
// waits for a new one, applies more, and shows every surviving server holds
// all the commands in the same order. It exits 0 when all of that held.
//
//	go run ./examples/inmemcluster
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
)

// journal is the replicated state machine: the list of commands applied.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) Apply(l *raft.Log) any {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, string(l.Data))
	return len(j.entries)
}

func (j *journal) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("journal: snapshots are not used in this example")
}

func (j *journal) Restore(rc io.ReadCloser) error { return rc.Close() }

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.entries, ",")
}

type server struct {
	id   raft.ServerID
	raft *raft.Raft
	fsm  *journal
}

func main() {
	if err := run(); err != nil {
		log.Printf("inmemcluster: %v", err)
		os.Exit(1)
	}
}

func run() error {
	network := transinmem.NewNetwork(1)
	defer network.Close()

	ids := []raft.ServerID{"alpha", "beta", "gamma"}
	var conf raft.Configuration
	for _, id := range ids {
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	var servers []*server
	for _, id := range ids {
		s, err := start(network, id, conf)
		if err != nil {
			return err
		}
		defer s.raft.Shutdown()
		servers = append(servers, s)
	}

	leader, err := waitLeader(servers)
	if err != nil {
		return err
	}
	fmt.Printf("leader: %s\n", leader.id)
	if err := apply(leader, "set x=1", "set y=2", "set z=3"); err != nil {
		return err
	}

	fmt.Printf("stopping leader %s\n", leader.id)
	if err := leader.raft.Shutdown(); err != nil {
		return err
	}
	var rest []*server
	for _, s := range servers {
		if s != leader {
			rest = append(rest, s)
		}
	}
	next, err := waitLeader(rest)
	if err != nil {
		return err
	}
	fmt.Printf("new leader: %s\n", next.id)
	if err := apply(next, "set x=4"); err != nil {
		return err
	}
	// A barrier on the leader, then a heartbeat or two, lets every
	// survivor catch up.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := next.raft.Barrier(ctx).Error(); err != nil {
		return err
	}
	want := "set x=1,set y=2,set z=3,set x=4"
	for _, s := range rest {
		if err := waitUntil(ctx, func() bool { return s.fsm.String() == want }); err != nil {
			return fmt.Errorf("%s holds %q, want %q", s.id, s.fsm.String(), want)
		}
		fmt.Printf("%s: %s\n", s.id, s.fsm.String())
	}
	return nil
}

func start(network *transinmem.Network, id raft.ServerID, conf raft.Configuration) (*server, error) {
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	store, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
	trans, err := network.NewTransport(raft.ServerAddress(id))
	if err != nil {
		return nil, err
	}
	if err := raft.BootstrapCluster(cfg, store, store, snaps, conf); err != nil {
		return nil, err
	}
	fsm := &journal{}
	r, err := raft.NewRaft(cfg, fsm, store, store, snaps, trans)
	if err != nil {
		return nil, err
	}
	return &server{id: id, raft: r, fsm: fsm}, nil
}

func apply(s *server, cmds ...string) error {
	for _, cmd := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.raft.Apply(ctx, []byte(cmd)).Error()
		cancel()
		if err != nil {
			return fmt.Errorf("apply %q on %s: %w", cmd, s.id, err)
		}
		fmt.Printf("applied %q\n", cmd)
	}
	return nil
}

func waitLeader(servers []*server) (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var leader *server
	err := waitUntil(ctx, func() bool {
		for _, s := range servers {
			if s.raft.State() == raft.Leader {
				leader = s
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, errors.New("no leader elected within 10s")
	}
	return leader, nil
}

func waitUntil(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
