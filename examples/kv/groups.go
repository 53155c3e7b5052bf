package main

// Many groups: with -groups N (N > 1) a server runs N Raft groups on one
// raft.Host, and each key belongs to one of them. This file holds that
// server; the single-group server (main.go) is untouched by it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/filesnap"
	"github.com/keelraft/raft/storage/multiwal"
	"github.com/keelraft/raft/transport/tcp"
)

const (
	// maxGroups bounds -groups.
	maxGroups = 1024
	// groupsFile, in a multi-group server's data directory, records the
	// number of groups the directory was created with.
	groupsFile = "groups"
)

// groupOf returns the group of key among groups: 1 + FNV-1a 64 of the key
// mod groups.
func groupOf(key string, groups int) raft.GroupID {
	h := fnv.New64a()
	h.Write([]byte(key)) // a hash.Hash never fails
	return raft.GroupID(1 + h.Sum64()%uint64(groups))
}

// checkLayout makes sure the data directory dir is one for a server of
// groups groups, and never lets a directory be started with another
// number of groups (which would silently reshard the keys). A new
// multi-group directory gets its groups file here; a single-group
// directory (groups == 1) has none, as before -groups existed, and
// checkLayout writes nothing for it.
func checkLayout(dir string, groups int) error {
	b, err := os.ReadFile(filepath.Join(dir, groupsFile))
	switch {
	case err == nil:
		recorded, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil || recorded < 2 {
			return fmt.Errorf("data directory %s: %s holds %q, not a number of groups", dir, groupsFile, b)
		}
		if recorded != groups {
			return fmt.Errorf("data directory %s was created with -groups %d; refusing to start it with -groups %d "+
				"(that would move keys to other groups: resharding is not supported)", dir, recorded, groups)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data directory %s: read %s: %w", dir, groupsFile, err)
	}
	if groups == 1 {
		if exists(filepath.Join(dir, "wal")) {
			return fmt.Errorf("data directory %s holds a multi-group log (wal) but no %s file; refusing to start it with -groups 1", dir, groupsFile)
		}
		return nil
	}
	for _, single := range []string{"log", "stable", "snapshots"} {
		if exists(filepath.Join(dir, single)) {
			return fmt.Errorf("data directory %s holds a single-group server's data (%s); refusing to start it with -groups %d "+
				"(resharding is not supported)", dir, single, groups)
		}
	}
	if exists(filepath.Join(dir, "wal")) {
		return fmt.Errorf("data directory %s holds a multi-group log (wal) but no %s file; refusing to guess its number of groups", dir, groupsFile)
	}
	return writeGroupsFile(dir, groups)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeGroupsFile durably records groups in dir: a temporary file, synced,
// renamed into place, and the directory synced.
func writeGroupsFile(dir string, groups int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	tmp := filepath.Join(dir, groupsFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("record groups: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", groups)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, groupsFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record groups in %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// hostNode is one running multi-group server: one raft.Host on one TCP
// host transport, one multiwal log shared by every group, a snapshot store
// per group, and the HTTP server. Each group is served by a node that
// holds only its id, raft, fsm and httpAddrs, so the single-group
// handlers (http.go) serve it unchanged.
type hostNode struct {
	id        raft.ServerID
	groups    []*node // groups[g-1] is group g
	httpAddrs map[raft.ServerID]string

	trans   *tcp.HostTransport
	host    *raft.Host
	wal     *multiwal.WAL
	snaps   []*filesnap.Store
	http    *http.Server
	served  chan error
	metrics http.Handler
	// client sends a group's /join or /leave to that group's leader.
	client *http.Client

	closeOnce sync.Once
	closeErr  error
}

// startHostNode is startNode for a server of groups groups.
func startHostNode(id raft.ServerID, dir, raftBind string, advertise raft.ServerAddress, httpBind string,
	peers []peer, groups int, bootstrap, forward bool, logger *slog.Logger) (*hostNode, error) {
	sink, handler := newMetrics()
	trans, err := tcp.NewHost(raftBind, tcp.Options{Advertise: advertise, Metrics: sink})
	if err != nil {
		return nil, fmt.Errorf("%s: raft host transport on %s: %w", id, raftBind, err)
	}
	ln, err := net.Listen("tcp", httpBind)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("%s: HTTP listener on %s: %w", id, httpBind, err)
	}
	return newHostNode(nodeConfig(id, logger, forward, sink), handler, dir, trans, ln, peers, groups, bootstrap)
}

// newHostNode starts a server of groups groups on a host transport and
// HTTP listener the caller opened; it takes ownership of both, closing
// them if it fails. Every group gets a copy of cfg, its logger and
// metrics labelled with the group (cfg.Metrics and metrics as newNode
// takes them). With bootstrap set, each group whose stores are empty
// bootstraps with peers as its voters; without, it starts empty and waits
// to be added by its leader (POST /join).
func newHostNode(cfg *raft.Config, metrics http.Handler, dir string, trans *tcp.HostTransport, ln net.Listener,
	peers []peer, groups int, bootstrap bool) (_ *hostNode, err error) {
	if cfg.Metrics == nil || metrics == nil {
		cfg.Metrics, metrics = newMetrics()
	}
	h := &hostNode{
		id:        cfg.LocalID,
		httpAddrs: make(map[raft.ServerID]string),
		trans:     trans,
		served:    make(chan error, 1),
		metrics:   metrics,
		client:    &http.Client{Transport: &http.Transport{}},
	}
	defer func() {
		if err != nil {
			ln.Close()
			h.closeStores()
		}
	}()
	if groups < 2 || groups > maxGroups {
		return nil, fmt.Errorf("%s: %d groups: want 2 to %d", h.id, groups, maxGroups)
	}
	if err := checkLayout(dir, groups); err != nil {
		return nil, fmt.Errorf("%s: %w", h.id, err)
	}
	for _, p := range peers {
		h.httpAddrs[p.ID] = p.HTTPAddr
	}
	if h.wal, err = multiwal.Open(filepath.Join(dir, "wal"), multiwal.Options{Logger: cfg.Logger}); err != nil {
		return nil, fmt.Errorf("%s: open log: %w", h.id, err)
	}
	if h.host, err = raft.NewHost(raft.HostConfig{Transport: trans, HeartbeatInterval: cfg.HeartbeatInterval, Logger: cfg.Logger}); err != nil {
		return nil, fmt.Errorf("%s: start host: %w", h.id, err)
	}
	var conf raft.Configuration
	for _, p := range peers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: p.ID, Address: p.RaftAddr})
	}
	for g := raft.GroupID(1); g <= raft.GroupID(groups); g++ {
		n, err := h.startGroup(cfg, dir, g, conf, bootstrap)
		if err != nil {
			return nil, err
		}
		h.groups = append(h.groups, n)
	}
	h.http = &http.Server{Handler: h.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		err := h.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		h.served <- err
	}()
	return h, nil
}

// startGroup opens group g's stores, bootstraps it with conf if bootstrap
// is set and it has no state, and starts it on the host.
func (h *hostNode) startGroup(base *raft.Config, dir string, g raft.GroupID, conf raft.Configuration, bootstrap bool) (*node, error) {
	cfg := *base
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("group", g)
	}
	cfg.Metrics = groupSink{sink: base.Metrics, group: strconv.FormatUint(uint64(g), 10)}
	logs, err := h.wal.Group(uint64(g))
	if err != nil {
		return nil, fmt.Errorf("%s: group %d: open log: %w", h.id, g, err)
	}
	snaps, err := filesnap.New(filepath.Join(dir, "snap", strconv.FormatUint(uint64(g), 10)), filesnap.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: group %d: open snapshot store: %w", h.id, g, err)
	}
	h.snaps = append(h.snaps, snaps)
	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("%s: group %d: check existing state: %w", h.id, g, err)
	}
	if bootstrap && !existing {
		if err := raft.BootstrapCluster(&cfg, logs, logs, snaps, conf); err != nil {
			return nil, fmt.Errorf("%s: group %d: bootstrap: %w", h.id, g, err)
		}
	}
	n := &node{id: h.id, fsm: newFSM(), httpAddrs: h.httpAddrs}
	if n.raft, err = h.host.StartGroup(g, &cfg, n.fsm, logs, logs, snaps); err != nil {
		return nil, fmt.Errorf("%s: group %d: start: %w", h.id, g, err)
	}
	return n, nil
}

// group returns the node serving group g, or nil if g is not one.
func (h *hostNode) group(g raft.GroupID) *node {
	if g < 1 || int(g) > len(h.groups) {
		return nil
	}
	return h.groups[g-1]
}

// keyGroup returns the node serving the group of the request's key.
func (h *hostNode) keyGroup(r *http.Request) *node {
	return h.group(groupOf(r.PathValue("key"), len(h.groups)))
}

// Close stops the HTTP server, then every group and the host, then the
// transport and stores. It is safe to call more than once.
func (h *hostNode) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		if h.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := h.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: stop HTTP: %w", h.id, err))
				h.http.Close()
			}
			cancel()
		}
		h.client.CloseIdleConnections()
		errs = append(errs, h.closeStores())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// closeStores stops the host (and so every group), then closes the
// transport and whichever stores are open.
func (h *hostNode) closeStores() error {
	var errs []error
	if h.host != nil {
		if err := h.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: stop groups: %w", h.id, err))
		}
	}
	if err := h.trans.Close(); err != nil {
		errs = append(errs, fmt.Errorf("%s: close transport: %w", h.id, err))
	}
	if h.wal != nil {
		if err := h.wal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close log: %w", h.id, err))
		}
	}
	for i, s := range h.snaps {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: group %d: close snapshot store: %w", h.id, i+1, err))
		}
	}
	return errors.Join(errs...)
}

// groupSink labels every metric of one group with {group="g"}, so the
// groups of a server can share its Prometheus sink.
type groupSink struct {
	sink  metrics.Sink
	group string
}

func (s groupSink) label(d metrics.Desc) metrics.Desc {
	return d.With(metrics.Label{Name: "group", Value: s.group})
}
func (s groupSink) Counter(d metrics.Desc) metrics.Counter     { return s.sink.Counter(s.label(d)) }
func (s groupSink) Gauge(d metrics.Desc) metrics.Gauge         { return s.sink.Gauge(s.label(d)) }
func (s groupSink) Histogram(d metrics.Desc) metrics.Histogram { return s.sink.Histogram(s.label(d)) }

// handler serves a multi-group server's HTTP API: the single-group API,
// with each key served by its group.
func (h *hostNode) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) { h.keyGroup(r).handlePut(w, r) })
	mux.HandleFunc("DELETE /kv/{key}", func(w http.ResponseWriter, r *http.Request) { h.keyGroup(r).handleDelete(w, r) })
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) { h.keyGroup(r).handleGet(w, r) })
	mux.HandleFunc("GET /status", h.handleStatus)
	mux.HandleFunc("POST /join", func(w http.ResponseWriter, r *http.Request) { h.handleMembership(w, r, "join") })
	mux.HandleFunc("POST /leave", func(w http.ResponseWriter, r *http.Request) { h.handleMembership(w, r, "leave") })
	mux.Handle("GET /metrics", h.metrics)
	return mux
}

// hostStatus is the body of GET /status on a multi-group server.
type hostStatus struct {
	ID     raft.ServerID `json:"id"`
	Groups []groupStatus `json:"groups"`
}

// groupStatus is one group's part of hostStatus: the single-group status
// of this server's replica of it.
type groupStatus struct {
	Group raft.GroupID `json:"group"`
	status
}

func (h *hostNode) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := hostStatus{ID: h.id}
	for i, n := range h.groups {
		g := raft.GroupID(i + 1)
		gs, err := n.status(r.Context())
		if err != nil {
			http.Error(w, fmt.Sprintf("group %d: %v", g, err), http.StatusServiceUnavailable)
			return
		}
		st.Groups = append(st.Groups, groupStatus{Group: g, status: gs})
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

// groupChange is one group's result of a /join or /leave.
type groupChange struct {
	Group raft.GroupID `json:"group"`
	// Status is the HTTP status the group's change answered with: 200,
	// or what a single-group server answers for the failure.
	Status int `json:"status"`
	// Index is the log index of the group's committed configuration entry.
	Index uint64 `json:"index,omitempty"`
	Error string `json:"error,omitempty"`
}

// membershipResults is the body of POST /join or /leave on a multi-group
// server, with or without error.
type membershipResults struct {
	// Error names the first group (in order) whose change failed.
	Error  string        `json:"error,omitempty"`
	Groups []groupChange `json:"groups"`
}

// handleMembership serves /join and /leave. With group=G it changes group
// G only, as a single-group server does (on G's leader; other servers
// redirect to it). Without, it makes the change in every group at once,
// each on its leader (here, or sent to it), and answers with every
// group's result: 200 if all succeeded, else the status of the first
// group that failed.
func (h *hostNode) handleMembership(w http.ResponseWriter, r *http.Request, op string) {
	if gs := r.URL.Query().Get("group"); gs != "" {
		g, err := strconv.ParseUint(gs, 10, 64)
		n := h.group(raft.GroupID(g))
		if err != nil || n == nil {
			http.Error(w, fmt.Sprintf("%s: group %q: want 1 to %d", op, gs, len(h.groups)), http.StatusBadRequest)
			return
		}
		if op == "join" {
			n.handleJoin(w, r)
		} else {
			n.handleLeave(w, r)
		}
		return
	}
	req, err := parseMembershipRequest(w, r)
	if err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", op, err), http.StatusBadRequest)
		return
	}
	q := url.Values{"id": {req.ID}}
	switch {
	case op == "join" && (req.ID == "" || req.Addr == ""):
		http.Error(w, "join: want id and addr (the new server's raft ID and raft address)", http.StatusBadRequest)
		return
	case op == "leave" && req.ID == "":
		http.Error(w, "leave: want id (the raft ID of the server to remove)", http.StatusBadRequest)
		return
	case op == "join":
		q.Set("addr", req.Addr)
		if req.Voter != nil {
			q.Set("voter", strconv.FormatBool(*req.Voter))
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), membershipTimeout+requestTimeout)
	defer cancel()
	res := membershipResults{Groups: make([]groupChange, len(h.groups))}
	var wg sync.WaitGroup
	for i := range h.groups {
		wg.Go(func() { res.Groups[i] = h.changeGroup(ctx, op, raft.GroupID(i+1), q) })
	}
	wg.Wait()
	code := http.StatusOK
	for _, c := range res.Groups {
		if c.Status != http.StatusOK {
			code, res.Error = c.Status, fmt.Sprintf("group %d: %s", c.Group, c.Error)
			break
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(res)
}

// changeGroup makes one group's part of a /join or /leave (form values
// q): on this server if it leads the group, else on the leader it
// redirects to.
func (h *hostNode) changeGroup(ctx context.Context, op string, g raft.GroupID, q url.Values) groupChange {
	res := groupChange{Group: g}
	q = maps.Clone(q) // Set below replaces a value, never changes one
	q.Set("group", strconv.FormatUint(uint64(g), 10))
	uri := "/" + op + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, http.NoBody)
	if err != nil {
		res.Status, res.Error = http.StatusInternalServerError, fmt.Sprintf("make request: %v", err)
		return res
	}
	rec := httptest.NewRecorder()
	h.handleMembership(rec, req, op)
	code, body := rec.Code, rec.Body.Bytes()
	if loc := rec.Header().Get("Location"); code == http.StatusTemporaryRedirect && loc != "" {
		code, body, err = h.post(ctx, loc)
		if err != nil {
			res.Status, res.Error = http.StatusBadGateway, fmt.Sprintf("send to the group's leader: %v", err)
			return res
		}
	}
	res.Status = code
	if code != http.StatusOK {
		res.Error = strings.TrimSpace(string(body))
		return res
	}
	var mr membershipResult
	if err := json.Unmarshal(body, &mr); err != nil {
		res.Status, res.Error = http.StatusBadGateway, fmt.Sprintf("decode the leader's answer %q: %v", body, err)
		return res
	}
	res.Index = mr.Index
	return res
}

// post sends an empty POST to url (following redirects, should the
// group's leader have changed) and returns the answer's status and body.
func (h *hostNode) post(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		return 0, nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFormSize))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

// inspectGroups is inspectDir for a stopped multi-group server: each
// group's state, as JSON, after its number.
func inspectGroups(dir string, groups int, out io.Writer) error {
	if !exists(filepath.Join(dir, groupsFile)) {
		return fmt.Errorf("%s holds no multi-group server's data (no %s file)", dir, groupsFile)
	}
	if err := checkLayout(dir, groups); err != nil {
		return err
	}
	w, err := multiwal.Open(filepath.Join(dir, "wal"), multiwal.Options{})
	if err != nil {
		return fmt.Errorf("open log (is a server running on %s?): %w", dir, err)
	}
	defer w.Close()
	for g := uint64(1); g <= uint64(groups); g++ {
		logs, err := w.Group(g)
		if err != nil {
			return fmt.Errorf("group %d: open log: %w", g, err)
		}
		snaps, err := filesnap.New(filepath.Join(dir, "snap", strconv.FormatUint(g, 10)), filesnap.Options{})
		if err != nil {
			return fmt.Errorf("group %d: open snapshot store: %w", g, err)
		}
		st, err := raft.InspectStores(logs, logs, snaps)
		snaps.Close()
		if err != nil {
			return fmt.Errorf("group %d: %w", g, err)
		}
		if _, err := fmt.Fprintf(out, "group %d:\n", g); err != nil {
			return err
		}
		if err := printState(out, st); err != nil {
			return err
		}
	}
	return nil
}
