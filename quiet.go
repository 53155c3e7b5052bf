package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// A Host's watch over its quiet groups (quiesce.go). Once per heartbeat
// interval the host sends each peer host one MsgHeartbeat, on the reserved
// group hostGroup, for the quiet groups it leads that have a replica
// there; the peer answers with one MsgHeartbeatResp for those its quiet
// followers of that leader recognise (same group, term and commit). A
// quiet follower not vouched for within an election timeout wakes as one
// whose leader is gone. A quiet leader wakes when a peer's host has not
// vouched for its replica within two election timeouts: that replica may have
// restarted (a nonvoter would otherwise wait for the next write to catch
// up) or its host may be gone, and a leader cut off from a quorum must
// find out (CheckQuorum). Awake, it stays so while the peer is silent:
// leaderIdle wants every peer heard from.
//
// So that an idle host's heartbeats cost little however many groups are
// quiet, the list to a peer is sent in full once, under a version; while
// it stands, each heartbeat and answer names only the version, and each
// side refreshes the groups it matched in the full exchange. A side that
// no longer knows the version asks for the full list again.
//
// quietTracker is that bookkeeping, with no clock, goroutines or I/O: the
// host passes its tick count in, and holds its lock around every call.

// hostGroup carries the host's own messages; StartGroup refuses it.
const hostGroup = ^GroupID(0)

// maxBeatLines bounds one full list (about 30 bytes a line). A host with
// more quiet groups than this led for one peer host leaves the rest out;
// their followers wake, and they tick as groups that are not quiet do.
const maxBeatLines = 1 << 16

// quietBeat is one group's line in a full list or its answer.
type quietBeat struct {
	group        GroupID
	term, commit uint64
}

// beatKind says what a host message carries.
type beatKind byte

const (
	beatFull  beatKind = 'F' // a full list (or the lines recognised of one), under a version
	beatSame  beatKind = 'S' // the list of that version stands
	beatWhich beatKind = 'W' // answer: that version is unknown here, send it in full
)

// hostBeat is a host message's content.
type hostBeat struct {
	kind    beatKind
	version uint64
	lines   []quietBeat
}

// quietGroup is what the tracker knows of one quiet group here.
type quietGroup struct {
	quietBeat
	leader bool
	// contact is the group's Raft.lastContact, kept fresh while quiet.
	contact *atomic.Int64
	// Follower: its leader's address, and the tick it was last vouched for.
	leaderAddr ServerAddress
	heard      int
	// Leader: the other members' addresses, and the tick each last
	// vouched for its replica.
	peers   []ServerAddress
	acks    map[ServerAddress]int
	timeout int  // ticks: election timeout (follower), twice that (leader)
	woken   bool // a wake was asked for; the group drops out when it wakes
}

// sentList is the list last sent to a peer host.
type sentList struct {
	version uint64
	lines   []quietBeat
	// acked: the peer answered this version in full; matched are the
	// groups here whose lines it recognised.
	acked   bool
	matched []*quietGroup
}

// heardList is the list last heard in full from a peer host.
type heardList struct {
	version uint64
	matched []*quietGroup // the quiet followers here it vouched for
}

type quietTracker struct {
	now     int
	groups  map[GroupID]*quietGroup
	sent    map[ServerAddress]*sentList
	heard   map[ServerAddress]*heardList
	dirty   map[ServerAddress]bool // the list to this peer changed since sent
	version uint64                 // the last version given to a list
}

func newQuietTracker() *quietTracker {
	return &quietTracker{groups: map[GroupID]*quietGroup{}, sent: map[ServerAddress]*sentList{},
		heard: map[ServerAddress]*heardList{}, dirty: map[ServerAddress]bool{}}
}

// quiet records that a group went quiet now.
func (t *quietTracker) quiet(q *quietGroup) {
	t.loud(q.group)
	q.heard = t.now
	if q.leader {
		q.acks = make(map[ServerAddress]int, len(q.peers))
		for _, p := range q.peers {
			q.acks[p] = t.now
			t.dirty[p] = true
		}
	} else {
		// Its leader's host must list it anew: forget that host's list,
		// so the next short heartbeat is answered "send it in full".
		delete(t.heard, q.leaderAddr)
	}
	t.groups[q.group] = q
}

// loud records that a group ticks again.
func (t *quietTracker) loud(g GroupID) {
	if q := t.groups[g]; q != nil {
		delete(t.groups, g)
		t.changedLeader(q)
	}
}

func (t *quietTracker) changedLeader(q *quietGroup) {
	if q.leader {
		for _, p := range q.peers {
			t.dirty[p] = true
		}
	}
}

// beats returns this round's heartbeat for each peer host.
func (t *quietTracker) beats() map[ServerAddress]hostBeat {
	out := map[ServerAddress]hostBeat{}
	var lists map[ServerAddress][]quietBeat
	if len(t.dirty) > 0 {
		lists = map[ServerAddress][]quietBeat{}
		for _, q := range t.groups {
			if !q.leader || q.woken {
				continue
			}
			for _, p := range q.peers {
				if t.dirty[p] && len(lists[p]) < maxBeatLines {
					lists[p] = append(lists[p], q.quietBeat)
				}
			}
		}
		for p := range t.dirty {
			delete(t.dirty, p)
			if len(lists[p]) == 0 {
				delete(t.sent, p)
				continue
			}
			t.version++
			t.sent[p] = &sentList{version: t.version, lines: lists[p]}
		}
	}
	for p, s := range t.sent {
		if s.acked {
			out[p] = hostBeat{kind: beatSame, version: s.version}
		} else {
			out[p] = hostBeat{kind: beatFull, version: s.version, lines: s.lines}
		}
	}
	return out
}

// heardBeat takes a peer host's heartbeat: it refreshes the quiet
// followers here it vouches for, and returns them and the answer.
func (t *quietTracker) heardBeat(from ServerAddress, b hostBeat) ([]*quietGroup, hostBeat) {
	switch b.kind {
	case beatFull:
		h := &heardList{version: b.version}
		var lines []quietBeat
		for _, l := range b.lines {
			if q := t.groups[l.group]; q != nil && !q.leader && q.leaderAddr == from && q.quietBeat == l {
				q.heard = t.now
				h.matched = append(h.matched, q)
				lines = append(lines, l)
			}
		}
		t.heard[from] = h
		return h.matched, hostBeat{kind: beatFull, version: b.version, lines: lines}
	case beatSame:
		h := t.heard[from]
		if h == nil || h.version != b.version {
			return nil, hostBeat{kind: beatWhich, version: b.version}
		}
		live := h.matched[:0]
		for _, q := range h.matched {
			if t.groups[q.group] == q { // still quiet since that list
				q.heard = t.now
				live = append(live, q)
			}
		}
		h.matched = live
		return live, hostBeat{kind: beatSame, version: b.version}
	}
	return nil, hostBeat{}
}

// heardAnswer takes a peer host's answer to our heartbeat.
func (t *quietTracker) heardAnswer(from ServerAddress, b hostBeat) {
	s := t.sent[from]
	if s == nil || s.version != b.version {
		return // an answer to an older list
	}
	switch b.kind {
	case beatFull:
		s.acked, s.matched = true, nil
		for _, l := range b.lines {
			if q := t.groups[l.group]; q != nil && q.leader && q.quietBeat == l {
				if _, member := q.acks[from]; member {
					q.acks[from] = t.now
					s.matched = append(s.matched, q)
				}
			}
		}
	case beatSame:
		if !s.acked {
			return
		}
		for _, q := range s.matched {
			if t.groups[q.group] == q {
				q.acks[from] = t.now
			}
		}
	case beatWhich:
		s.acked = false
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
		case q.leader && !q.peersHeard(t.now):
			why = wakePeerLost
		}
		if why != 0 {
			if out == nil {
				out = map[GroupID]wakeReason{}
			}
			q.woken, out[g] = true, why
			t.changedLeader(q) // no longer vouched for
		}
	}
	return out
}

// peersHeard reports whether every peer's host vouched for its replica
// within the timeout.
func (q *quietGroup) peersHeard(now int) bool {
	for _, p := range q.peers {
		if now-q.acks[p] > q.timeout {
			return false
		}
	}
	return true
}

// encodeHostBeat packs a host message's content: its kind, its version,
// then for a full list (group, term, commit) per line, all uvarints.
func encodeHostBeat(b hostBeat) []byte {
	out := make([]byte, 1, 1+binary.MaxVarintLen64+len(b.lines)*12)
	out[0] = byte(b.kind)
	out = binary.AppendUvarint(out, b.version)
	for _, q := range b.lines {
		out = binary.AppendUvarint(out, uint64(q.group))
		out = binary.AppendUvarint(out, q.term)
		out = binary.AppendUvarint(out, q.commit)
	}
	return out
}

var errBadBeats = errors.New("raft: malformed host heartbeat")

func decodeHostBeat(b []byte) (hostBeat, error) {
	if len(b) == 0 {
		return hostBeat{}, fmt.Errorf("%w: empty", errBadBeats)
	}
	hb := hostBeat{kind: beatKind(b[0])}
	switch hb.kind {
	case beatFull, beatSame, beatWhich:
	default:
		return hostBeat{}, fmt.Errorf("%w: kind %q", errBadBeats, b[0])
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return hostBeat{}, fmt.Errorf("%w: version", errBadBeats)
	}
	hb.version, b = v, b[1+n:]
	if hb.kind != beatFull && len(b) > 0 {
		return hostBeat{}, fmt.Errorf("%w: %d bytes after a %q", errBadBeats, len(b), hb.kind)
	}
	for len(b) > 0 {
		var v [3]uint64
		for i := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return hostBeat{}, fmt.Errorf("%w: line %d", errBadBeats, len(hb.lines))
			}
			v[i], b = x, b[n:]
		}
		if len(hb.lines) == maxBeatLines {
			return hostBeat{}, fmt.Errorf("%w: more than %d lines", errBadBeats, maxBeatLines)
		}
		hb.lines = append(hb.lines, quietBeat{GroupID(v[0]), v[1], v[2]})
	}
	return hb, nil
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
	q := r.core.quietGroup(r.hosted.id, r.addrs)
	q.contact = &r.lastContact
	return q
}

// quietGroup describes a quiet core as group g for its host's tracker;
// known holds the addresses learned from messages, for a leader the
// configuration does not name.
func (c *core) quietGroup(g GroupID, known map[ServerID]ServerAddress) *quietGroup {
	conf := c.confs.latest().conf
	q := &quietGroup{quietBeat: quietBeat{group: g, term: c.term, commit: c.log.committed}, leader: c.role == roleLeader}
	if !q.leader {
		q.timeout = c.cfg.electionTicks
		if q.leaderAddr, _ = conf.address(c.lead); q.leaderAddr == "" {
			q.leaderAddr = known[c.lead]
		}
		return q
	}
	// Twice the election timeout, not the lease timeout: a host slow to
	// answer under load must not wake its peers' leaders, which would
	// wake their followers in turn (groups that cannot stay quiet cost
	// the CPU that makes the answers late). A leader cut off from its
	// quorum thus steps down within three election timeouts, by then
	// long replaced; it holds no lease while quiet.
	q.timeout = 2 * c.cfg.electionTicks
	for _, s := range conf.Servers {
		if s.ID != c.id() {
			q.peers = append(q.peers, s.Address)
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
// each peer host this round's heartbeat, and wakes the quiet groups that
// stopped hearing from their leader or a quorum.
func (h *Host) watchQuiet() {
	h.quietMu.Lock()
	beats := h.quiet.beats()
	wakes := h.quiet.expired()
	h.quietMu.Unlock()
	for addr, b := range beats {
		h.sendHostBeat(addr, MsgHeartbeat, b)
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

func (h *Host) sendHostBeat(to ServerAddress, typ MessageType, b hostBeat) {
	local := h.conf.Transport.LocalAddr()
	m := &Message{Type: typ, From: ServerID(local), FromAddr: local, To: ServerID(to), Context: encodeHostBeat(b)}
	if err := h.conf.Transport.Send(to, hostGroup, m); err != nil {
		h.logger.Debug("host heartbeat not sent", "to", to, "err", err)
	}
}

// hostMessage handles a peer host's heartbeat for its quiet groups, or
// the answer to ours.
func (h *Host) hostMessage(m *Message) {
	b, err := decodeHostBeat(m.Context)
	if err != nil {
		h.logger.Warn("dropping host message", "from", m.FromAddr, "err", err)
		return
	}
	switch m.Type {
	case MsgHeartbeat:
		h.quietMu.Lock()
		vouched, answer := h.quiet.heardBeat(m.FromAddr, b)
		// The leader is alive: LastContact stays fresh while quiet.
		now := time.Now().UnixNano()
		for _, q := range vouched {
			if q.contact != nil {
				q.contact.Store(now)
			}
		}
		h.quietMu.Unlock()
		if answer.kind != 0 {
			h.sendHostBeat(m.FromAddr, MsgHeartbeatResp, answer)
		}
	case MsgHeartbeatResp:
		h.quietMu.Lock()
		h.quiet.heardAnswer(m.FromAddr, b)
		h.quietMu.Unlock()
	default:
		h.logger.Warn("dropping host message", "from", m.FromAddr, "type", m.Type)
	}
}
