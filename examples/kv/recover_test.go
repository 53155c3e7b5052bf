package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/transport/tcp"
)

// TestRecoverAfterQuorumLoss is the README's quorum-loss runbook on the
// kv server: of three servers two are lost for good; -inspect shows the
// survivor's state, -recover makes it the only voter, and it serves every
// key acknowledged before the loss, and new writes. While the server runs,
// both refuse its data directory.
func TestRecoverAfterQuorumLoss(t *testing.T) {
	var (
		peers  []peer
		transs []*tcp.Transport
		lns    []net.Listener
		dirs   []string
		nodes  []*node
	)
	for _, id := range []raft.ServerID{"a", "b", "c"} {
		trans, ln, p := listenPeer(t, id)
		transs, lns, peers = append(transs, trans), append(lns, ln), append(peers, p)
		dirs = append(dirs, t.TempDir())
	}
	for i, p := range peers {
		n, err := newNode(testConfig(p.ID, nil), nil, dirs[i], transs[i], lns[i], peers, true)
		if err != nil {
			t.Fatalf("start %s: %v", p.ID, err)
		}
		nodes = append(nodes, n)
		t.Cleanup(func() { n.Close() })
	}
	leader := waitLeader(t, nodes)
	c := noRedirects(t, 5*time.Second)
	for i := range 20 {
		if r := do(t, c, "PUT", nodeURL(leader, fmt.Sprintf("/kv/k%d", i)), fmt.Sprintf("v%d", i)); r.code/100 != 2 {
			t.Fatalf("PUT k%d: %d %s", i, r.code, r.body)
		}
	}
	survivor := nodes[0]
	eventually(t, "the survivor to apply every write", func() bool {
		return survivor.raft.AppliedIndex() >= leader.raft.AppliedIndex()
	})

	var out bytes.Buffer
	if err := inspectDir(dirs[0], &out); err == nil {
		t.Fatal("-inspect opened the data directory of a running server")
	}
	if err := recoverDir(dirs[0], "a", "a", peers, &out); err == nil {
		t.Fatal("-recover rewrote the data directory of a running server")
	}
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatalf("close %s: %v", n.id, err)
		}
	}

	out.Reset()
	if err := inspectDir(dirs[0], &out); err != nil {
		t.Fatalf("-inspect: %v", err)
	}
	var st struct {
		LastIndex uint64            `json:"last_index"`
		Servers   []json.RawMessage `json:"servers"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("-inspect printed %q: %v", out.String(), err)
	}
	if st.LastIndex < 21 || len(st.Servers) != 3 {
		t.Fatalf("-inspect: last index %d with %d servers, want at least 21 with 3:\n%s", st.LastIndex, len(st.Servers), out.String())
	}
	out.Reset()
	if err := recoverDir(dirs[0], "a", "a", peers, &out); err != nil {
		t.Fatalf("-recover: %v", err)
	}
	if err := recoverDir(dirs[0], "a", "x", peers, &out); err == nil {
		t.Fatal("-recover accepted an ID not in -peers")
	}

	// The survivor, alone now, elects itself and has every key.
	trans, ln, p := listenPeer(t, "a")
	n, err := newNode(testConfig("a", nil), nil, dirs[0], trans, ln, []peer{p}, true)
	if err != nil {
		t.Fatalf("restart a: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	waitLeader(t, []*node{n})
	for i := range 20 {
		if r := do(t, c, "GET", nodeURL(n, fmt.Sprintf("/kv/k%d", i)), ""); r.code != 200 || r.body != fmt.Sprintf("v%d", i) {
			t.Fatalf("GET k%d after recovery: %d %q", i, r.code, r.body)
		}
	}
	if r := do(t, c, "PUT", nodeURL(n, "/kv/new"), "x"); r.code/100 != 2 {
		t.Fatalf("PUT after recovery: %d %s", r.code, r.body)
	}
}
