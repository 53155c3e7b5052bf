package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/transport/tcp"
)

// hostCluster is a multi-group cluster of test servers.
type hostCluster struct {
	t      *testing.T
	groups int
	tweak  func(*raft.Config)
	peers  []peer
	dirs   []string
	nodes  []*hostNode
}

// newHostCluster starts size servers of groups groups each over TCP
// loopback, each in a temporary directory, with tweak (if not nil)
// applied to their configuration, and stops them when the test ends.
func newHostCluster(t *testing.T, size, groups int, tweak func(*raft.Config)) *hostCluster {
	t.Helper()
	c := &hostCluster{t: t, groups: groups, tweak: tweak}
	var transs []*tcp.HostTransport
	var lns []net.Listener
	for i := range size {
		id := raft.ServerID(fmt.Sprintf("%c", 'a'+i))
		trans, ln, p := listenHostPeer(t, id, "127.0.0.1:0", "127.0.0.1:0")
		transs, lns = append(transs, trans), append(lns, ln)
		c.peers = append(c.peers, p)
		c.dirs = append(c.dirs, t.TempDir())
	}
	c.start(transs, lns)
	t.Cleanup(c.stop)
	return c
}

// start starts the servers on the transports and listeners given.
func (c *hostCluster) start(transs []*tcp.HostTransport, lns []net.Listener) {
	c.t.Helper()
	c.nodes = nil
	for i, p := range c.peers {
		n, err := newHostNode(testConfig(p.ID, c.tweak), nil, c.dirs[i], transs[i], lns[i], c.peers, c.groups, true)
		if err != nil {
			for j := i + 1; j < len(c.peers); j++ {
				transs[j].Close()
				lns[j].Close()
			}
			c.t.Fatalf("start %s: %v", p.ID, err)
		}
		c.nodes = append(c.nodes, n)
	}
}

// stop closes every server.
func (c *hostCluster) stop() {
	for _, n := range c.nodes {
		if err := n.Close(); err != nil {
			c.t.Errorf("close %s: %v", n.id, err)
		}
	}
}

// restart stops every server and starts it again on its directory and
// addresses.
func (c *hostCluster) restart() {
	c.t.Helper()
	c.stop()
	var transs []*tcp.HostTransport
	var lns []net.Listener
	for _, p := range c.peers {
		trans, ln, _ := listenHostPeer(c.t, p.ID, string(p.RaftAddr), p.HTTPAddr)
		transs, lns = append(transs, trans), append(lns, ln)
	}
	c.start(transs, lns)
}

// leader waits for group g to have a leader that every server knows, and
// returns its index in c.nodes.
func (c *hostCluster) leader(g raft.GroupID) int {
	c.t.Helper()
	leader := -1
	eventuallyWithin(c.t, 10*time.Second, fmt.Sprintf("a leader of group %d", g), func() bool {
		leader = -1
		for i, n := range c.nodes {
			if n.group(g).raft.State() == raft.Leader {
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
		for _, n := range c.nodes {
			if raft.ServerID(n.group(g).raft.Stats()["leader_id"]) != c.peers[leader].ID {
				return false
			}
		}
		return true
	})
	return leader
}

func hostURL(n *hostNode, path string) string { return "http://" + n.httpAddrs[n.id] + path }

// listenHostPeer opens a server's host transport and HTTP listener on the
// addresses given and returns them with its peer entry.
func listenHostPeer(t *testing.T, id raft.ServerID, raftAddr, httpAddr string) (*tcp.HostTransport, net.Listener, peer) {
	t.Helper()
	trans, err := tcp.NewHost(raftAddr, tcp.Options{})
	if err != nil {
		t.Fatalf("host transport: %v", err)
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		trans.Close()
		t.Fatalf("listen: %v", err)
	}
	return trans, ln, peer{ID: id, RaftAddr: raft.ServerAddress(trans.Addr().String()), HTTPAddr: ln.Addr().String()}
}

func TestGroupOf(t *testing.T) {
	counts := make(map[raft.GroupID]int)
	for i := range 1000 {
		key := fmt.Sprintf("key-%d", i)
		g := groupOf(key, 4)
		if g < 1 || g > 4 {
			t.Fatalf("groupOf(%q, 4) = %d", key, g)
		}
		if again := groupOf(key, 4); again != g {
			t.Fatalf("groupOf(%q, 4) = %d, then %d", key, g, again)
		}
		counts[g]++
	}
	for g := raft.GroupID(1); g <= 4; g++ {
		if counts[g] < 150 {
			t.Errorf("group %d got %d of 1000 keys: %v", g, counts[g], counts)
		}
	}
	// FNV-1a 64 of "" is its offset basis, 0xcbf29ce484222325.
	if g := groupOf("", 7); g != raft.GroupID(1+0xcbf29ce484222325%7) {
		t.Errorf(`groupOf("", 7) = %d`, g)
	}
}

// smallSnapshots makes every group snapshot and compact its log every few
// entries.
func smallSnapshots(cfg *raft.Config) {
	cfg.SnapshotThreshold = 4
	cfg.TrailingLogs = 2
	cfg.SnapshotInterval = 10 * time.Millisecond
}

// TestGroups runs three servers of four groups: keys written through
// every server land in their own group, the three read levels serve them
// per group, /status has every group, and a restart recovers every key
// from each group's snapshot and the shared log.
func TestGroups(t *testing.T) {
	const groups, keys = 4, 40
	c := newHostCluster(t, 3, groups, smallSnapshots)
	client := noRedirects(t, 10*time.Second)
	leaders := make(map[raft.GroupID]int)
	for g := raft.GroupID(1); g <= groups; g++ {
		leaders[g] = c.leader(g)
	}

	want := make(map[string]string)
	perGroup := make(map[raft.GroupID]int)
	for i := range keys {
		key, value := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		n := c.nodes[i%len(c.nodes)] // a follower of most groups forwards
		if r := do(t, client, "PUT", hostURL(n, "/kv/"+key), value); r.code != http.StatusNoContent {
			t.Fatalf("PUT %s on %s: %d %q", key, n.id, r.code, r.body)
		}
		want[key] = value
		perGroup[groupOf(key, groups)]++
	}
	if len(perGroup) < 2 {
		t.Fatalf("the keys went to %d group(s): %v", len(perGroup), perGroup)
	}
	// Each key is in its group's map on every server, and in no other.
	for _, n := range c.nodes {
		eventually(t, fmt.Sprintf("%s to apply every key", n.id), func() bool {
			for key, value := range want {
				if v, ok := n.group(groupOf(key, groups)).fsm.Get(key); !ok || v != value {
					return false
				}
			}
			return true
		})
		for key := range want {
			for g := raft.GroupID(1); g <= groups; g++ {
				if _, ok := n.group(g).fsm.Get(key); ok && g != groupOf(key, groups) {
					t.Fatalf("%s: key %s of group %d is in group %d", n.id, key, groupOf(key, groups), g)
				}
			}
		}
	}

	// /status has one entry per group; the groups that took writes show
	// them in their indexes.
	r := do(t, client, "GET", hostURL(c.nodes[0], "/status"), "")
	var st hostStatus
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.code != 200 {
		t.Fatalf("status: %d %q: %v", r.code, r.body, err)
	}
	if st.ID != c.nodes[0].id || len(st.Groups) != groups {
		t.Fatalf("status: %+v", st)
	}
	for i, gs := range st.Groups {
		g := raft.GroupID(i + 1)
		// Bootstrap, the leader's no-op, then one entry per write.
		if gs.Group != g || gs.Leader.ID != c.peers[leaders[g]].ID || gs.Leader.HTTPAddr != c.peers[leaders[g]].HTTPAddr ||
			len(gs.Configuration) != 3 || gs.CommitIndex < uint64(2+perGroup[g]) {
			t.Errorf("status of group %d (%d writes): %+v", g, perGroup[g], gs)
		}
	}

	// Reads at every level, on every server.
	for key, value := range want {
		g := groupOf(key, groups)
		for i, n := range c.nodes {
			if r := do(t, client, "GET", hostURL(n, "/kv/"+key+"?consistency=linearizable"), ""); r.code != 200 || r.body != value {
				t.Fatalf("linearizable GET %s (group %d) on %s: %d %q", key, g, n.id, r.code, r.body)
			}
			if r := do(t, client, "GET", hostURL(n, "/kv/"+key+"?consistency=stale"), ""); r.code != 200 || r.body != value {
				t.Fatalf("stale GET %s (group %d) on %s: %d %q", key, g, n.id, r.code, r.body)
			}
			r := do(t, client, "GET", hostURL(n, "/kv/"+key), "")
			if i == leaders[g] {
				if r.code != 200 || r.body != value {
					t.Fatalf("default GET %s on %s, group %d's leader: %d %q", key, n.id, g, r.code, r.body)
				}
			} else if loc := hostURL(c.nodes[leaders[g]], "/kv/"+key); r.code != http.StatusTemporaryRedirect || r.location != loc {
				t.Fatalf("default GET %s on %s, a follower of group %d: %d Location %q, want 307 %q", key, n.id, g, r.code, r.location, loc)
			}
		}
	}
	if r := do(t, client, "DELETE", hostURL(c.nodes[1], "/kv/k0"), ""); r.code != http.StatusNoContent {
		t.Fatalf("DELETE k0: %d %q", r.code, r.body)
	}
	delete(want, "k0")

	// Every group recovers every key from its snapshot and the shared log.
	eventuallyWithin(t, 10*time.Second, "every group to take a snapshot on every server", func() bool {
		for _, n := range c.nodes {
			for _, snaps := range n.snaps {
				if metas, err := snaps.List(); err != nil || len(metas) == 0 {
					return false
				}
			}
		}
		return true
	})
	client.CloseIdleConnections()
	c.restart()
	for g := raft.GroupID(1); g <= groups; g++ {
		c.leader(g)
	}
	for key, value := range want {
		n := c.nodes[len(key)%len(c.nodes)]
		if r := do(t, client, "GET", hostURL(n, "/kv/"+key+"?consistency=linearizable"), ""); r.code != 200 || r.body != value {
			t.Fatalf("after restart: linearizable GET %s on %s: %d %q", key, n.id, r.code, r.body)
		}
	}
	if r := do(t, client, "GET", hostURL(c.nodes[2], "/kv/k0?consistency=linearizable"), ""); r.code != http.StatusNotFound {
		t.Fatalf("after restart: GET deleted k0: %d %q", r.code, r.body)
	}
}

// TestGroupsRefuseOtherLayout: a data directory keeps the number of
// groups it was created with; started with another, or as a single-group
// server, it is refused, and a single-group directory is refused as a
// multi-group one.
func TestGroupsRefuseOtherLayout(t *testing.T) {
	c := newHostCluster(t, 1, 4, nil)
	c.leader(1)
	dir := c.dirs[0]
	c.stop()
	c.nodes = nil

	trans, ln, _ := listenHostPeer(t, "a", "127.0.0.1:0", "127.0.0.1:0")
	_, err := newHostNode(testConfig("a", nil), nil, dir, trans, ln, c.peers, 2, true)
	if err == nil || !strings.Contains(err.Error(), "created with -groups 4") {
		t.Fatalf("start with -groups 2 on a 4-group directory: %v", err)
	}
	if err := checkLayout(dir, 1); err == nil || !strings.Contains(err.Error(), "created with -groups 4") {
		t.Fatalf("-groups 1 on a 4-group directory: %v", err)
	}
	if err := inspectGroups(dir, 3, os.Stdout); err == nil {
		t.Fatal("-inspect -groups 3 on a 4-group directory succeeded")
	}
	var out strings.Builder
	if err := inspectGroups(dir, 4, &out); err != nil || strings.Count(out.String(), `"last_index"`) != 4 {
		t.Fatalf("-inspect -groups 4: %v\n%s", err, out.String())
	}

	// A single-group server's directory.
	single := t.TempDir()
	if err := os.Mkdir(filepath.Join(single, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(single, 1); err != nil {
		t.Fatalf("-groups 1 on a single-group directory: %v", err)
	}
	if err := checkLayout(single, 4); err == nil || !strings.Contains(err.Error(), "single-group") {
		t.Fatalf("-groups 4 on a single-group directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(single, groupsFile)); err == nil {
		t.Fatal("a refused directory got a groups file")
	}
}

// TestGroupsJoinLeave: /join and /leave change every group, each on its
// own leader, and report every group's result. The groups compact their
// logs, so the new server catches up on each through InstallSnapshot.
func TestGroupsJoinLeave(t *testing.T) {
	const groups = 4
	c := newHostCluster(t, 3, groups, smallSnapshots)
	client := noRedirects(t, 40*time.Second)
	for g := raft.GroupID(1); g <= groups; g++ {
		c.leader(g)
	}
	// Joins and leaves go to followers of group 1, which send group 1's
	// change to its leader.
	lead1 := c.leader(1)
	follower1, other1 := c.nodes[(lead1+1)%3], c.nodes[(lead1+2)%3]
	const keys = 40
	for i := range keys {
		if r := do(t, client, "PUT", hostURL(c.nodes[0], fmt.Sprintf("/kv/j%d", i)), "x"); r.code != http.StatusNoContent {
			t.Fatalf("PUT j%d: %d %q", i, r.code, r.body)
		}
	}
	// Every group's log has lost its first entries on every server, so
	// only a snapshot can bring a new server up to date.
	eventuallyWithin(t, 10*time.Second, "every group to compact its log", func() bool {
		for _, n := range c.nodes {
			for g := uint64(1); g <= groups; g++ {
				logs, err := n.wal.Group(g)
				if err != nil {
					t.Fatalf("%s: group %d: %v", n.id, g, err)
				}
				if first, err := logs.FirstIndex(); err != nil || first <= 1 {
					return false
				}
			}
		}
		return true
	})

	trans, ln, d := listenHostPeer(t, "d", "127.0.0.1:0", "127.0.0.1:0")
	dn, err := newHostNode(testConfig(d.ID, nil), nil, t.TempDir(), trans, ln, append(c.peers[:3:3], d), groups, false)
	if err != nil {
		t.Fatalf("start d: %v", err)
	}
	t.Cleanup(func() {
		if err := dn.Close(); err != nil {
			t.Errorf("close d: %v", err)
		}
	})

	for _, bad := range []string{"/join?id=d", "/join?group=0&id=d&addr=x", "/join?group=5&id=d&addr=x", "/leave"} {
		if r := do(t, client, "POST", hostURL(c.nodes[0], bad), ""); r.code != http.StatusBadRequest {
			t.Errorf("POST %s: %d %q, want 400", bad, r.code, r.body)
		}
	}

	changed := func(r response, what string) {
		t.Helper()
		var res membershipResults
		if err := json.Unmarshal([]byte(r.body), &res); err != nil || r.code != http.StatusOK || res.Error != "" || len(res.Groups) != groups {
			t.Fatalf("%s: %d %q: %v", what, r.code, r.body, err)
		}
		for i, gc := range res.Groups {
			if gc.Group != raft.GroupID(i+1) || gc.Status != http.StatusOK || gc.Index == 0 {
				t.Fatalf("%s: group %d: %+v", what, i+1, gc)
			}
		}
	}
	changed(post(t, client, hostURL(follower1, "/join"), "application/json",
		fmt.Sprintf(`{"id": "d", "addr": %q}`, d.RaftAddr)), "join d")
	eventually(t, "d to hold every key", func() bool {
		for i := range keys {
			key := fmt.Sprintf("j%d", i)
			if _, ok := dn.group(groupOf(key, groups)).fsm.Get(key); !ok {
				return false
			}
		}
		return true
	})
	for i, snaps := range dn.snaps {
		if metas, err := snaps.List(); err != nil || len(metas) == 0 {
			t.Fatalf("group %d: d holds no snapshot (%v): it was not caught up by one", i+1, err)
		}
	}
	for g := raft.GroupID(1); g <= groups; g++ {
		confs, err := dn.group(g).status(t.Context())
		if err != nil || len(voters(confs.Latest.Servers)) != 4 {
			t.Fatalf("group %d after join: voters %v: %v", g, voters(confs.Latest.Servers), err)
		}
	}

	// An unknown server: every group refuses, and the answer names the
	// first.
	r := do(t, client, "POST", hostURL(follower1, "/leave?id=nobody"), "")
	var res membershipResults
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || r.code != http.StatusBadRequest ||
		!strings.HasPrefix(res.Error, "group 1: ") || len(res.Groups) != groups {
		t.Fatalf("leave nobody: %d %q: %v", r.code, r.body, err)
	}

	changed(do(t, client, "POST", hostURL(other1, "/leave?id=d"), ""), "leave d")
	for g := raft.GroupID(1); g <= groups; g++ {
		st, err := c.nodes[2].group(g).status(t.Context())
		if err != nil || len(voters(st.Latest.Servers)) != 3 || slices.Contains(voters(st.Latest.Servers), "d") {
			t.Fatalf("group %d after leave: voters %v: %v", g, voters(st.Latest.Servers), err)
		}
	}
}
