package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
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
	// membershipTimeout bounds a join or leave: a joining voter must catch
	// up (possibly through InstallSnapshot) before it is promoted.
	membershipTimeout = 30 * time.Second
	// maxFormSize bounds a join or leave body.
	maxFormSize = 64 << 10
)

// handler serves one server's HTTP API.
func (n *node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", n.handlePut)
	mux.HandleFunc("DELETE /kv/{key}", n.handleDelete)
	mux.HandleFunc("GET /kv/{key}", n.handleGet)
	mux.HandleFunc("GET /status", n.handleStatus)
	mux.HandleFunc("POST /join", n.handleJoin)
	mux.HandleFunc("POST /leave", n.handleLeave)
	mux.Handle("GET /metrics", n.metrics)
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

// write proposes c and answers once it is applied on this server; a
// follower forwards it to the leader (or, with forwarding off, redirects).
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
	var mode raft.ReadMode
	switch consistency := r.URL.Query().Get("consistency"); consistency {
	case "stale":
		mode = raft.Stale
	case "", "default":
		mode = raft.Lease
	case "linearizable", "consistent":
		mode = raft.Linearizable
	default:
		http.Error(w, fmt.Sprintf("unknown consistency %q: want stale, default or linearizable", consistency),
			http.StatusBadRequest)
		return
	}
	// Read returns once the local map reflects what the mode promises.
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	if _, err := n.raft.Read(ctx, mode); err != nil {
		n.raftError(w, r, err)
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
	case errors.Is(err, raft.ErrFollowerReadFailed):
		http.Error(w, "follower read failed: the leader did not answer; retry", http.StatusServiceUnavailable)
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
	ID           raft.ServerID `json:"id"`
	State        string        `json:"state"`
	Term         uint64        `json:"term"`
	Leader       leaderInfo    `json:"leader"`
	LastLogIndex uint64        `json:"last_log_index"`
	CommitIndex  uint64        `json:"commit_index"`
	AppliedIndex uint64        `json:"applied_index"`
	// Configuration is the servers of the latest configuration (as
	// Latest.Servers), kept for clients that read only this.
	Configuration []serverStatus `json:"configuration"`
	// Committed is the newest configuration this server knows committed;
	// Latest is the newest in its log, which it already uses (during a
	// membership change not committed yet, and joint while Old is set).
	Committed configStatus `json:"committed_configuration"`
	Latest    configStatus `json:"latest_configuration"`
}

// configStatus is one configuration in GET /status.
type configStatus struct {
	Index   uint64         `json:"index"`
	Servers []serverStatus `json:"servers"`
	Old     []serverStatus `json:"old,omitempty"`
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
	st, err := n.status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

// status describes this server's replica: what GET /status shows of it.
func (n *node) status(ctx context.Context) (status, error) {
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
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	confs, err := n.raft.GetConfigurations(ctx)
	if err != nil {
		return status{}, fmt.Errorf("get configurations: %w", err)
	}
	st.Committed = n.configStatus(confs.CommittedIndex, confs.Committed)
	st.Latest = n.configStatus(confs.LatestIndex, confs.Latest)
	st.Configuration = st.Latest.Servers
	return st, nil
}

// configStatus describes configuration conf, the entry at index. Servers
// is never nil (an empty server shows []); Old is nil unless conf is joint.
func (n *node) configStatus(index uint64, conf raft.Configuration) configStatus {
	cs := configStatus{Index: index, Servers: []serverStatus{}}
	for _, s := range conf.Servers {
		cs.Servers = append(cs.Servers, n.serverStatus(s))
	}
	for _, s := range conf.Old {
		cs.Old = append(cs.Old, n.serverStatus(s))
	}
	return cs
}

func (n *node) serverStatus(s raft.Server) serverStatus {
	return serverStatus{ID: s.ID, RaftAddr: s.Address, HTTPAddr: n.httpAddrs[s.ID], Suffrage: s.Suffrage.String()}
}

// membershipRequest is the input of POST /join and POST /leave: form
// values (query string or an application/x-www-form-urlencoded body), or a
// JSON body when Content-Type is application/json.
type membershipRequest struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter *bool  `json:"voter"`
}

// parseMembershipRequest reads a membershipRequest from r.
func parseMembershipRequest(w http.ResponseWriter, r *http.Request) (membershipRequest, error) {
	var req membershipRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return req, fmt.Errorf("decode JSON body: %w", err)
		}
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, fmt.Errorf("parse form: %w", err)
	}
	req.ID, req.Addr = r.Form.Get("id"), r.Form.Get("addr")
	if v := r.Form.Get("voter"); v != "" {
		voter, err := strconv.ParseBool(v)
		if err != nil {
			return req, fmt.Errorf("voter=%q: want true or false", v)
		}
		req.Voter = &voter
	}
	return req, nil
}

// membershipResult is the body of a successful POST /join or /leave.
type membershipResult struct {
	// Index is the log index of the committed configuration entry.
	Index uint64 `json:"index"`
}

// handleJoin adds server id at raft address addr: as a voter (promoted once
// it has caught up) unless voter=false, then as a nonvoter.
func (n *node) handleJoin(w http.ResponseWriter, r *http.Request) {
	req, err := parseMembershipRequest(w, r)
	if err != nil {
		http.Error(w, fmt.Sprintf("join: %v", err), http.StatusBadRequest)
		return
	}
	if req.ID == "" || req.Addr == "" {
		http.Error(w, "join: want id and addr (the new server's raft ID and raft address)", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	id, addr := raft.ServerID(req.ID), raft.ServerAddress(req.Addr)
	var f raft.IndexFuture
	if req.Voter == nil || *req.Voter {
		f = n.raft.AddVoter(ctx, id, addr)
	} else {
		f = n.raft.AddNonvoter(ctx, id, addr)
	}
	n.membershipDone(w, r, "join "+req.ID, f)
}

// handleLeave removes server id from the cluster.
func (n *node) handleLeave(w http.ResponseWriter, r *http.Request) {
	req, err := parseMembershipRequest(w, r)
	if err != nil {
		http.Error(w, fmt.Sprintf("leave: %v", err), http.StatusBadRequest)
		return
	}
	if req.ID == "" {
		http.Error(w, "leave: want id (the raft ID of the server to remove)", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout)
	defer cancel()
	n.membershipDone(w, r, "leave "+req.ID, n.raft.RemoveServer(ctx, raft.ServerID(req.ID)))
}

// membershipDone waits for a membership change and answers with the index
// of its configuration entry, or with membershipError.
func (n *node) membershipDone(w http.ResponseWriter, r *http.Request, what string, f raft.IndexFuture) {
	if err := f.Error(); err != nil {
		n.membershipError(w, r, what, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(membershipResult{Index: f.Index()})
}

// membershipError answers a failed membership change: 400 for a change
// the library refuses as invalid, 409 while another change or a leadership
// transfer is under way, 504 on timeout, 503 if leadership was lost, and
// otherwise as raftError does (a redirect to the leader, or 503).
func (n *node) membershipError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, raft.ErrInvalidConfiguration), errors.Is(err, raft.ErrUnknownServer):
		http.Error(w, fmt.Sprintf("%s: %v", what, err), http.StatusBadRequest)
	case errors.Is(err, raft.ErrConfigChangeInProgress), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		http.Error(w, fmt.Sprintf("%s: %v; retry later", what, err), http.StatusConflict)
	case errors.Is(err, context.DeadlineExceeded):
		http.Error(w, fmt.Sprintf("%s: timed out: the change may or may not complete", what), http.StatusGatewayTimeout)
	case errors.Is(err, raft.ErrFollowerReadFailed):
		http.Error(w, "follower read failed: the leader did not answer; retry", http.StatusServiceUnavailable)
	case errors.Is(err, raft.ErrLeadershipLost):
		http.Error(w, fmt.Sprintf("%s: %v: the change may still complete under the next leader", what, err),
			http.StatusServiceUnavailable)
	default:
		n.raftError(w, r, err)
	}
}
