package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelraft/raft"
)

// post sends a POST with body of contentType (none if empty).
func post(t *testing.T, c *http.Client, url, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", url, err)
	}
	return response{code: resp.StatusCode, body: string(b), location: resp.Header.Get("Location")}
}

// getStatus reads GET /status of n.
func getStatus(t *testing.T, c *http.Client, n *node) status {
	t.Helper()
	r := do(t, c, "GET", "http://"+n.httpAddrs[n.id]+"/status", "")
	var st status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.code != http.StatusOK {
		t.Fatalf("status of %s: %d %q: %v", n.id, r.code, r.body, err)
	}
	return st
}

// voters returns the sorted IDs of the voters in servers.
func voters(servers []serverStatus) []raft.ServerID {
	var ids []raft.ServerID
	for _, s := range servers {
		if s.Suffrage == raft.Voter.String() {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestJoinLeave grows a running cluster by an empty server with POST /join,
// shrinks it with POST /leave, and shows that the new server catches up
// through InstallSnapshot streamed in chunks over TCP: the cluster
// snapshots and compacts its log every few entries, so by the time the
// server joins, the entries it lacks are gone from every log and only a
// snapshot can bring it up to date.
func TestJoinLeave(t *testing.T) {
	const chunk = 1 << 10 // the smallest SnapshotChunkSize
	tiny := func(cfg *raft.Config) {
		cfg.SnapshotThreshold = 8
		cfg.TrailingLogs = 2
		cfg.SnapshotInterval = 10 * time.Millisecond
		cfg.SnapshotChunkSize = chunk // a snapshot of most of the keys streams in about 10 chunks
		// Promote the new server only once it has really caught up.
		cfg.PromotionMaxLag = 4
		cfg.PromotionStableTime = 100 * time.Millisecond
	}
	nodes, peers := startClusterWith(t, 3, tiny)
	client := noRedirects(t, 40*time.Second)
	follow := &http.Client{Timeout: 40 * time.Second} // follows redirects to the leader
	t.Cleanup(follow.CloseIdleConnections)            // runs before the servers close

	leader := waitLeader(t, nodes)
	value := strings.Repeat("v", 300)
	const keys = 40
	for i := range keys {
		if r := do(t, follow, "PUT", nodeURL(leader, fmt.Sprintf("/kv/k%02d", i)), fmt.Sprintf("%s%d", value, i)); r.code != http.StatusNoContent {
			t.Fatalf("PUT k%02d: %d %q", i, r.code, r.body)
		}
	}
	// Wait until every server has compacted its log past half the keys, so
	// that a new server, whose log is empty, can only be caught up by a
	// snapshot, and one of at least half the keys (over 4 chunks).
	eventuallyWithin(t, 20*time.Second, "every server to compact its log", func() bool {
		for _, n := range nodes {
			if first, err := n.logs.FirstIndex(); err != nil || first <= keys/2 {
				return false
			}
		}
		return true
	})

	// A fourth server starts empty: no bootstrap, default snapshot settings
	// (SnapshotThreshold 8192, far more entries than this test writes, so
	// it never takes a snapshot of its own).
	trans, ln, dPeer := listenPeer(t, "d")
	d, err := newNode(testConfig("d", nil), nil, t.TempDir(), trans, ln, append(slices.Clone(peers), dPeer), false)
	if err != nil {
		t.Fatalf("start d: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close d: %v", err)
		}
	})
	if st := getStatus(t, client, d); len(st.Latest.Servers) != 0 || st.State != raft.Follower.String() {
		t.Fatalf("status of the empty server: %+v", st)
	}
	if snaps, err := d.snaps.List(); err != nil || len(snaps) != 0 {
		t.Fatalf("the empty server lists snapshots %v, %v", snaps, err)
	}

	// Bad requests are refused with 400 before anything changes.
	leader, follower := leaderAndFollower(t, nodes)
	for _, c := range []struct{ path, contentType, body string }{
		{"/join?id=d", "", ""},
		{"/join", "application/x-www-form-urlencoded", "addr=" + string(dPeer.RaftAddr)},
		{"/join?id=d&addr=x:1&voter=maybe", "", ""},
		{"/join", "application/json", "{not json"},
		{"/leave", "", ""},
		{"/leave?id=nosuch", "", ""},
	} {
		if r := post(t, client, nodeURL(leader, c.path), c.contentType, c.body); r.code != http.StatusBadRequest {
			t.Fatalf("POST %s %q: %d %q, want 400", c.path, c.body, r.code, r.body)
		}
	}
	if r := post(t, client, nodeURL(leader, "/leave?id=nosuch"), "", ""); !strings.Contains(r.body, raft.ErrUnknownServer.Error()) {
		t.Fatalf("leave of an unknown server: %q does not carry the library's error", r.body)
	}

	// A follower redirects /join to the leader; following the redirect
	// adds d, and answers once d votes in the committed configuration.
	joinPath := "/join?" + url.Values{"id": {"d"}, "addr": {string(dPeer.RaftAddr)}}.Encode()
	if r := post(t, client, nodeURL(follower, joinPath), "", ""); r.code != http.StatusTemporaryRedirect || r.location != nodeURL(leader, joinPath) {
		t.Fatalf("join on a follower: %d Location %q, want 307 %q", r.code, r.location, nodeURL(leader, joinPath))
	}
	r := post(t, follow, nodeURL(follower, joinPath), "", "")
	var res membershipResult
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || r.code != http.StatusOK || res.Index == 0 {
		t.Fatalf("join d: %d %q: %v", r.code, r.body, err)
	}

	// d catches up: it serves every key from its own state.
	eventuallyWithin(t, 20*time.Second, "d to serve every key", func() bool {
		for i := range keys {
			r := do(t, client, "GET", nodeURL(d, fmt.Sprintf("/kv/k%02d?consistency=stale", i)), "")
			if r.code != http.StatusOK || r.body != fmt.Sprintf("%s%d", value, i) {
				return false
			}
		}
		return true
	})
	// ... and it got there through InstallSnapshot: its store holds a
	// snapshot it cannot have taken itself (it snapshots only after 8192
	// applied entries), covering entries that no server's log still held
	// when d joined (the keys written after it came by AppendEntries), long
	// enough to have been streamed in several chunks; and its log does not
	// start at entry 1.
	snaps, err := d.snaps.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("d lists no snapshot after catching up: %v", err)
	}
	if snaps[0].Index <= 1 || snaps[0].Size < 4*chunk {
		t.Fatalf("d's snapshot %+v: want one past entry 1, at least 4 chunks long", snaps[0])
	}
	if first, err := d.logs.FirstIndex(); err != nil || first == 1 {
		t.Fatalf("d's log starts at %d (%v): want it to start after the installed snapshot", first, err)
	}
	t.Logf("d installed snapshot %s at index %d (%d bytes, %d-byte chunks)", snaps[0].ID, snaps[0].Index, snaps[0].Size, chunk)

	// Remove one of the original followers (a JSON body this time).
	leader = waitLeader(t, nodes)
	var gone *node
	for _, n := range nodes {
		if n != leader {
			gone = n
			break
		}
	}
	r = post(t, follow, nodeURL(leader, "/leave"), "application/json", fmt.Sprintf(`{"id":%q}`, gone.id))
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || r.code != http.StatusOK || res.Index == 0 {
		t.Fatalf("leave %s: %d %q: %v", gone.id, r.code, r.body, err)
	}

	var want []raft.ServerID
	for _, n := range append(slices.Clone(nodes), d) {
		if n != gone {
			want = append(want, n.id)
		}
	}
	slices.Sort(want)
	var rest []*node
	for _, n := range nodes {
		if n != gone {
			rest = append(rest, n)
		}
	}
	leader = waitLeader(t, append(rest, d))
	st := getStatus(t, client, leader)
	if got := voters(st.Committed.Servers); !slices.Equal(got, want) || len(st.Committed.Servers) != len(want) ||
		len(st.Committed.Old) != 0 || st.Committed.Index < res.Index {
		t.Fatalf("committed configuration on leader %s: %+v, want voters %v", leader.id, st.Committed, want)
	}
	if got := voters(st.Latest.Servers); !slices.Equal(got, want) || len(st.Latest.Old) != 0 ||
		len(st.Configuration) != len(want) {
		t.Fatalf("latest configuration on leader %s: %+v, want voters %v", leader.id, st.Latest, want)
	}

	// Writes still commit, and reach d.
	if r := do(t, follow, "PUT", nodeURL(leader, "/kv/after"), "leave"); r.code != http.StatusNoContent {
		t.Fatalf("PUT after leave: %d %q", r.code, r.body)
	}
	eventually(t, "d to apply the write after the leave", func() bool {
		r := do(t, client, "GET", nodeURL(d, "/kv/after?consistency=stale"), "")
		return r.code == http.StatusOK && r.body == "leave"
	})
}

// TestMembershipErrors checks the status codes and texts of failed
// membership changes that a live cluster cannot produce on demand.
func TestMembershipErrors(t *testing.T) {
	n := &node{id: "a", httpAddrs: map[raft.ServerID]string{"b": "127.0.0.1:8002"}}
	for _, c := range []struct {
		err      error
		code     int
		location string
	}{
		{fmt.Errorf("wrapped: %w", raft.ErrConfigChangeInProgress), http.StatusConflict, ""},
		{raft.ErrLeadershipTransferInProgress, http.StatusConflict, ""},
		{fmt.Errorf("%w: no voter", raft.ErrInvalidConfiguration), http.StatusBadRequest, ""},
		{fmt.Errorf("%w: x", raft.ErrUnknownServer), http.StatusBadRequest, ""},
		{&raft.NotLeaderError{}, http.StatusServiceUnavailable, ""},
		{&raft.NotLeaderError{LeaderID: "c"}, http.StatusServiceUnavailable, ""},
		{&raft.NotLeaderError{LeaderID: "b"}, http.StatusTemporaryRedirect, "http://127.0.0.1:8002/join?id=x&addr=y"},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, ""},
		{raft.ErrLeadershipLost, http.StatusServiceUnavailable, ""},
		{errors.New("raft: shut down"), http.StatusServiceUnavailable, ""},
	} {
		w := httptest.NewRecorder()
		n.membershipError(w, httptest.NewRequest("POST", "/join?id=x&addr=y", nil), "join x", c.err)
		if w.Code != c.code || w.Header().Get("Location") != c.location {
			t.Errorf("%v: %d Location %q, want %d %q", c.err, w.Code, w.Header().Get("Location"), c.code, c.location)
		}
		var nle *raft.NotLeaderError
		if c.code != http.StatusTemporaryRedirect && !errors.As(c.err, &nle) && !errors.Is(c.err, context.DeadlineExceeded) &&
			!strings.Contains(w.Body.String(), c.err.Error()) {
			t.Errorf("%v: body %q does not carry the error", c.err, w.Body.String())
		}
	}
}
