package raft

import "sync/atomic"

// Observation reports a change of this server's role, term or known
// leader, of whether its disk is stalled, or of its configurations. The
// role fields and DiskStalled always hold the current values.
type Observation struct {
	State      RaftState
	Term       uint64
	LeaderID   ServerID
	LeaderAddr ServerAddress
	// DiskStalled reports that a log or stable-store write of this server
	// has been under way for longer than Config.DiskStallTimeout: the
	// server does not lead or campaign until writes complete again (see
	// Config.DiskStallTimeout). An observation is sent when it changes.
	DiskStalled bool
	// Configurations is set, and only then, when the observation reports a
	// configuration change: a configuration entry appended to this
	// server's log (or rolled back by a truncation), or one committed.
	Configurations *Configurations
}

type observer struct {
	ch      chan<- Observation
	dropped atomic.Uint64
}

// RegisterObserver sends an Observation to ch on every change of role,
// term or leader, of DiskStalled and of configuration, without ever blocking the server: when ch is full the
// observation is dropped and counted. Call the returned function to deregister; it returns how many
// observations were dropped.
func (r *Raft) RegisterObserver(ch chan<- Observation) (deregister func() (dropped uint64)) {
	o := &observer{ch: ch}
	r.obsMu.Lock()
	r.observers[o] = struct{}{}
	r.obsMu.Unlock()
	return func() uint64 {
		r.obsMu.Lock()
		delete(r.observers, o)
		r.obsMu.Unlock()
		return o.dropped.Load()
	}
}

// LeaderCh returns a channel that receives true when this server becomes
// leader and false when it stops being leader. It holds only the latest
// value: a reader that falls behind sees the current state, not every
// transition.
func (r *Raft) LeaderCh() <-chan bool { return r.leaderCh }

func (r *Raft) observe(o Observation) {
	r.obsMu.Lock()
	defer r.obsMu.Unlock()
	for ob := range r.observers {
		select {
		case ob.ch <- o:
		default:
			ob.dropped.Add(1)
		}
	}
}

// setLeaderCh replaces the channel's value with isLeader; only the event
// loop writes to it.
func (r *Raft) setLeaderCh(isLeader bool) {
	select {
	case <-r.leaderCh:
	default:
	}
	r.leaderCh <- isLeader
}
