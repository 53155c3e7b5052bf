package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/keelraft/raft"
)

const (
	// requestTimeout bounds the Raft work of one request.
	requestTimeout = 5 * time.Second
	// maxValueSize bounds a PUT body.
	maxValueSize = 1 << 20
)

// handler serves one server's HTTP API.
func (n *node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", n.handlePut)
	mux.HandleFunc("DELETE /kv/{key}", n.handleDelete)
	mux.HandleFunc("GET /kv/{key}", n.handleGet)
	mux.HandleFunc("GET /status", n.handleStatus)
	return mux
}

func (n *node) handlePut(w http.ResponseWriter, r *http.Request) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueSize))
	if err != nil {
		http.Error(w, fmt.Sprintf("read value: %v", err), http.StatusBadRequest)
		return
	}
	n.write(w, r, command{Op: "put", Key: r.PathValue("key"), Value: string(value)})
}

func (n *node) handleDelete(w http.ResponseWriter, r *http.Request) {
	n.write(w, r, command{Op: "delete", Key: r.PathValue("key")})
}

// write proposes c and answers once it is applied on this server, the
// leader.
func (n *node) write(w http.ResponseWriter, r *http.Request, c command) {
	data, err := json.Marshal(c)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode command: %v", err), http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	f := n.raft.Apply(ctx, data)
	if err := f.Error(); err != nil {
		n.raftError(w, r, err)
		return
	}
	if err, ok := f.Response().(error); ok {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *node) handleGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	switch consistency := r.URL.Query().Get("consistency"); consistency {
	case "stale":
		// The local map, whatever this server has applied so far.
	case "", "default", "linearizable":
		// Only the leader answers: ReadIndex confirms it still leads and
		// names the commit index to wait for; after WaitApplied the local
		// map holds every write committed before the request. "default" is
		// currently the same as "linearizable"; lease-based reads, which
		// skip the heartbeat round, come later.
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		index, err := n.raft.ReadIndex(ctx)
		if err == nil {
			err = n.raft.WaitApplied(ctx, index)
		}
		if err != nil {
			n.raftError(w, r, err)
			return
		}
	default:
		http.Error(w, fmt.Sprintf("unknown consistency %q: want stale, default or linearizable", consistency),
			http.StatusBadRequest)
		return
	}
	value, ok := n.fsm.Get(key)
	if !ok {
		http.Error(w, fmt.Sprintf("key %q not found", key), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	io.WriteString(w, value)
}

// raftError answers a failed Raft call: a redirect to the leader when this
// server is not the leader and the leader's HTTP address is known, 503
// naming the leader's ID (if any) when it is not, and 503 or 504 otherwise.
func (n *node) raftError(w http.ResponseWriter, r *http.Request, err error) {
	var nle *raft.NotLeaderError
	switch {
	case errors.As(err, &nle):
		if httpAddr, ok := n.httpAddrs[nle.LeaderID]; ok && nle.LeaderID != "" {
			w.Header().Set("X-Raft-Leader", string(nle.LeaderID))
			http.Redirect(w, r, "http://"+httpAddr+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		if nle.LeaderID != "" {
			w.Header().Set("X-Raft-Leader", string(nle.LeaderID))
			http.Error(w, fmt.Sprintf("not the leader; leader is %s (HTTP address unknown)", nle.LeaderID),
				http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "not the leader; no leader known, retry later", http.StatusServiceUnavailable)
	case errors.Is(err, raft.ErrLeadershipLost):
		http.Error(w, "leadership lost: the write may or may not have been applied", http.StatusServiceUnavailable)
	case errors.Is(err, context.DeadlineExceeded):
		http.Error(w, "timed out: a write may or may not have been applied", http.StatusGatewayTimeout)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// status is the body of GET /status.
type status struct {
	ID            raft.ServerID  `json:"id"`
	State         string         `json:"state"`
	Term          uint64         `json:"term"`
	Leader        leaderInfo     `json:"leader"`
	LastLogIndex  uint64         `json:"last_log_index"`
	CommitIndex   uint64         `json:"commit_index"`
	AppliedIndex  uint64         `json:"applied_index"`
	Configuration []serverStatus `json:"configuration"`
}

type leaderInfo struct {
	ID       raft.ServerID      `json:"id"`
	RaftAddr raft.ServerAddress `json:"raft_addr"`
	HTTPAddr string             `json:"http_addr,omitempty"`
}

type serverStatus struct {
	ID       raft.ServerID      `json:"id"`
	RaftAddr raft.ServerAddress `json:"raft_addr"`
	HTTPAddr string             `json:"http_addr,omitempty"`
	Suffrage string             `json:"suffrage"`
}

func (n *node) handleStatus(w http.ResponseWriter, r *http.Request) {
	stats := n.raft.Stats()
	u := func(key string) uint64 {
		v, _ := strconv.ParseUint(stats[key], 10, 64) // keel writes them with FormatUint
		return v
	}
	leaderID := raft.ServerID(stats["leader_id"])
	st := status{
		ID:    n.id,
		State: stats["state"],
		Term:  u("term"),
		Leader: leaderInfo{
			ID:       leaderID,
			RaftAddr: raft.ServerAddress(stats["leader_addr"]),
			HTTPAddr: n.httpAddrs[leaderID],
		},
		LastLogIndex:  u("last_log_index"),
		CommitIndex:   u("commit_index"),
		AppliedIndex:  u("applied_index"),
		Configuration: []serverStatus{},
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	conf, err := n.raft.GetConfiguration(ctx)
	if err != nil {
		http.Error(w, fmt.Sprintf("get configuration: %v", err), http.StatusServiceUnavailable)
		return
	}
	for _, s := range conf.Servers {
		st.Configuration = append(st.Configuration, serverStatus{
			ID: s.ID, RaftAddr: s.Address, HTTPAddr: n.httpAddrs[s.ID], Suffrage: s.Suffrage.String(),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}
