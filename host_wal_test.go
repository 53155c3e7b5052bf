package raft_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	"github.com/keelraft/raft/storage/multiwal"
)

// TestHostRestartsOnSharedWAL runs many groups on three hosts whose
// groups share one write-ahead log per host (storage/multiwal), stops
// every host, and restarts them from the logs: every group comes back
// with its term, vote and log, re-elects and re-applies what it
// committed, and takes new writes. Fewer groups under the race detector.
func TestHostRestartsOnSharedWAL(t *testing.T) {
	groups := 1000
	if raceEnabled {
		groups = 100
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	snaps := make([]map[raft.GroupID]*storeinmem.SnapshotStore, 3) // kept across the restart, as a disk would
	for i := range snaps {
		snaps[i] = map[raft.GroupID]*storeinmem.SnapshotStore{}
	}
	var conf raft.Configuration
	ids := []raft.ServerID{"h1", "h2", "h3"}
	for _, id := range ids {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	committed := make([][]string, groups+1) // each group's commands before the restart
	run := func(first bool, cmd string) {
		net := newMemHostNet()
		var hosts []*raft.Host
		var wals []*multiwal.WAL
		fsms := make([]map[raft.GroupID]*testFSM, 3)
		for i, id := range ids {
			w, err := multiwal.Open(dirs[i], multiwal.Options{})
			require.NoError(t, err)
			if !first {
				require.Len(t, w.Groups(), groups, "host %s recovered the wrong groups", id)
			}
			h, err := raft.NewHost(raft.HostConfig{Transport: net.transport(raft.ServerAddress(id)), HeartbeatInterval: 50 * time.Millisecond})
			require.NoError(t, err)
			hosts, wals, fsms[i] = append(hosts, h), append(wals, w), map[raft.GroupID]*testFSM{}
			for g := raft.GroupID(1); g <= raft.GroupID(groups); g++ {
				st, err := w.Group(uint64(g))
				require.NoError(t, err)
				rc := hostConf(id)
				rc.HeartbeatInterval, rc.ElectionTimeout = 50*time.Millisecond, time.Second // thousands of replicas on two cores
				if first {
					snaps[i][g] = storeinmem.NewSnapshotStore()
					require.NoError(t, raft.BootstrapCluster(rc, st, st, snaps[i][g], conf))
				}
				fsms[i][g] = &testFSM{}
				_, err = h.StartGroup(g, rc, fsms[i][g], st, st, snaps[i][g])
				require.NoError(t, err)
			}
		}
		// Every group writes at once, so that their writes share fsyncs.
		acked := make([]bool, groups+1)
		var wg sync.WaitGroup
		for g := raft.GroupID(1); g <= raft.GroupID(groups); g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rafts := func() []*raft.Raft { return []*raft.Raft{hosts[0].Group(g), hosts[1].Group(g), hosts[2].Group(g)} }
				acked[g] = applyOnce(t, rafts, fmt.Sprintf("%s-%d", cmd, g))
			}()
		}
		wg.Wait()
		for g := raft.GroupID(1); g <= raft.GroupID(groups); g++ {
			c := fmt.Sprintf("%s-%d", cmd, g)
			requireSameHistory(t, fmt.Sprintf("group %d", g), []*testFSM{fsms[0][g], fsms[1][g], fsms[2][g]}, []string{c}, map[string]bool{c: acked[g]})
			got := fsms[0][g].commands()
			if first {
				committed[g] = got
				continue
			}
			// What the group committed before the restart is applied
			// again, first, from the shared log.
			// (A replica that had not applied yet in the first phase
			// recorded nothing: compare as lists, nil or empty alike.)
			require.Equal(t, fmt.Sprint(committed[g]), fmt.Sprint(got[:min(len(got), len(committed[g]))]), "group %d after the restart", g)
		}
		var calls, fsyncs uint64
		for i, h := range hosts {
			require.NoError(t, h.Close())
			st := wals[i].Stats()
			calls, fsyncs = calls+st.Calls, fsyncs+st.Fsyncs
			require.NoError(t, wals[i].Close())
		}
		require.Less(t, fsyncs, calls, "the groups' writes never shared an fsync")
		t.Logf("%d groups: %d store calls, %d fsyncs", groups, calls, fsyncs)
	}
	run(true, "first")
	run(false, "second")
}
