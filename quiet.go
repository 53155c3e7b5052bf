package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A Host's watch over its quiet groups (quiesce.go). Once per heartbeat
// interval the host sends each peer host one MsgHeartbeat, on the reserved
// group hostGroup, listing (group, term, commit) for every quiet group it
// leads that has a replica there; the peer answers with one
// MsgHeartbeatResp listing those its quiet followers of that leader
// recognise. A quiet follower not listed for an election timeout wakes as
// one whose leader is gone; a quiet leader that has not had a quorum
// answer within its lease timeout wakes to find out (CheckQuorum).
//
// quietTracker is that bookkeeping, with no clock, goroutines or I/O: the
// host passes its tick count in, and holds its lock around every call.

// hostGroup carries the host's own messages; StartGroup refuses it.
const hostGroup = ^GroupID(0)

// beatsPerMessage bounds one host heartbeat's list (about 30 bytes each).
const beatsPerMessage = 1 << 13

// quietBeat is one group's line in a host heartbeat or its answer.
type quietBeat struct {
	group        GroupID
	term, commit uint64
}

// quietGroup is what the tracker knows of one quiet group here.
type quietGroup struct {
	quietBeat
	leader bool
	// Follower: its leader's address, and the tick it last listed us.
	leaderAddr ServerAddress
	heard      int
	// Leader: the other members' addresses, which of them vote, whether
	// this server votes, and the tick each last answered.
	peers     []ServerAddress
	voters    map[ServerAddress]bool
	selfVoter bool
	acks      map[ServerAddress]int
	timeout   int  // ticks: election timeout (follower), lease timeout (leader)
	woken     bool // a wake was asked for; the group drops out when it wakes
}

type quietTracker struct {
	now    int
	groups map[GroupID]*quietGroup
}

func newQuietTracker() *quietTracker {
	return &quietTracker{groups: map[GroupID]*quietGroup{}}
}

// quiet records that a group went quiet now.
func (t *quietTracker) quiet(q *quietGroup) {
	q.heard = t.now
	if q.leader {
		q.acks = make(map[ServerAddress]int, len(q.peers))
		for _, p := range q.peers {
			q.acks[p] = t.now
		}
	}
	t.groups[q.group] = q
}

// loud records that a group ticks again.
func (t *quietTracker) loud(g GroupID) { delete(t.groups, g) }

// beats returns, per peer host, the lines of the quiet groups led here.
func (t *quietTracker) beats() map[ServerAddress][]quietBeat {
	out := map[ServerAddress][]quietBeat{}
	for _, q := range t.groups {
		if !q.leader || q.woken {
			continue
		}
		for _, p := range q.peers {
			out[p] = append(out[p], q.quietBeat)
		}
	}
	return out
}

// heardBeats takes a peer host's heartbeat and returns the lines its
// quiet followers here recognise: same leader, term and commit.
func (t *quietTracker) heardBeats(from ServerAddress, beats []quietBeat) []quietBeat {
	var acks []quietBeat
	for _, b := range beats {
		if q := t.groups[b.group]; q != nil && !q.leader && q.leaderAddr == from && q.quietBeat == b {
			q.heard = t.now
			acks = append(acks, b)
		}
	}
	return acks
}

// heardAcks takes a peer host's answer.
func (t *quietTracker) heardAcks(from ServerAddress, acks []quietBeat) {
	for _, b := range acks {
		if q := t.groups[b.group]; q != nil && q.leader && q.quietBeat == b {
			if _, member := q.acks[from]; member {
				q.acks[from] = t.now
			}
		}
	}
}

// expired returns the quiet groups to wake, and why, once each.
func (t *quietTracker) expired() map[GroupID]wakeReason {
	var out map[GroupID]wakeReason
	for g, q := range t.groups {
		if q.woken {
			continue
		}
		why := wakeReason(0)
		switch {
		case !q.leader && t.now-q.heard > q.timeout:
			why = wakeLeaderLost
		case q.leader && !q.quorumHeard(t.now):
			why = wakeQuorumLost
		}
		if why != 0 {
			if out == nil {
				out = map[GroupID]wakeReason{}
			}
			q.woken, out[g] = true, why
		}
	}
	return out
}

// quorumHeard reports whether a majority of the voters answered within
// the lease timeout. Quiet groups are never joint (leaderIdle).
func (q *quietGroup) quorumHeard(now int) bool {
	n, heard := len(q.voters), 0
	if q.selfVoter {
		n, heard = n+1, 1
	}
	for p := range q.voters {
		if now-q.acks[p] <= q.timeout {
			heard++
		}
	}
	return 2*heard > n
}

// encodeBeats packs lines as uvarints, for a host message's Context.
func encodeBeats(beats []quietBeat) []byte {
	b := make([]byte, 0, len(beats)*12)
	for _, q := range beats {
		b = binary.AppendUvarint(b, uint64(q.group))
		b = binary.AppendUvarint(b, q.term)
		b = binary.AppendUvarint(b, q.commit)
	}
	return b
}

var errBadBeats = errors.New("raft: malformed host heartbeat")

func decodeBeats(b []byte) ([]quietBeat, error) {
	var out []quietBeat
	for len(b) > 0 {
		var v [3]uint64
		for i := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("%w: line %d", errBadBeats, len(out))
			}
			v[i], b = x, b[n:]
		}
		if len(out) == beatsPerMessage {
			return nil, fmt.Errorf("%w: more than %d lines", errBadBeats, beatsPerMessage)
		}
		out = append(out, quietBeat{GroupID(v[0]), v[1], v[2]})
	}
	return out, nil
}

// syncQuiet tells the host when the group's core went quiet or woke; the
// event loop calls it after each flush.
func (r *Raft) syncQuiet() {
	hg, h := r.hosted, r.hosted.host
	if r.core.quiesced == hg.quiet {
		return
	}
	hg.quiet = r.core.quiesced
	if !hg.quiet {
		h.leaveQuiet(hg.id)
		h.mu.Lock()
		if h.groups[hg.id] == r { // not stopped meanwhile
			h.ticking[hg.id] = r
		}
		h.mu.Unlock()
		return
	}
	h.quietMu.Lock()
	h.quiet.quiet(r.quietGroup())
	h.quietMu.Unlock()
	h.mu.Lock()
	delete(h.ticking, hg.id)
	h.mu.Unlock()
	// The snapshot check counts ticks too: do it now rather than never.
	r.maybeAutoSnapshot()
}

// quietGroup describes the quiet core for the tracker.
func (r *Raft) quietGroup() *quietGroup {
	c := r.core
	conf := c.confs.latest().conf
	q := &quietGroup{quietBeat: quietBeat{group: r.hosted.id, term: c.term, commit: c.log.committed}, leader: c.role == roleLeader}
	if !q.leader {
		q.timeout = c.cfg.electionTicks
		if q.leaderAddr, _ = conf.address(c.lead); q.leaderAddr == "" {
			q.leaderAddr = r.addrs[c.lead]
		}
		return q
	}
	q.timeout, q.voters = c.cfg.leaseTicks, map[ServerAddress]bool{}
	for _, s := range conf.Servers {
		if s.ID == c.id() {
			q.selfVoter = s.Suffrage == Voter
			continue
		}
		q.peers = append(q.peers, s.Address)
		if s.Suffrage == Voter {
			q.voters[s.Address] = true
		}
	}
	return q
}

func (h *Host) leaveQuiet(g GroupID) {
	h.quietMu.Lock()
	h.quiet.loud(g)
	h.quietMu.Unlock()
}

// watchQuiet is the host's heartbeat round for its quiet groups: it sends
// each peer host the lines of the quiet groups led here, and wakes the
// quiet groups that stopped hearing from their leader or a quorum.
func (h *Host) watchQuiet() {
	h.quietMu.Lock()
	beats := h.quiet.beats()
	wakes := h.quiet.expired()
	h.quietMu.Unlock()
	for addr, lines := range beats {
		h.sendBeats(addr, MsgHeartbeat, lines)
	}
	if len(wakes) == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for g, why := range wakes {
		if r := h.groups[g]; r != nil {
			r.hosted.wakeDue.Store(uint32(why))
			r.hosted.loop.wake()
		}
	}
}

func (h *Host) sendBeats(to ServerAddress, typ MessageType, lines []quietBeat) {
	local := h.conf.Transport.LocalAddr()
	for len(lines) > 0 {
		n := min(len(lines), beatsPerMessage)
		m := &Message{Type: typ, From: ServerID(local), FromAddr: local, To: ServerID(to), Context: encodeBeats(lines[:n])}
		if err := h.conf.Transport.Send(to, hostGroup, m); err != nil {
			h.logger.Debug("host heartbeat not sent", "to", to, "err", err)
		}
		lines = lines[n:]
	}
}

// hostMessage handles a peer host's heartbeat for its quiet groups, or
// the answer to ours.
func (h *Host) hostMessage(m *Message) {
	lines, err := decodeBeats(m.Context)
	if err != nil {
		h.logger.Warn("dropping host message", "from", m.FromAddr, "err", err)
		return
	}
	switch m.Type {
	case MsgHeartbeat:
		h.quietMu.Lock()
		acks := h.quiet.heardBeats(m.FromAddr, lines)
		h.quietMu.Unlock()
		if len(acks) == 0 {
			return
		}
		// The leader is alive: LastContact stays fresh while quiet.
		now := time.Now().UnixNano()
		h.mu.RLock()
		for _, a := range acks {
			if r := h.groups[a.group]; r != nil {
				r.lastContact.Store(now)
			}
		}
		h.mu.RUnlock()
		h.sendBeats(m.FromAddr, MsgHeartbeatResp, acks)
	case MsgHeartbeatResp:
		h.quietMu.Lock()
		h.quiet.heardAcks(m.FromAddr, lines)
		h.quietMu.Unlock()
	default:
		h.logger.Warn("dropping host message", "from", m.FromAddr, "type", m.Type)
	}
}
