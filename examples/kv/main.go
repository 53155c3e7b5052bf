// Command kv is a replicated key-value server on keel: every server keeps
// the same map, written through Raft and read over HTTP.
//
// With no flags (or -local N) it runs a whole N-server cluster (default 3)
// in one process on loopback, raft on 127.0.0.1:7001.. and HTTP on
// 127.0.0.1:8001.., in a temporary data directory, and prints curl commands
// to try:
//
//	go run ./examples/kv
//
// To run one server per process, give each its ID, data directory and the
// full peer list (id=raftaddr=httpaddr, comma-separated):
//
//	go run ./examples/kv -id a -dir /tmp/kv-a \
//	    -peers a=127.0.0.1:7001=127.0.0.1:8001,b=127.0.0.1:7002=127.0.0.1:8002,c=127.0.0.1:7003=127.0.0.1:8003
//
// -raft and -http default to this server's addresses in -peers.
//
// A server started with -join does not bootstrap: it starts empty and waits
// to be added to a running cluster with POST /join on any server (a
// follower redirects to the leader). Its -peers names itself and whichever
// servers it should redirect clients to. For example, to grow the local
// cluster by a fourth server:
//
//	go run ./examples/kv -id s4 -dir /tmp/kv-s4 -join \
//	    -peers s1=127.0.0.1:7001=127.0.0.1:8001,s4=127.0.0.1:7004=127.0.0.1:8004
//	curl -L -X POST 'http://127.0.0.1:8001/join?id=s4&addr=127.0.0.1:7004'
//
// With -groups N (N > 1) every server runs N Raft groups, all with the
// same members, on one raft.Host: one TCP host transport on its -raft
// address, one shared log in DIR/wal (storage/multiwal) and a snapshot
// store per group in DIR/snap/G. A key belongs to group
// 1 + (FNV-1a 64 of the key) mod N, so the groups' leaders (spread over
// the servers) share the writes. The groups bootstrap together on first
// start, which records N in DIR/groups; a data directory started again
// with another -groups (or a single-group directory with -groups > 1, and
// the reverse) is refused, never resharded. -groups 1, the default, is the
// single-group server, its data directory as before. -local M -groups N
// runs M such servers in one process:
//
//	go run ./examples/kv -local 3 -groups 4
//
// -inspect takes -groups too and prints every group's state; -recover
// works only on a single-group directory.
//
// HTTP API, on every server:
//
//	PUT    /kv/{key}   body = value              (any server; see -forward)
//	DELETE /kv/{key}                             (any server; see -forward)
//	GET    /kv/{key}?consistency=stale|default|linearizable
//	GET    /status     role, term, leader, indexes, committed and latest configuration
//	POST   /join       id=ID&addr=RAFTADDR[&voter=false]  (leader; followers redirect)
//	POST   /leave      id=ID                               (leader; followers redirect)
//
// A follower forwards writes to the leader through keel and answers once
// it has applied them itself (so a stale read there sees the write); with
// -forward=false it redirects them to the leader instead (307, or 503
// naming the leader when its HTTP address is unknown).
//
// Reads, as Consul users know them: consistency=stale reads any server's
// map as it is (it may lag); default is a lease read on the leader (no
// round trip while its lease holds; followers redirect), linearizable
// (also "consistent") confirms leadership with a heartbeat round and works
// on any server — a follower asks the leader for the read index, waits
// until it has applied it, and answers from its own map.
//
// With -groups N, /kv/{key} acts on the key's group exactly as above,
// that group's leader taking the place of the leader: followers of the
// group forward writes to it, or redirect to its HTTP address (from
// -peers). GET /status answers {"id":..., "groups": [...]}, one entry per
// group: its number and the single-group status of this server's replica.
// POST /join and /leave change every group at once, each on its leader
// (here, or sent to it over HTTP), and answer
// {"groups": [{"group": G, "status": S, "index": N, "error": ...}, ...]}:
// 200 when every group's change committed, else the status of the first
// group (in order) that failed, named in a top-level "error". With
// group=G in the query they change group G only, as a single-group server
// does (followers of G redirect). In /metrics, every Raft metric carries
// a group label.
//
// /join and /leave take form values (query or urlencoded body) or a JSON
// body {"id":..., "addr":..., "voter":...}. A new voter joins as a nonvoter
// and is promoted once it has caught up; the request answers when the
// change commits, with {"index": N}. Errors: 400 for bad input or a change
// the library rejects, 409 while another change or a leadership transfer is
// under way, 503 when no leader is known.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/keelraft/raft/storage/filesnap"
	"github.com/keelraft/raft/storage/wal"
	"github.com/keelraft/raft/transport/tcp"
)

// peer is one server of the cluster.
type peer struct {
	ID       raft.ServerID
	RaftAddr raft.ServerAddress
	HTTPAddr string
}

// node is one running server: its stores, transport, Raft and HTTP server.
type node struct {
	id        raft.ServerID
	raft      *raft.Raft
	fsm       *kvFSM
	httpAddrs map[raft.ServerID]string // raft ID -> HTTP address, for redirects

	trans   *tcp.Transport
	logs    *wal.Log
	stable  *wal.Stable
	snaps   *filesnap.Store
	http    *http.Server
	served  chan error   // Serve's result
	metrics http.Handler // /metrics

	closeOnce sync.Once
	closeErr  error
}

func main() {
	if err := run(); err != nil {
		log.Printf("kv: %v", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		id       = flag.String("id", "", "this server's raft ID (omit to run a local cluster)")
		raftBind = flag.String("raft", "", "raft bind address (default: this server's address in -peers)")
		httpBind = flag.String("http", "", "HTTP bind address (default: this server's address in -peers)")
		dir      = flag.String("dir", "", "data directory (log, stable store, snapshots)")
		peerList = flag.String("peers", "", "all servers, id=raftaddr=httpaddr,...")
		local    = flag.Int("local", 3, "without -id: run a local cluster of this many servers")
		join     = flag.Bool("join", false, "do not bootstrap: start empty and wait to be added with POST /join")
		forward  = flag.Bool("forward", true, "followers forward writes to the leader (false: redirect clients to it)")
		inspect  = flag.Bool("inspect", false, "print what the stopped server's -dir holds (term, last index and term, configuration) and exit")
		recov    = flag.String("recover", "", "quorum-loss recovery on the stopped server's -dir: make these IDs (from -peers, comma-separated) the voters, then exit; see the README")
		groups   = flag.Int("groups", 1, "shard the keys over this many Raft groups, all on the same servers (a data directory keeps the number it was created with)")
	)
	flag.Parse()
	if *groups < 1 || *groups > maxGroups {
		return fmt.Errorf("-groups %d: want 1 to %d", *groups, maxGroups)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	if *inspect {
		if *dir == "" {
			return errors.New("-inspect needs -dir")
		}
		if *groups > 1 {
			return inspectGroups(*dir, *groups, os.Stdout)
		}
		if err := checkLayout(*dir, 1); err != nil {
			return err
		}
		return inspectDir(*dir, os.Stdout)
	}
	if *id == "" {
		if *raftBind != "" || *httpBind != "" || *dir != "" || *peerList != "" || *join {
			return errors.New("-raft, -http, -dir, -peers and -join need -id")
		}
		return runLocal(ctx, *local, *groups, *forward, logger)
	}
	if *dir == "" || *peerList == "" {
		return errors.New("-id needs -dir and -peers")
	}
	peers, err := parsePeers(*peerList)
	if err != nil {
		return err
	}
	self, ok := findPeer(peers, raft.ServerID(*id))
	if !ok {
		return fmt.Errorf("-peers does not name this server %q", *id)
	}
	if *recov != "" {
		if *groups > 1 {
			return errors.New("-recover works on a single-group data directory; it does not support -groups > 1 yet")
		}
		if err := checkLayout(*dir, 1); err != nil {
			return err
		}
		return recoverDir(*dir, self.ID, *recov, peers, os.Stdout)
	}
	if *raftBind == "" {
		*raftBind = string(self.RaftAddr)
	}
	if *httpBind == "" {
		*httpBind = self.HTTPAddr
	}
	var srv server
	if *groups > 1 {
		srv, err = startHostNode(self.ID, *dir, *raftBind, self.RaftAddr, *httpBind, peers, *groups, !*join, *forward, logger)
	} else if err = checkLayout(*dir, 1); err == nil {
		srv, err = startNode(self.ID, *dir, *raftBind, self.RaftAddr, *httpBind, peers, !*join, *forward, logger)
	}
	if err != nil {
		return err
	}
	logger.Info("serving", "id", self.ID, "raft", *raftBind, "http", *httpBind, "dir", *dir, "groups", *groups)
	if *join {
		logger.Info("not bootstrapping; add this server with POST /join on the cluster",
			"example", fmt.Sprintf("curl -L -X POST 'http://LEADER/join?id=%s&addr=%s'", self.ID, self.RaftAddr))
	}
	return wait(ctx, []server{srv}, logger)
}

// runLocal runs a cluster of size servers, each running groups groups,
// in this process.
func runLocal(ctx context.Context, size, groups int, forward bool, logger *slog.Logger) (err error) {
	if size < 1 || size > 9 {
		return fmt.Errorf("-local %d: want 1 to 9 servers", size)
	}
	base, err := os.MkdirTemp("", "keel-kv-")
	if err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(base); rerr != nil && err == nil {
			err = fmt.Errorf("remove data directory: %w", rerr)
		}
	}()
	var peers []peer
	for i := 1; i <= size; i++ {
		peers = append(peers, peer{
			ID:       raft.ServerID(fmt.Sprintf("s%d", i)),
			RaftAddr: raft.ServerAddress(fmt.Sprintf("127.0.0.1:%d", 7000+i)),
			HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 8000+i),
		})
	}
	var servers []server
	for _, p := range peers {
		dir, logger := filepath.Join(base, string(p.ID)), logger.With("server", p.ID)
		var srv server
		var err error
		if groups > 1 {
			srv, err = startHostNode(p.ID, dir, string(p.RaftAddr), p.RaftAddr, p.HTTPAddr, peers, groups, true, forward, logger)
		} else {
			srv, err = startNode(p.ID, dir, string(p.RaftAddr), p.RaftAddr, p.HTTPAddr, peers, true, forward, logger)
		}
		if err != nil {
			for _, srv := range servers {
				srv.Close()
			}
			return err
		}
		servers = append(servers, srv)
	}
	if groups > 1 {
		fmt.Printf("kv: %d servers running %d groups each, data in %s; try:\n\n", size, groups, base)
	} else {
		fmt.Printf("kv: %d servers running, data in %s; try:\n\n", size, base)
	}
	fmt.Printf("  curl -L -X PUT --data-binary world http://%s/kv/hello\n", peers[0].HTTPAddr)
	fmt.Printf("  curl -L http://%s/kv/hello\n", peers[0].HTTPAddr)
	fmt.Printf("  curl 'http://%s/kv/hello?consistency=stale'\n", peers[len(peers)-1].HTTPAddr)
	fmt.Printf("  curl -L -X DELETE http://%s/kv/hello\n", peers[0].HTTPAddr)
	fmt.Printf("  curl http://%s/status\n", peers[0].HTTPAddr)
	fmt.Printf("  curl -s http://%s/metrics | grep keel_raft_\n", peers[0].HTTPAddr)
	fmt.Printf("  curl -L -X POST 'http://%s/leave?id=%s'\n\n", peers[0].HTTPAddr, peers[len(peers)-1].ID)
	fmt.Printf("Ctrl-C stops the cluster.\n")
	return wait(ctx, servers, logger)
}

// server is a running server: a node (one group) or a hostNode (many).
type server interface {
	// serveResult is the HTTP server's result, sent once it stops.
	serveResult() (raft.ServerID, <-chan error)
	Close() error
}

func (n *node) serveResult() (raft.ServerID, <-chan error)     { return n.id, n.served }
func (h *hostNode) serveResult() (raft.ServerID, <-chan error) { return h.id, h.served }

// wait runs until ctx ends or an HTTP server fails, then closes every
// server.
func wait(ctx context.Context, servers []server, logger *slog.Logger) error {
	failed := make(chan error, len(servers))
	for _, srv := range servers {
		go func() {
			id, served := srv.serveResult()
			if err := <-served; err != nil {
				failed <- fmt.Errorf("%s: serve HTTP: %w", id, err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err = <-failed:
	}
	var errs []error
	errs = append(errs, err)
	for _, srv := range servers {
		errs = append(errs, srv.Close())
	}
	return errors.Join(errs...)
}

// startNode opens the stores in dir, listens for raft on raftBind
// (advertised as advertise) and for HTTP on httpBind, bootstraps a new
// cluster of peers if bootstrap is set and dir holds no state, and starts
// serving.
func startNode(id raft.ServerID, dir, raftBind string, advertise raft.ServerAddress, httpBind string,
	peers []peer, bootstrap, forward bool, logger *slog.Logger) (*node, error) {
	sink, handler := newMetrics()
	trans, err := tcp.New(raftBind, tcp.Options{Advertise: advertise, Metrics: sink})
	if err != nil {
		return nil, fmt.Errorf("%s: raft transport on %s: %w", id, raftBind, err)
	}
	ln, err := net.Listen("tcp", httpBind)
	if err != nil {
		trans.Close()
		return nil, fmt.Errorf("%s: HTTP listener on %s: %w", id, httpBind, err)
	}
	return newNode(nodeConfig(id, logger, forward, sink), handler, dir, trans, ln, peers, bootstrap)
}

// nodeConfig is a server's Raft configuration (every group's, with -groups).
func nodeConfig(id raft.ServerID, logger *slog.Logger, forward bool, sink metrics.Sink) *raft.Config {
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.Logger = logger
	cfg.ForwardingDisabled = !forward
	cfg.Metrics = sink
	return cfg
}

// newNode starts a server on a transport and HTTP listener the caller
// opened; it takes ownership of both, closing them if it fails. With
// bootstrap set, a server whose dir holds no state bootstraps a cluster of
// peers; without, it starts empty and waits to be added by a leader.
//
// cfg.Metrics, when set, and metrics, which serves it, report the
// server's figures at /metrics; without them newNode makes its own (the
// transport, made by the caller, then reports none).
func newNode(cfg *raft.Config, metrics http.Handler, dir string, trans *tcp.Transport, ln net.Listener, peers []peer,
	bootstrap bool) (_ *node, err error) {
	if cfg.Metrics == nil || metrics == nil {
		cfg.Metrics, metrics = newMetrics()
	}
	n := &node{
		metrics:   metrics,
		id:        cfg.LocalID,
		fsm:       newFSM(),
		httpAddrs: make(map[raft.ServerID]string),
		trans:     trans,
		served:    make(chan error, 1),
	}
	defer func() {
		if err != nil {
			ln.Close()
			n.closeStores()
		}
	}()
	for _, p := range peers {
		n.httpAddrs[p.ID] = p.HTTPAddr
	}
	if n.logs, err = wal.Open(filepath.Join(dir, "log"), wal.Options{Metrics: cfg.Metrics}); err != nil {
		return nil, fmt.Errorf("%s: open log: %w", n.id, err)
	}
	if n.stable, err = wal.OpenStableWith(filepath.Join(dir, "stable"), wal.StableOptions{Metrics: cfg.Metrics}); err != nil {
		return nil, fmt.Errorf("%s: open stable store: %w", n.id, err)
	}
	if n.snaps, err = filesnap.New(filepath.Join(dir, "snapshots"), filesnap.Options{}); err != nil {
		return nil, fmt.Errorf("%s: open snapshot store: %w", n.id, err)
	}
	exists, err := raft.HasExistingState(n.logs, n.stable, n.snaps)
	if err != nil {
		return nil, fmt.Errorf("%s: check existing state: %w", n.id, err)
	}
	if bootstrap && !exists {
		var conf raft.Configuration
		for _, p := range peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: p.ID, Address: p.RaftAddr})
		}
		if err := raft.BootstrapCluster(cfg, n.logs, n.stable, n.snaps, conf); err != nil {
			return nil, fmt.Errorf("%s: bootstrap: %w", n.id, err)
		}
	}
	if n.raft, err = raft.NewRaft(cfg, n.fsm, n.logs, n.stable, n.snaps, trans); err != nil {
		return nil, fmt.Errorf("%s: start raft: %w", n.id, err)
	}
	n.http = &http.Server{Handler: n.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		err := n.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		n.served <- err
	}()
	return n, nil
}

// Close stops the HTTP server, then Raft, then the transport and stores.
// It is safe to call more than once.
func (n *node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := n.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: stop HTTP: %w", n.id, err))
				n.http.Close()
			}
			cancel()
		}
		if n.raft != nil {
			if err := n.raft.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("%s: stop raft: %w", n.id, err))
			}
		}
		errs = append(errs, n.closeStores())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// closeStores closes the transport and whichever stores are open.
func (n *node) closeStores() error {
	var errs []error
	if err := n.trans.Close(); err != nil {
		errs = append(errs, fmt.Errorf("%s: close transport: %w", n.id, err))
	}
	if n.logs != nil {
		if err := n.logs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close log: %w", n.id, err))
		}
	}
	if n.stable != nil {
		if err := n.stable.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close stable store: %w", n.id, err))
		}
	}
	return errors.Join(errs...)
}

// parsePeers parses "id=raftaddr=httpaddr,...".
func parsePeers(s string) ([]peer, error) {
	var peers []peer
	seen := make(map[raft.ServerID]bool)
	for _, item := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("-peers: %q is not id=raftaddr=httpaddr", item)
		}
		p := peer{ID: raft.ServerID(parts[0]), RaftAddr: raft.ServerAddress(parts[1]), HTTPAddr: parts[2]}
		if seen[p.ID] {
			return nil, fmt.Errorf("-peers: %q appears twice", p.ID)
		}
		seen[p.ID] = true
		peers = append(peers, p)
	}
	return peers, nil
}

func findPeer(peers []peer, id raft.ServerID) (peer, bool) {
	for _, p := range peers {
		if p.ID == id {
			return p, true
		}
	}
	return peer{}, false
}
