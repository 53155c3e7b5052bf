package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/transport/tcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startCluster starts size servers over TCP loopback, each in a temporary
// directory, and stops them when the test ends.
func startCluster(t *testing.T, size int) ([]*node, []peer) {
	t.Helper()
	return startClusterWith(t, size, nil)
}

// testConfig is the configuration of test server id: fast heartbeats and
// elections, then tweak (if not nil).
func testConfig(id raft.ServerID, tweak func(*raft.Config)) *raft.Config {
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	if tweak != nil {
		tweak(cfg)
	}
	return cfg
}

// startClusterWith is startCluster with tweak applied to every server's
// configuration.
func startClusterWith(t *testing.T, size int, tweak func(*raft.Config)) ([]*node, []peer) {
	t.Helper()
	var (
		peers  []peer
		transs []*tcp.Transport
		lns    []net.Listener
	)
	ids := []raft.ServerID{"a", "b", "c", "d", "e"}[:size]
	for _, id := range ids {
		trans, ln, p := listenPeer(t, id)
		transs, lns = append(transs, trans), append(lns, ln)
		peers = append(peers, p)
	}
	var nodes []*node
	for i, p := range peers {
		n, err := newNode(testConfig(p.ID, tweak), nil, t.TempDir(), transs[i], lns[i], peers, true)
		if err != nil {
			for j := i + 1; j < len(peers); j++ {
				transs[j].Close()
				lns[j].Close()
			}
			t.Fatalf("start %s: %v", p.ID, err)
		}
		nodes = append(nodes, n)
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("close %s: %v", n.id, err)
			}
		})
	}
	return nodes, peers
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 5*time.Second, what, cond)
}

// eventuallyWithin polls cond until it holds or d passes.
func eventuallyWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func waitLeader(t *testing.T, nodes []*node) *node {
	t.Helper()
	var leader *node
	eventually(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

type response struct {
	code     int
	body     string
	location string
}

func do(t *testing.T, c *http.Client, method, url, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{code: resp.StatusCode, body: string(b), location: resp.Header.Get("Location")}
}

// noRedirects returns an HTTP client that reports redirects instead of
// following them, closed before the servers are (t.Cleanup order).
func noRedirects(t *testing.T, timeout time.Duration) *http.Client {
	c := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// nodeURL is path on n's HTTP server.
func nodeURL(n *node, path string) string { return "http://" + n.httpAddrs[n.id] + path }

// leaderAndFollower waits for a leader and for a follower that knows it.
func leaderAndFollower(t *testing.T, nodes []*node) (leader, follower *node) {
	t.Helper()
	leader = waitLeader(t, nodes)
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	eventually(t, "the follower to know the leader", func() bool {
		return raft.ServerID(follower.raft.Stats()["leader_id"]) == leader.id
	})
	return leader, follower
}

func TestKV(t *testing.T) {
	nodes, peers := startCluster(t, 3)
	client := noRedirects(t, 10*time.Second)
	leader, follower := leaderAndFollower(t, nodes)

	if r := do(t, client, "PUT", nodeURL(leader, "/kv/hello"), "world"); r.code != http.StatusNoContent {
		t.Fatalf("PUT on leader: %d %q", r.code, r.body)
	}
	if r := do(t, client, "GET", nodeURL(leader, "/kv/hello?consistency=linearizable"), ""); r.code != 200 || r.body != "world" {
		t.Fatalf("linearizable GET on leader: %d %q", r.code, r.body)
	}

	// A follower forwards writes and serves linearizable reads (follower
	// reads); lease reads only the leader serves.
	if r := do(t, client, "GET", nodeURL(follower, "/kv/hello?consistency=linearizable"), ""); r.code != 200 || r.body != "world" {
		t.Fatalf("linearizable GET on follower: %d %q", r.code, r.body)
	}
	if r := do(t, client, "PUT", nodeURL(follower, "/kv/other"), "forwarded"); r.code != http.StatusNoContent {
		t.Fatalf("PUT on follower: %d %q", r.code, r.body)
	}
	if r := do(t, client, "GET", nodeURL(follower, "/kv/other?consistency=stale"), ""); r.code != 200 || r.body != "forwarded" {
		t.Fatalf("stale GET on the follower right after its forwarded PUT: %d %q", r.code, r.body)
	}
	if r := do(t, client, "GET", nodeURL(leader, "/kv/other"), ""); r.code != 200 || r.body != "forwarded" {
		t.Fatalf("default GET on leader: %d %q", r.code, r.body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/kv/hello"},
		{"GET", "/kv/hello?consistency=default"},
	} {
		r := do(t, client, c.method, nodeURL(follower, c.path), "x")
		if want := nodeURL(leader, c.path); r.code != http.StatusTemporaryRedirect || r.location != want {
			t.Fatalf("%s %s on follower: %d Location %q, want 307 %q", c.method, c.path, r.code, r.location, want)
		}
	}
	eventually(t, "a stale read on the follower", func() bool {
		r := do(t, client, "GET", nodeURL(follower, "/kv/hello?consistency=stale"), "")
		return r.code == 200 && r.body == "world"
	})

	if r := do(t, client, "GET", nodeURL(leader, "/kv/hello?consistency=bogus"), ""); r.code != http.StatusBadRequest {
		t.Fatalf("GET with bad consistency: %d %q", r.code, r.body)
	}
	if r := do(t, client, "DELETE", nodeURL(leader, "/kv/hello"), ""); r.code != http.StatusNoContent {
		t.Fatalf("DELETE on leader: %d %q", r.code, r.body)
	}
	if r := do(t, client, "GET", nodeURL(leader, "/kv/hello"), ""); r.code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d %q", r.code, r.body)
	}

	r := do(t, client, "GET", nodeURL(follower, "/status"), "")
	var st status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.code != 200 {
		t.Fatalf("status: %d %q: %v", r.code, r.body, err)
	}
	if st.ID != follower.id || st.State != raft.Follower.String() || st.Leader.ID != leader.id ||
		st.Leader.HTTPAddr != leader.httpAddrs[leader.id] || len(st.Configuration) != len(peers) || st.AppliedIndex == 0 {
		t.Fatalf("status of follower %s: %+v", follower.id, st)
	}

	// Stop the leader: a new one is elected and serves what was written.
	if r := do(t, client, "PUT", nodeURL(leader, "/kv/survivor"), "yes"); r.code != http.StatusNoContent {
		t.Fatalf("PUT on leader: %d %q", r.code, r.body)
	}
	client.CloseIdleConnections()
	if err := leader.Close(); err != nil {
		t.Fatalf("stop leader %s: %v", leader.id, err)
	}
	var rest []*node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	next := waitLeader(t, rest)
	eventually(t, "the new leader to serve the value", func() bool {
		r := do(t, client, "GET", nodeURL(next, "/kv/survivor?consistency=linearizable"), "")
		return r.code == 200 && r.body == "yes"
	})
	if r := do(t, client, "PUT", nodeURL(next, "/kv/after"), "failover"); r.code != http.StatusNoContent {
		t.Fatalf("PUT on new leader %s: %d %q", next.id, r.code, r.body)
	}
}

// With forwarding off, a follower redirects writes to the leader.
func TestFollowerRedirectsWritesWithoutForwarding(t *testing.T) {
	nodes, _ := startClusterWith(t, 3, func(cfg *raft.Config) { cfg.ForwardingDisabled = true })
	client := noRedirects(t, 10*time.Second)
	leader, follower := leaderAndFollower(t, nodes)
	for _, c := range []struct{ method, path string }{
		{"PUT", "/kv/other"},
		{"DELETE", "/kv/hello"},
	} {
		r := do(t, client, c.method, nodeURL(follower, c.path), "x")
		if want := nodeURL(leader, c.path); r.code != http.StatusTemporaryRedirect || r.location != want {
			t.Fatalf("%s %s on follower: %d Location %q, want 307 %q", c.method, c.path, r.code, r.location, want)
		}
	}
}

func TestParsePeers(t *testing.T) {
	peers, err := parsePeers("a=127.0.0.1:7001=127.0.0.1:8001, b=h:2=h:3")
	if err != nil || len(peers) != 2 || peers[1] != (peer{ID: "b", RaftAddr: "h:2", HTTPAddr: "h:3"}) {
		t.Fatalf("parsePeers: %+v, %v", peers, err)
	}
	for _, bad := range []string{"", "a=b", "a=b=c=d", "a=x=y,a=x=y", "=x=y"} {
		if _, err := parsePeers(bad); err == nil {
			t.Errorf("parsePeers(%q) succeeded", bad)
		}
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	strings.Builder
	closed, canceled bool
}

func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

func TestFSMSnapshotRestore(t *testing.T) {
	f := newFSM()
	for i, c := range []command{{Op: "put", Key: "a", Value: "1"}, {Op: "put", Key: "b", Value: "2"}, {Op: "delete", Key: "a"}} {
		data, _ := json.Marshal(c)
		if resp := f.Apply(&raft.Log{Index: uint64(i + 1), Data: data}); resp != nil {
			t.Fatalf("Apply %+v: %v", c, resp)
		}
	}
	if resp := f.Apply(&raft.Log{Index: 4, Data: []byte("junk")}); resp == nil {
		t.Fatal("Apply of a malformed command returned nil")
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed || sink.canceled {
		t.Fatalf("Persist: %v (closed %v, canceled %v)", err, sink.closed, sink.canceled)
	}
	snap.Release()

	g := newFSM()
	data, _ := json.Marshal(command{Op: "put", Key: "stale", Value: "x"})
	g.Apply(&raft.Log{Index: 1, Data: data})
	if err := g.Restore(io.NopCloser(strings.NewReader(sink.String()))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if v, ok := g.Get("b"); !ok || v != "2" {
		t.Fatalf("b = %q, %v after restore", v, ok)
	}
	for _, k := range []string{"a", "stale"} {
		if _, ok := g.Get(k); ok {
			t.Fatalf("%s survived restore", k)
		}
	}
}

// listenPeer opens a server's Raft transport and HTTP listener on loopback
// ports and returns them with its peer entry.
func listenPeer(t *testing.T, id raft.ServerID) (*tcp.Transport, net.Listener, peer) {
	t.Helper()
	trans, err := tcp.New("127.0.0.1:0", tcp.Options{})
	if err != nil {
		t.Fatalf("transport: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		trans.Close()
		t.Fatalf("listen: %v", err)
	}
	return trans, ln, peer{ID: id, RaftAddr: raft.ServerAddress(trans.Addr().String()), HTTPAddr: ln.Addr().String()}
}
