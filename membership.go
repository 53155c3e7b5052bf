package raft

import (
	"fmt"
	"slices"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// ServerID identifies a server for its whole life, whatever its address.
type ServerID string

// ServerAddress is where a Transport reaches a server.
type ServerAddress string

// ServerSuffrage says whether a server votes.
type ServerSuffrage uint8

const (
	// Voter servers vote in elections and count toward commit quorums.
	Voter ServerSuffrage = iota
	// Nonvoter servers receive the log but do not vote or count toward
	// quorums. New servers join as nonvoters and are promoted once caught up.
	Nonvoter
)

// String returns "Voter" or "Nonvoter".
func (s ServerSuffrage) String() string {
	switch s {
	case Voter:
		return "Voter"
	case Nonvoter:
		return "Nonvoter"
	default:
		return fmt.Sprintf("ServerSuffrage(%d)", uint8(s))
	}
}

// Server is one member of a Configuration.
type Server struct {
	Suffrage ServerSuffrage
	ID       ServerID
	Address  ServerAddress
}

// Configuration is the membership of the cluster.
//
// While a joint-consensus change is under way, Servers is the new
// configuration C_new and Old the configuration being left, C_old: elections
// and commits then need a majority of the voters of each. Old is empty at all
// other times.
type Configuration struct {
	Servers []Server
	Old     []Server
}

// Clone returns a deep copy.
func (c Configuration) Clone() Configuration {
	return Configuration{Servers: slices.Clone(c.Servers), Old: slices.Clone(c.Old)}
}

// Joint reports whether the configuration is a joint C_old,new.
func (c Configuration) Joint() bool { return len(c.Old) > 0 }

// Validate checks that IDs and addresses are set and unique within each half,
// and that there is at least one voter in each.
func (c Configuration) Validate() error {
	if err := validateServers(c.Servers); err != nil {
		return err
	}
	if c.Joint() {
		if err := validateServers(c.Old); err != nil {
			return fmt.Errorf("old configuration: %w", err)
		}
	}
	return nil
}

func validateServers(servers []Server) error {
	ids := make(map[ServerID]bool, len(servers))
	addrs := make(map[ServerAddress]bool, len(servers))
	voters := 0
	for _, s := range servers {
		if s.ID == "" {
			return fmt.Errorf("configuration: server with address %q has an empty ID", s.Address)
		}
		if s.Address == "" {
			return fmt.Errorf("configuration: server %q has an empty address", s.ID)
		}
		if ids[s.ID] {
			return fmt.Errorf("configuration: server ID %q appears twice", s.ID)
		}
		if addrs[s.Address] {
			return fmt.Errorf("configuration: address %q appears twice", s.Address)
		}
		if s.Suffrage != Voter && s.Suffrage != Nonvoter {
			return fmt.Errorf("configuration: server %q has unknown suffrage %d", s.ID, s.Suffrage)
		}
		ids[s.ID], addrs[s.Address] = true, true
		if s.Suffrage == Voter {
			voters++
		}
	}
	if voters == 0 {
		return fmt.Errorf("configuration: no voter")
	}
	return nil
}

// encodeConfiguration encodes a configuration as the Data of a
// LogConfiguration entry.
func encodeConfiguration(c Configuration) []byte {
	var b []byte
	if err := codec.NewEncoderBytes(&b, wireHandle).Encode(c); err != nil {
		// Encoding a plain struct into memory cannot fail.
		panic(fmt.Sprintf("raft: encode configuration: %v", err))
	}
	return b
}

// decodeConfiguration decodes and validates the Data of a LogConfiguration
// entry.
func decodeConfiguration(b []byte) (Configuration, error) {
	var c Configuration
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(&c); err != nil {
		return Configuration{}, fmt.Errorf("decode configuration: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Configuration{}, err
	}
	return c, nil
}

// voterIDs returns the IDs of the voters among servers, sorted so that
// everything derived from them is deterministic.
func voterIDs(servers []Server) []ServerID {
	var ids []ServerID
	for _, s := range servers {
		if s.Suffrage == Voter {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// memberIDs returns every server of both halves, sorted, without duplicates.
func (c Configuration) memberIDs() []ServerID {
	var ids []ServerID
	for _, s := range c.Servers {
		ids = append(ids, s.ID)
	}
	for _, s := range c.Old {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// address returns the address of server id in either half.
func (c Configuration) address(id ServerID) (ServerAddress, bool) {
	for _, s := range c.Servers {
		if s.ID == id {
			return s.Address, true
		}
	}
	for _, s := range c.Old {
		if s.ID == id {
			return s.Address, true
		}
	}
	return "", false
}

// confEntry is a configuration and the index of the log entry carrying it.
type confEntry struct {
	index uint64
	conf  Configuration
}

// configs tracks the configuration entries in the log. A server uses the
// latest one from the moment it appends it (Raft dissertation §4.1), so when
// a conflicting suffix is truncated the configuration must roll back: the
// list keeps every configuration entry above the newest committed one.
//
// Invariant: entries is non-empty and ascending by index; entries[0] is the
// base (from a snapshot, or the empty configuration at index 0).
type configs struct {
	entries []confEntry
}

func newConfigs(base confEntry) configs { return configs{entries: []confEntry{base}} }

func (cs *configs) latest() confEntry { return cs.entries[len(cs.entries)-1] }

// committed returns the newest configuration at or below commitIndex.
func (cs *configs) committed(commitIndex uint64) confEntry {
	for i := len(cs.entries) - 1; i > 0; i-- {
		if cs.entries[i].index <= commitIndex {
			return cs.entries[i]
		}
	}
	return cs.entries[0]
}

func (cs *configs) add(e confEntry) { cs.entries = append(cs.entries, e) }

// truncateFrom drops the configurations of entries at or above index and
// reports whether it dropped any.
func (cs *configs) truncateFrom(index uint64) bool {
	n := len(cs.entries)
	for n > 1 && cs.entries[n-1].index >= index {
		n--
	}
	dropped := n < len(cs.entries)
	cs.entries = cs.entries[:n]
	return dropped
}

// compact forgets configurations older than the newest committed one,
// which can never be rolled back to.
func (cs *configs) compact(commitIndex uint64) {
	for len(cs.entries) > 1 && cs.entries[1].index <= commitIndex {
		cs.entries = cs.entries[1:]
	}
}

// The leader's side of membership changes (Raft dissertation §4.3, joint
// consensus). A change request names the whole configuration wanted. Servers
// that are to become voters but are not voters yet are first added (or kept)
// as nonvoters; once every one of them has stayed within promotionMaxLag
// entries of the leader's last index for promotionStableTicks ticks, the
// leader appends the requested configuration. When that changes the set of
// voters, it goes through C_old,new: the leader appends
// Configuration{Servers: new, Old: old}, and once that entry commits (by a
// majority of each half) it appends C_new on its own. A change that leaves
// the voters as they are (adding or removing a nonvoter, a new address) is
// appended directly. One change is under way at a time.

// confChange is the membership change a leader is carrying out.
type confChange struct {
	seq    uint64
	term   uint64        // the leader's term when it accepted the change
	target Configuration // what the change ends with; never joint
	// promote lists the servers that must catch up before the final step.
	promote []promotion
	// final: the step to target has been appended, at finalIndex.
	final      bool
	finalIndex uint64
}

// promotion tracks a nonvoter that the leader will make a voter once it has
// caught up.
type promotion struct {
	id     ServerID
	stable int // consecutive ticks within promotionMaxLag of the leader
}

// memberState is the core's bookkeeping of membership changes.
type memberState struct {
	change *confChange // the change under way, on the leader
	seq    uint64      // changes accepted so far
	done   uint64      // the seq of the last change completed
}

// confChangeAllowed reports why a change cannot start now, if it cannot:
// one change at a time, none during a leadership transfer, and none before
// the leader has committed an entry of its term (until then it may not know
// the latest committed configuration: etcd's rule, see the Raft mailing
// list's "bug in single-server membership changes").
func (c *core) confChangeAllowed() error {
	latest := c.confs.latest()
	switch {
	case c.role != roleLeader:
		return errNotLeader
	case c.transfer.active:
		return fmt.Errorf("%w: no configuration change during a leadership transfer to %s", ErrLeadershipTransferInProgress, c.transfer.target)
	case c.member.change != nil:
		return fmt.Errorf("%w: an earlier change is under way", ErrConfigChangeInProgress)
	case latest.conf.Joint() || latest.index > c.log.committed:
		return fmt.Errorf("%w: the configuration at index %d is not committed yet", ErrConfigChangeInProgress, latest.index)
	case !c.committedInTerm():
		return fmt.Errorf("%w: the leader has not committed an entry of its term yet", ErrConfigChangeInProgress)
	}
	return nil
}

// changeConfig starts a change to target and returns its sequence number,
// with which changeStatus reports when it is done.
func (c *core) changeConfig(target Configuration) (uint64, error) {
	if err := c.confChangeAllowed(); err != nil {
		return 0, err
	}
	if target.Joint() {
		return 0, fmt.Errorf("%w: the requested configuration is joint (Old is set)", ErrInvalidConfiguration)
	}
	if err := target.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidConfiguration, err)
	}
	target = target.Clone()
	cur := c.confs.latest().conf
	c.member.seq++
	ch := &confChange{seq: c.member.seq, term: c.term, target: target}
	// Servers that are to vote but do not yet join (or stay) as nonvoters.
	first := cur.Clone()
	for _, s := range target.Servers {
		if s.Suffrage != Voter {
			continue
		}
		i := slices.IndexFunc(first.Servers, func(o Server) bool { return o.ID == s.ID })
		switch {
		case i < 0:
			first.Servers = append(first.Servers, Server{Suffrage: Nonvoter, ID: s.ID, Address: s.Address})
		case first.Servers[i].Suffrage == Voter:
			continue
		}
		ch.promote = append(ch.promote, promotion{id: s.ID})
	}
	c.member.change = ch
	switch {
	case len(ch.promote) > 0:
		if !sameServers(first.Servers, cur.Servers) {
			if err := first.Validate(); err != nil {
				// An address of a new server clashes with a current one.
				c.member.change = nil
				return 0, fmt.Errorf("%w: %w", ErrInvalidConfiguration, err)
			}
			c.appendConfStep(first)
		}
	case sameServers(target.Servers, cur.Servers):
		// Nothing to change.
		c.member.done, c.member.change = ch.seq, nil
	default:
		c.finalStep(ch)
	}
	return ch.seq, nil
}

// finalStep appends the change's target configuration.
func (c *core) finalStep(ch *confChange) {
	ch.final = true
	ch.finalIndex = c.appendConfStep(ch.target)
}

// appendConfStep appends next: directly when it has the same voters as the
// latest configuration, else as the joint C_old,new. It returns the entry's
// index.
func (c *core) appendConfStep(next Configuration) uint64 {
	cur := c.confs.latest().conf
	entry := Configuration{Servers: next.Servers}
	if !slices.Equal(voterIDs(cur.Servers), voterIDs(next.Servers)) {
		entry.Old = cur.Servers
	}
	return c.appendConfEntry(entry)
}

// appendConfEntry appends a configuration entry to the leader's log and
// sends it.
func (c *core) appendConfEntry(conf Configuration) uint64 {
	index := c.log.lastIndex() + 1
	c.appendLog([]Log{{Index: index, Term: c.term, Type: LogConfiguration, Data: encodeConfiguration(conf)}})
	c.bcastAppend()
	return index
}

// sameServers reports whether two server lists hold the same servers, in
// any order.
func sameServers(a, b []Server) bool {
	if len(a) != len(b) {
		return false
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// tickPromotions counts how long each server waiting for promotion has been
// caught up (holding the latest configuration entry, and within
// promotionMaxLag entries of the leader's last index), and appends the final step once all of them have been for
// promotionStableTicks ticks (at least one). Catching up counts only while
// the latest configuration is committed.
func (c *core) tickPromotions() {
	ch := c.member.change
	if ch == nil || ch.final || ch.term != c.term {
		return
	}
	latest := c.confs.latest()
	settled := latest.index <= c.log.committed && !latest.conf.Joint()
	last := c.log.lastIndex()
	ready := true
	for i := range ch.promote {
		p := &ch.promote[i]
		pr := c.prs[p.id]
		// Caught up: it holds the configuration that made it a member (so
		// it has answered since), and is within promotionMaxLag entries.
		if settled && pr != nil && pr.match >= latest.index && pr.match+c.cfg.promotionMaxLag >= last {
			p.stable++
		} else {
			p.stable = 0
		}
		if p.stable < max(1, c.cfg.promotionStableTicks) {
			ready = false
		}
	}
	if ready {
		c.finalStep(ch)
	}
}

// abortChange gives up the change seq if its final step has not been
// appended yet (the caller stopped waiting for a server to catch up). It
// reports whether it did.
func (c *core) abortChange(seq uint64) bool {
	if ch := c.member.change; ch != nil && ch.seq == seq && !ch.final {
		c.member.change = nil
		return true
	}
	return false
}

// changeStatus reports whether change seq is over and, if so, its error: nil
// when the configuration it asked for is committed, ErrLeadershipLost when
// this server stopped leading before that.
func (c *core) changeStatus(seq uint64) (done bool, err error) {
	switch {
	case c.member.done >= seq:
		return true, nil
	case c.member.change == nil || c.member.change.seq != seq:
		return true, ErrLeadershipLost
	}
	return false, nil
}

// advanceMembership applies the rules that follow from what the last inputs
// committed; ready runs it first. On a leader: a committed C_old,new is
// followed by C_new; a committed change completes; a leader that is no
// voter of its committed configuration hands over and steps down.
func (c *core) advanceMembership() {
	c.checkTransfer()
	if ch := c.member.change; ch != nil && (c.role != roleLeader || ch.term != c.term) {
		c.member.change = nil // leadership lost: the driver fails the request
	}
	if c.role != roleLeader {
		return
	}
	latest := c.confs.latest()
	if latest.index > c.log.committed {
		return
	}
	if latest.conf.Joint() {
		c.appendConfEntry(Configuration{Servers: latest.conf.Servers})
		return
	}
	if ch := c.member.change; ch != nil && ch.final && latest.index >= ch.finalIndex {
		c.member.done, c.member.change = ch.seq, nil
	}
	if !c.isVoter(c.id()) {
		// Removed (or demoted) by the committed configuration: let the
		// most up-to-date voter campaign at once instead of waiting for an
		// election timeout, then step down.
		if to := c.mostUpToDateVoter(); to != "" && c.prs[to].match >= c.log.lastIndex() {
			c.send(Message{Type: MsgTimeoutNow, To: to})
		}
		c.becomeFollower(c.term, "")
	}
}

// mostUpToDateVoter returns the voter of the latest configuration (other
// than this server) whose log matches the leader's furthest, the first in ID
// order on ties, or "" when there is none.
func (c *core) mostUpToDateVoter() ServerID {
	var best ServerID
	for _, id := range c.incoming {
		pr, ok := c.prs[id]
		if id == c.id() || !ok {
			continue
		}
		if best == "" || pr.match > c.prs[best].match {
			best = id
		}
	}
	return best
}

// canCampaign reports whether this server may start an election: it is a
// voter of its latest configuration, or the latest is not known to be
// committed and it is a voter of the one before. The second case is the
// Raft dissertation's §4.2.2: a server that a pending C_new leaves out may
// still be needed to commit it (say the leader that appended C_new lost
// leadership and the only servers with C_new in their logs are ones it
// removes); it then campaigns under its latest configuration, where its
// own vote does not count. Once it knows C_new is committed, it never
// campaigns again.
//
// The configuration before the latest is committed: a leader appends a
// configuration only once the one before it has committed. That holds
// even where this server's commit index does not show it (after a
// restart the commit index starts at the snapshot), which is why the rule
// looks at the previous entry rather than at what is known committed: the
// simulator found a cluster that could elect no leader when a restarted
// server, the only one holding C_new, judged by its commit index (seed 487).
func (c *core) canCampaign() bool {
	if c.isVoter(c.id()) {
		return true
	}
	if c.confs.latest().index <= c.log.committed || len(c.confs.entries) < 2 {
		return false
	}
	prev := c.confs.entries[len(c.confs.entries)-2].conf
	return slices.Contains(voterIDs(prev.Servers), c.id()) || slices.Contains(voterIDs(prev.Old), c.id())
}
