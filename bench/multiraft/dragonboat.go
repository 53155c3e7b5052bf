package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v3"
	"github.com/lni/dragonboat/v3/client"
	"github.com/lni/dragonboat/v3/config"
	"github.com/lni/dragonboat/v3/logger"
	sm "github.com/lni/dragonboat/v3/statemachine"
	gvfs "github.com/lni/goutils/vfs"
)

var quietDragonboat sync.Once

// quiet keeps dragonboat's packages to errors: at info level they log
// every election of every group.
func quiet() {
	quietDragonboat.Do(func() {
		for _, pkg := range []string{"config", "dragonboat", "grpc", "logdb", "pebblekv", "raft", "raftpb", "rsm", "server", "settings", "transport", "raft-mt", "LogDB"} {
			logger.GetLogger(pkg).SetLevel(logger.ERROR)
		}
	})
}

// dbFSM is keel's keelFSM for dragonboat: it counts the commands and their
// bytes.
type dbFSM struct{ n, bytes atomic.Uint64 }

func (f *dbFSM) Update(data []byte) (sm.Result, error) {
	f.n.Add(1)
	f.bytes.Add(uint64(len(data)))
	return sm.Result{}, nil
}

func (f *dbFSM) Lookup(any) (any, error) { return f.n.Load(), nil }

func (f *dbFSM) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], f.n.Load())
	binary.BigEndian.PutUint64(b[8:], f.bytes.Load())
	if _, err := w.Write(b[:]); err != nil {
		return fmt.Errorf("save counter: %w", err)
	}
	return nil
}

func (f *dbFSM) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("recover counter: %w", err)
	}
	f.n.Store(binary.BigEndian.Uint64(b[:8]))
	f.bytes.Store(binary.BigEndian.Uint64(b[8:]))
	return nil
}

func (f *dbFSM) Close() error { return nil }

// syncCounter is a gvfs.Injector that injects no error and counts the
// Sync calls it is asked about. Dragonboat v3.3.8's default LogDB takes no
// file system but the OS's, a memory one or gvfs.ErrorFS (it panics with
// "invalid fs" on any other), so fsyncs are counted through an ErrorFS.
// Its files hide the Fd, so pebble falls back from fdatasync and
// sync_file_range to File.Sync and does not preallocate its WAL: the
// counted runs are separate systems (…-synccount) next to the uncounted
// ones.
type syncCounter struct{ n *atomic.Uint64 }

func (c syncCounter) MaybeError(op gvfs.Op) error {
	if op == gvfs.OpSync {
		c.n.Add(1)
	}
	return nil
}

// dbCluster is three dragonboat NodeHosts on loopback TCP.
type dbCluster struct {
	nhs      []*dragonboat.NodeHost
	sessions []*client.Session
	counted  bool
	syncs    atomic.Uint64
}

// freeAddrs reserves n loopback ports (dragonboat takes a fixed
// RaftAddress) by listening on them and closing the listeners.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// rtt is dragonboat's tick: keel's host ticks twice per heartbeat, so
// dragonboat ticks as often, with HeartbeatRTT 2 and ElectionRTT
// Election/rtt, the same heartbeat and election timeouts in real time.
func dbTiming(p params) (rtt, heartbeatRTT, electionRTT uint64, err error) {
	tick := p.Heartbeat / 2
	if tick < time.Millisecond || p.Heartbeat%(2*time.Millisecond) != 0 || p.Election%tick != 0 {
		return 0, 0, 0, fmt.Errorf("dragonboat: heartbeat %v and election %v are not whole multiples of a %v tick in milliseconds", p.Heartbeat, p.Election, tick)
	}
	return uint64(tick / time.Millisecond), 2, uint64(p.Election / tick), nil
}

func logDBConfig(name string) (config.LogDBConfig, error) {
	switch name {
	case "", "default":
		return config.GetDefaultLogDBConfig(), nil
	case "small":
		return config.GetSmallMemLogDBConfig(), nil
	case "tiny":
		return config.GetTinyMemLogDBConfig(), nil
	}
	return config.LogDBConfig{}, fmt.Errorf("dragonboat: unknown LogDB config %q (want default, small or tiny)", name)
}

// dbVariant is how a dragonboat system differs from its defaults.
type dbVariant struct {
	shards  uint64 // LogDB shards (pebble instances) per NodeHost; 0: the default, 16
	counted bool   // fsyncs counted through gvfs.ErrorFS
}

// dragonboatVariants are the dragonboat systems: its default LogDB of 16
// pebble instances per NodeHost, or one per NodeHost (one shared log, as
// keel's multiwal is), each with and without its fsyncs counted.
var dragonboatVariants = map[string]dbVariant{
	"dragonboat":                  {},
	"dragonboat-synccount":        {counted: true},
	"dragonboat-1shard":           {shards: 1},
	"dragonboat-1shard-synccount": {shards: 1, counted: true},
}

func startDragonboat(p params, v dbVariant) (_ *dbCluster, err error) {
	if os.Getenv("MULTIRAFT_DEBUG") == "" {
		quiet()
	}
	rtt, hbRTT, elRTT, err := dbTiming(p)
	if err != nil {
		return nil, err
	}
	ldb, err := logDBConfig(p.DragonboatLogDB)
	if err != nil {
		return nil, err
	}
	if v.shards > 0 {
		ldb.Shards = v.shards
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	c := &dbCluster{counted: v.counted}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	members := map[uint64]dragonboat.Target{}
	for i, a := range addrs {
		members[uint64(i+1)] = a
	}

	for i, a := range addrs {
		dir := filepath.Join(p.Dir, fmt.Sprintf("nh%d", i+1))
		nhc := config.NodeHostConfig{
			NodeHostDir:    dir,
			WALDir:         filepath.Join(dir, "wal"),
			RTTMillisecond: rtt,
			RaftAddress:    a,
			Expert:         config.ExpertConfig{LogDB: ldb},
		}
		if c.counted {
			nhc.Expert.FS = gvfs.Wrap(gvfs.Default, syncCounter{&c.syncs})
		}
		nh, err := dragonboat.NewNodeHost(nhc)
		if err != nil {
			return nil, fmt.Errorf("dragonboat host %d: %w", i, err)
		}
		if nh == nil {
			// NewNodeHost recovers a panic that is not an error and
			// returns nothing; its log says what it was.
			return nil, fmt.Errorf("dragonboat host %d: NewNodeHost failed without an error (see its log)", i)
		}
		c.nhs = append(c.nhs, nh)
	}
	for g := 1; g <= p.Groups; g++ {
		for i, nh := range c.nhs {
			rc := config.Config{
				NodeID:       uint64(i + 1),
				ClusterID:    uint64(g),
				HeartbeatRTT: hbRTT,
				ElectionRTT:  elRTT,
				CheckQuorum:  true, // keel's default
				// keel snapshots at the latest after SnapshotMaxEntries
				// and keeps TrailingLogs.
				SnapshotEntries:    1 << 17,
				CompactionOverhead: 10240,
			}
			create := func(uint64, uint64) sm.IStateMachine { return &dbFSM{} }
			if err := nh.StartCluster(members, false, create, rc); err != nil {
				return nil, fmt.Errorf("dragonboat host %d, cluster %d: %w", i, g, err)
			}
		}
		c.sessions = append(c.sessions, c.nhs[0].GetNoOPSession(uint64(g)))
	}
	return c, nil
}

func (c *dbCluster) propose(ctx context.Context, cs *clientState, cmd []byte) (bool, error) {
	nh := c.nhs[cs.leader]
	_, err := nh.SyncPropose(ctx, c.sessions[cs.group], cmd)
	if err == nil {
		return false, nil
	}
	if l, ok, lerr := nh.GetLeaderID(uint64(cs.group + 1)); lerr == nil && ok && int(l-1) != cs.leader {
		cs.leader = int(l - 1)
		return true, err
	}
	return false, fmt.Errorf("cluster %d, host %d: %w", cs.group+1, cs.leader, err)
}

func (c *dbCluster) findLeader(g int, within time.Duration) (int, error) {
	// A leader counts once its own host names itself: a follower may
	// still name a leader that was deposed.
	cluster := uint64(g + 1)
	return pollLeader(g, within, func() (int, bool) {
		for _, nh := range c.nhs {
			l, ok, err := nh.GetLeaderID(cluster)
			if err != nil || !ok || l < 1 || l > uint64(len(c.nhs)) {
				continue
			}
			if self, ok, err := c.nhs[l-1].GetLeaderID(cluster); err == nil && ok && self == l {
				return int(l - 1), true
			}
		}
		return 0, false
	})
}

// fsyncs counts Sync calls on files and directories dragonboat opened
// through its file system (its LogDB's WALs and tables, snapshots), when
// the cluster counts them. Directory syncs cannot be told apart; multiwal
// does not count its own.
func (c *dbCluster) fsyncs() (uint64, bool) { return c.syncs.Load(), c.counted }

// close stops the NodeHosts. Stop returns no error.
func (c *dbCluster) close() error {
	for _, nh := range c.nhs {
		nh.Stop()
	}
	c.nhs = nil
	return nil
}
