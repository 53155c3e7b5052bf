package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Membership changes and leadership transfer, the driver's side: public
// calls become core requests on the event loop, and their futures settle
// when the core reports the outcome (settleMembership, after every input).

// Configurations is what a server knows of the cluster's membership.
type Configurations struct {
	// Committed is the newest configuration committed as far as this
	// server knows, and CommittedIndex the index of its log entry (0 for
	// the empty configuration of a server that has none yet).
	Committed      Configuration
	CommittedIndex uint64
	// Latest is the newest configuration in this server's log, which the
	// server already uses; during a change it is not committed yet and may
	// be joint (Old set). LatestIndex is the index of its entry.
	Latest      Configuration
	LatestIndex uint64
}

// memberWaits are the membership requests under way on this server.
type memberWaits struct {
	change   *seqWait
	transfer *seqWait
	observed [2]uint64 // latest and committed configuration indexes last observed
}

// seqWait is a request the core tracks by sequence number.
type seqWait struct {
	seq uint64
	f   *future
}

// GetConfigurations returns this server's committed and latest
// configurations.
func (r *Raft) GetConfigurations(ctx context.Context) (Configurations, error) {
	var cs Configurations
	err := r.do(ctx, func() { cs = r.configurations() })
	return cs, err
}

func (r *Raft) configurations() Configurations {
	c := r.core
	committed, latest := c.confs.committed(c.log.committed), c.confs.latest()
	return Configurations{
		Committed: committed.conf.Clone(), CommittedIndex: committed.index,
		Latest: latest.conf.Clone(), LatestIndex: latest.index,
	}
}

// ChangeConfiguration changes the cluster's membership to conf, which names
// every server wanted (not joint: Old must be empty) — any number of
// servers added, removed, promoted or demoted at once. Call it on the
// leader.
//
// Servers that are to vote but do not vote yet first join (or stay) as
// nonvoters, and are promoted once each has stayed within
// Config.PromotionMaxLag entries of the leader for
// Config.PromotionStableTime. When the set of voters changes the leader goes
// through joint consensus: it appends C_old,new, in which commits and
// elections need a majority of the old voters and of the new, and once that
// commits, C_new. A leader that is not a voter of conf keeps leading until
// C_new commits, then steps down.
//
// The future resolves once conf is committed (its Index is the index of
// that configuration entry); with ErrConfigChangeInProgress if another
// change is under way (one at a time), or the leader has not yet committed
// an entry of its term; ErrLeadershipTransferInProgress during a transfer;
// ErrInvalidConfiguration if conf is not valid; a *NotLeaderError on a
// follower; ErrLeadershipLost if this server stops leading first (the change
// may still complete under the next leader); or ctx's error. If ctx ends
// while the leader waits for new voters to catch up, the change is
// abandoned: servers already added stay as nonvoters.
func (r *Raft) ChangeConfiguration(ctx context.Context, conf Configuration) IndexFuture {
	return r.changeConfig(ctx, func(Configuration) (Configuration, error) { return conf.Clone(), nil })
}

// AddVoter adds server id at addr as a voter, or makes it a voter (at addr)
// if it is a nonvoter. A new server joins as a nonvoter and is promoted once
// it has caught up; the future resolves when it votes in the committed
// configuration. See ChangeConfiguration.
func (r *Raft) AddVoter(ctx context.Context, id ServerID, addr ServerAddress) IndexFuture {
	return r.changeConfig(ctx, func(c Configuration) (Configuration, error) {
		if i := indexOf(c.Servers, id); i >= 0 {
			c.Servers[i].Suffrage, c.Servers[i].Address = Voter, addr
		} else {
			c.Servers = append(c.Servers, Server{Suffrage: Voter, ID: id, Address: addr})
		}
		return c, nil
	})
}

// AddNonvoter adds server id at addr as a nonvoter: it receives the log
// but neither votes nor counts toward commits. For a server already in the
// configuration it only updates the address. See ChangeConfiguration.
func (r *Raft) AddNonvoter(ctx context.Context, id ServerID, addr ServerAddress) IndexFuture {
	return r.changeConfig(ctx, func(c Configuration) (Configuration, error) {
		if i := indexOf(c.Servers, id); i >= 0 {
			c.Servers[i].Address = addr
		} else {
			c.Servers = append(c.Servers, Server{Suffrage: Nonvoter, ID: id, Address: addr})
		}
		return c, nil
	})
}

// DemoteVoter makes voter id a nonvoter (ErrUnknownServer if it is not in
// the configuration). See ChangeConfiguration.
func (r *Raft) DemoteVoter(ctx context.Context, id ServerID) IndexFuture {
	return r.changeConfig(ctx, func(c Configuration) (Configuration, error) {
		i := indexOf(c.Servers, id)
		if i < 0 {
			return c, fmt.Errorf("%w: %s", ErrUnknownServer, id)
		}
		c.Servers[i].Suffrage = Nonvoter
		return c, nil
	})
}

// RemoveServer removes server id from the cluster (ErrUnknownServer if it
// is not in the configuration). Removing the leader is allowed: it steps
// down once the change commits, and lets the most up-to-date remaining voter
// campaign at once. A removed server that keeps running does not campaign
// once it has the new configuration, and cannot disrupt the cluster before
// (PreVote and leader stickiness refuse it). See ChangeConfiguration.
func (r *Raft) RemoveServer(ctx context.Context, id ServerID) IndexFuture {
	return r.changeConfig(ctx, func(c Configuration) (Configuration, error) {
		i := indexOf(c.Servers, id)
		if i < 0 {
			return c, fmt.Errorf("%w: %s", ErrUnknownServer, id)
		}
		c.Servers = slices.Delete(c.Servers, i, i+1)
		return c, nil
	})
}

func indexOf(servers []Server, id ServerID) int {
	return slices.IndexFunc(servers, func(s Server) bool { return s.ID == id })
}

// changeConfig builds the target from the latest configuration and starts
// the change, on the event loop.
func (r *Raft) changeConfig(ctx context.Context, build func(latest Configuration) (Configuration, error)) *future {
	f := newFuture(ctx, r.shutdownCh)
	err := r.do(ctx, func() {
		if r.core.role != roleLeader {
			f.respond(0, nil, r.notLeader())
			return
		}
		target, err := build(r.core.confs.latest().conf.Clone())
		if err != nil {
			f.respond(0, nil, err)
			return
		}
		seq, err := r.core.changeConfig(target)
		if err != nil {
			f.respond(0, nil, r.coreError(err))
			return
		}
		r.member.change = &seqWait{seq: seq, f: f}
		r.settleMembership()
	})
	if err != nil {
		f.respond(0, nil, err)
	}
	return f
}

// LeadershipTransfer hands leadership to the most up-to-date voter. See
// LeadershipTransferToServer.
func (r *Raft) LeadershipTransfer(ctx context.Context) Future {
	return r.transfer(ctx, "", "")
}

// LeadershipTransferToServer hands leadership to voter id (at addr, which
// may be empty; if set it must match the configuration). Call it on the
// leader. The leader stops taking proposals (Apply and Barrier fail with
// ErrLeadershipTransferInProgress), brings the target's log up to date and
// tells it to campaign at once (MsgTimeoutNow).
//
// The future resolves with nil once this server learns that the target
// leads a later term; with ErrLeadershipTransferTimeout if that has not
// happened within an election timeout (a server that still leads then
// resumes taking proposals); with ErrLeadershipTransferFailed if another
// server won; with ErrNoTransferTarget if id is not another voter of the
// latest configuration; with ErrLeadershipTransferInProgress if a transfer
// is already under way; with a *NotLeaderError on a follower; or with ctx's
// error (the transfer goes on).
func (r *Raft) LeadershipTransferToServer(ctx context.Context, id ServerID, addr ServerAddress) Future {
	return r.transfer(ctx, id, addr)
}

func (r *Raft) transfer(ctx context.Context, id ServerID, addr ServerAddress) *future {
	f := newFuture(ctx, r.shutdownCh)
	err := r.do(ctx, func() {
		if id != "" && addr != "" {
			if have, ok := r.core.confs.latest().conf.address(id); ok && have != addr {
				f.respond(0, nil, fmt.Errorf("%w: %s is at %s, not %s", ErrNoTransferTarget, id, have, addr))
				return
			}
		}
		seq, _, err := r.core.transferLeadership(id)
		if err != nil {
			f.respond(0, nil, r.coreError(err))
			return
		}
		r.member.transfer = &seqWait{seq: seq, f: f}
	})
	if err != nil {
		f.respond(0, nil, err)
	}
	return f
}

// coreError turns the core's internal not-leader error into the public one.
func (r *Raft) coreError(err error) error {
	if errors.Is(err, errNotLeader) {
		return r.notLeader()
	}
	return err
}

// settleMembership resolves membership requests the core has finished,
// abandons a change whose caller gave up while new voters catch up, and
// tells observers about configuration changes. It runs on the event loop
// after every input.
func (r *Raft) settleMembership() {
	c := r.core
	if w := r.member.change; w != nil {
		if done, err := c.changeStatus(w.seq); done {
			r.member.change = nil
			w.f.respond(c.confs.latest().index, nil, err)
		} else if err := w.f.ctx.Err(); err != nil && c.abortChange(w.seq) {
			r.member.change = nil
			w.f.respond(0, nil, err)
		}
	}
	if w := r.member.transfer; w != nil {
		if done, err := c.transferStatus(w.seq); done {
			r.member.transfer = nil
			w.f.respond(0, nil, err)
		}
	}
	latest, committed := c.confs.latest().index, c.confs.committed(c.log.committed).index
	if r.member.observed != [2]uint64{latest, committed} {
		r.member.observed = [2]uint64{latest, committed}
		cs := r.configurations()
		p := r.lastPub
		r.observe(Observation{State: p.state, Term: p.term, LeaderID: p.leaderID, LeaderAddr: p.leaderAddr, DiskStalled: p.diskStalled, Configurations: &cs})
	}
}
