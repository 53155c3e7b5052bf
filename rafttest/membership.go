package rafttest

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"time"

	"github.com/keelraft/raft"
)

// AddServer starts a new server named id (its address is its ID too) with
// empty stores, not bootstrapped, and a fresh FSM from the cluster's
// factory. It belongs to no configuration yet: it waits as a follower until
// a leader adds it (see AddVoter, or call the leader's raft.AddVoter).
func (c *Cluster) AddServer(id raft.ServerID) *Server {
	c.t.Helper()
	for _, s := range c.Servers() {
		if s.ID == id {
			c.t.Fatalf("rafttest: AddServer: %s already exists", id)
		}
	}
	s := &Server{ID: id, Addr: raft.ServerAddress(id), c: c}
	if c.opts.durable {
		s.dir = filepath.Join(c.t.TempDir(), string(id))
	}
	c.smu.Lock()
	c.servers = append(c.servers, s)
	c.smu.Unlock()
	c.openStores(s)
	c.start(s, c.newFSM())
	return s
}

// AddVoter makes s a voter (adding it first if it is new: it joins as a
// nonvoter and the leader promotes it once it has caught up) and returns
// once the leader's committed configuration has s as a voter.
func (c *Cluster) AddVoter(s *Server) {
	c.t.Helper()
	c.check("AddVoter", false, s)
	c.ChangeMembership("add voter "+string(s.ID),
		func(ctx context.Context, r *raft.Raft) raft.IndexFuture { return r.AddVoter(ctx, s.ID, s.Addr) },
		func(conf raft.Configuration) bool {
			return slices.Contains(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: s.ID, Address: s.Addr})
		})
}

// RemoveServer removes s from the cluster and returns once the leader's
// committed configuration no longer has it. s keeps running: Crash it when
// the test no longer needs it (Leader and the other helpers wait for every
// live server, and a removed server follows no leader).
func (c *Cluster) RemoveServer(s *Server) {
	c.t.Helper()
	c.check("RemoveServer", false, s)
	c.ChangeMembership("remove "+string(s.ID),
		func(ctx context.Context, r *raft.Raft) raft.IndexFuture { return r.RemoveServer(ctx, s.ID) },
		func(conf raft.Configuration) bool {
			return !slices.ContainsFunc(conf.Servers, func(o raft.Server) bool { return o.ID == s.ID })
		})
}

// ChangeMembership runs change on the leader until want holds for the
// leader's committed configuration. It does not call change again while
// want holds for the leader's latest configuration, so a change whose
// earlier attempt had an unknown outcome is not made twice. It retries (on the leader of the
// moment) while there is no leader, another change or a leadership transfer
// is under way, or leadership changes under it. Other errors fail the test.
func (c *Cluster) ChangeMembership(what string, change func(ctx context.Context, r *raft.Raft) raft.IndexFuture, want func(raft.Configuration) bool) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		r := c.CurrentLeader()
		if r == nil {
			poll(5*time.Millisecond, func() bool { return c.CurrentLeader() != nil })
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		cs, err := r.GetConfigurations(ctx)
		if err == nil && want(cs.Latest) && !cs.Latest.Joint() {
			// Done, or about to be (an earlier attempt whose outcome was
			// unknown went through): wait for it to commit.
			cancel()
			if r.State() == raft.Leader && cs.LatestIndex == cs.CommittedIndex {
				return
			}
			poll(5*time.Millisecond, func() bool { return false })
			continue
		}
		if err == nil {
			err = change(ctx, r).Error()
		}
		cancel()
		if err == nil {
			continue // check want on the leader
		}
		lastErr = err
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrConfigChangeInProgress), errors.Is(err, raft.ErrLeadershipTransferInProgress),
			errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, context.DeadlineExceeded):
			// Let the cluster move on before retrying.
			poll(5*time.Millisecond, func() bool { return false })
		default:
			c.t.Fatalf("rafttest: %s: %v", what, err)
		}
	}
	c.t.Fatalf("rafttest: %s: not done within %v (last error: %v)\n%s", what, c.opts.timeout, lastErr, describe(c.Servers()))
}

// Configurations returns the leader's committed and latest configurations.
func (c *Cluster) Configurations() raft.Configurations {
	c.t.Helper()
	l := c.Leader()
	cs, err := l.Raft().GetConfigurations(context.Background())
	if err != nil {
		c.t.Fatalf("rafttest: Configurations: %v", err)
	}
	return cs
}

// Recover runs raft.RecoverCluster on a crashed server's stores with a new
// FSM from the cluster's factory, as an operator runs a recovery tool on a
// stopped server's data: afterwards its configuration is the one of the
// given servers. Restart it to run it again.
func (c *Cluster) Recover(s *Server, voters ...*Server) {
	c.t.Helper()
	c.check("Recover", false, s)
	if !s.Crashed() {
		c.t.Fatalf("rafttest: Recover: %s is running; Crash it first", s.ID)
	}
	var conf raft.Configuration
	for _, v := range voters {
		conf.Servers = append(conf.Servers, raft.Server{ID: v.ID, Address: v.Addr})
	}
	c.openStores(s)
	err := raft.RecoverCluster(c.config(s.ID), c.newFSM(), s.logs, s.stable, s.snaps, conf)
	if cerr := c.closeStores(s); err == nil {
		err = cerr
	}
	if err != nil {
		c.t.Fatalf("rafttest: Recover %s: %v", s.ID, err)
	}
}
