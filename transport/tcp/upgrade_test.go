package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
)

// seqFSM records the commands it applies, in order. It outlives the Raft
// instances of its server, so it skips the entries a restarted Raft
// applies again from the log.
type seqFSM struct {
	mu   sync.Mutex
	last uint64
	seq  []string
}

func (f *seqFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.Index > f.last {
		f.last = l.Index
		f.seq = append(f.seq, string(l.Data))
	}
	return nil
}

func (f *seqFSM) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seq...)
}

func (f *seqFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("not needed") }
func (f *seqFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// upgradeServer is one server of the rolling upgrade: its stores and FSM
// survive restarts; its transport and Raft are replaced.
type upgradeServer struct {
	cfg   *raft.Config
	addr  raft.ServerAddress
	store *storeinmem.Store
	snaps *storeinmem.SnapshotStore
	fsm   *seqFSM
	isNew bool // speaks 1-2 rather than 1-1
	tr    *Transport
	r     *raft.Raft
}

func (s *upgradeServer) start(t *testing.T, isNew bool) {
	t.Helper()
	opts := WithVersions(Options{}, 1, 1)
	if isNew {
		opts = WithVersions(Options{}, 1, 2)
	}
	tr, err := New(string(s.addr), opts)
	require.NoError(t, err)
	r, err := raft.NewRaft(s.cfg, s.fsm, s.store, s.store, s.snaps, tr)
	if err != nil {
		tr.Close()
		require.NoError(t, err)
	}
	s.isNew, s.tr, s.r = isNew, tr, r
}

func (s *upgradeServer) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.r.Shutdown())
	require.NoError(t, s.tr.Close())
}

// A three-server cluster under continuous writes is upgraded one server at
// a time from protocol 1 only to 1-2, then downgraded back the same way.
// In every phase writes succeed, the connections between new servers speak
// 2 and every other 1; at the end every server applied the same commands
// in the same order, every acknowledged write among them.
func TestRollingUpgrade(t *testing.T) {
	servers := make([]*upgradeServer, 3)
	var conf raft.Configuration
	for i := range servers {
		// A transport only to reserve a port; the servers' own listen on it.
		tr, err := New("127.0.0.1:0", Options{})
		require.NoError(t, err)
		addr := tr.LocalAddr()
		require.NoError(t, tr.Close())
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(fmt.Sprint("s", i))
		cfg.HeartbeatInterval = 20 * time.Millisecond
		cfg.ElectionTimeout = 200 * time.Millisecond
		cfg.SnapshotThreshold = 1 << 30 // the FSM does not snapshot
		servers[i] = &upgradeServer{cfg: cfg, addr: addr, store: storeinmem.NewStore(),
			snaps: storeinmem.NewSnapshotStore(), fsm: &seqFSM{}}
		conf.Servers = append(conf.Servers, raft.Server{ID: cfg.LocalID, Address: addr})
	}
	for _, s := range servers {
		require.NoError(t, raft.BootstrapCluster(s.cfg, s.store, s.store, s.snaps, conf))
		s.start(t, false)
	}

	// mu guards the servers' tr, r and isNew while one restarts, and
	// what the writers record.
	var mu sync.Mutex
	phase := 0
	successes := map[int]int{}
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			s.stop(t)
		}
	}()
	leaderOf := func() *raft.Raft {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			if s.r.State() == raft.Leader {
				return s.r
			}
		}
		return nil
	}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			retry := time.NewTicker(5 * time.Millisecond)
			defer retry.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := leaderOf()
				if r == nil {
					select {
					case <-stop:
						return
					case <-retry.C:
					}
					continue
				}
				cmd := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := r.Apply(ctx, []byte(cmd)).Error()
				cancel()
				if err != nil {
					continue // a shut down or deposed leader; the next one will take it
				}
				mu.Lock()
				successes[phase]++
				acked = append(acked, cmd)
				mu.Unlock()
			}
		}()
	}

	// versionsAsExpected checks the outbound versions: between two new
	// servers 2, else 1. Only the leader talks to every peer and every
	// follower to the leader, so those connections must be there; others
	// may be, and then must be right.
	versionsAsExpected := func() bool {
		mu.Lock()
		defer mu.Unlock()
		leader := -1
		for i, s := range servers {
			if s.r.State() == raft.Leader {
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
		for i, s := range servers {
			pv := s.tr.PeerVersions()
			for j, o := range servers {
				if i == j {
					continue
				}
				want := uint8(1)
				if s.isNew && o.isNew {
					want = 2
				}
				v, ok := pv[o.addr]
				if ok && v != want || !ok && (i == leader || j == leader) {
					return false
				}
			}
		}
		return true
	}
	const perPhase = 20
	runPhase := func(name string) {
		t.Helper()
		mu.Lock()
		phase++
		p := phase
		mu.Unlock()
		waitFor(t, 10*time.Second, name+": writes succeeding", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return successes[p] >= perPhase
		})
		waitFor(t, 10*time.Second, name+": negotiated versions", versionsAsExpected)
	}
	restart := func(i int, isNew bool) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		servers[i].stop(t)
		servers[i].start(t, isNew)
	}

	start := time.Now()
	runPhase("all old")
	for i := range servers {
		restart(i, true)
		runPhase(fmt.Sprint(i+1, " new"))
	}
	for i := range servers {
		restart(i, false)
		runPhase(fmt.Sprint(i+1, " downgraded"))
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	t.Logf("writes acknowledged per phase (1 all old, 2-4 upgrading, 5-7 downgrading): %v; %d in all, in %v",
		successes, len(acked), time.Since(start))
	ackedCopy := append([]string(nil), acked...)
	mu.Unlock()
	var seqs [][]string
	waitFor(t, 10*time.Second, "every server to apply the same commands", func() bool {
		seqs = seqs[:0]
		for _, s := range servers {
			seqs = append(seqs, s.fsm.applied())
		}
		for _, seq := range seqs[1:] {
			if len(seq) != len(seqs[0]) {
				return false
			}
		}
		return len(seqs[0]) >= len(ackedCopy)
	})
	require.Equal(t, seqs[0], seqs[1])
	require.Equal(t, seqs[0], seqs[2])
	applied := make(map[string]bool, len(seqs[0]))
	for _, cmd := range seqs[0] {
		require.False(t, applied[cmd], "%s applied twice", cmd)
		applied[cmd] = true
	}
	for _, cmd := range ackedCopy {
		require.True(t, applied[cmd], "acknowledged %s not applied", cmd)
	}
}
