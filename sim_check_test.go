package raft

import "slices"

// The simulator's safety checkers run on every output of every server and
// fail the seed at the first violation:
//
//   - election safety: at most one leader per term;
//   - leader append-only: a leader never overwrites or removes its entries;
//   - log matching: two logs with an entry of the same index and term hold
//     the same entries up to it;
//   - leader completeness: a leader holds every entry known committed;
//   - committed entries agree: no two servers commit different entries at
//     one index (which implies state machine safety for what they apply);
//   - AppendEntries from an older term is refused, with the newer term
//     (Figure 2: "reply false if term < currentTerm");
//   - the commit rule: a leader moves its commit index only onto an entry
//     of its own term (Figure 8; the consequence, a committed entry lost,
//     needs a rare sequence of elections to show);
//   - a server applies only committed entries, each exactly once and in
//     order, and its commit index never goes backwards (in one life).
//
// Logs are compared by chained hashes (each entry's hash covers every
// entry before it), so each check costs O(1) per new entry.

// simMirror follows one server's log as the checkers see it: the term and
// the chained hash of each entry, index i at [i-1].
type simMirror struct {
	terms []uint64
	chain []uint64
}

// resetAt makes the mirror a log that starts after a snapshot at index
// (the committed prefix) and holds ents after it.
func (m *simMirror) resetAt(k *simChecker, index uint64, ents []Log) {
	m.terms = append(m.terms[:0], k.committedTerm[:index]...)
	m.chain = append(m.chain[:0], k.committed[:index]...)
	m.append(ents)
}

// install replaces the mirror's prefix up to a snapshot at index with the
// committed prefix, keeping a suffix up to last if the core kept one.
func (m *simMirror) install(k *simChecker, index, last uint64) {
	keep := min(last, m.last())
	var suffixT, suffixC []uint64
	if keep > index {
		suffixT, suffixC = slices.Clone(m.terms[index:keep]), slices.Clone(m.chain[index:keep])
	}
	m.terms = append(append(m.terms[:0], k.committedTerm[:index]...), suffixT...)
	m.chain = append(append(m.chain[:0], k.committed[:index]...), suffixC...)
}

// append replaces the entries from ents[0].Index on.
func (m *simMirror) append(ents []Log) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	m.terms, m.chain = m.terms[:first-1], m.chain[:first-1]
	for i := range ents {
		prev := uint64(0)
		if len(m.chain) > 0 {
			prev = m.chain[len(m.chain)-1]
		}
		m.terms = append(m.terms, ents[i].Term)
		m.chain = append(m.chain, chainHash(prev, &ents[i]))
	}
}

func (m *simMirror) last() uint64 { return uint64(len(m.chain)) }

// chainHash is FNV-1a over the previous hash and the entry, written out so
// that it allocates nothing: the checkers hash every entry of every log.
func chainHash(prev uint64, e *Log) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, x := range [4]uint64{prev, e.Index, e.Term, uint64(e.Type)} {
		for i := 0; i < 8; i++ {
			h = (h ^ (x & 0xff)) * prime
			x >>= 8
		}
	}
	for _, b := range e.Data {
		h = (h ^ uint64(b)) * prime
	}
	return h
}

type simChecker struct {
	s        *simCluster
	leaderOf map[uint64]ServerID
	// maxLeaderTerm is the latest term a leader was elected in.
	maxLeaderTerm uint64
	entries       map[[2]uint64]uint64 // (index, term) -> chained hash, for log matching
	// committed holds the chained hash and term of every entry known
	// committed, index i at [i-1], and the term of the server that first
	// reported it committed: it was committed in that term or earlier.
	committed     []uint64
	committedTerm []uint64
	committedIn   []uint64
	lives         map[ServerID]*simLife
}

// simLife is what the checkers remember about one server in one life.
type simLife struct {
	commit     uint64
	applied    uint64
	leaderTerm uint64 // the term it leads, 0 if it does not
	leaderLast uint64 // its last index as leader of leaderTerm
}

func newSimChecker(s *simCluster) *simChecker {
	return &simChecker{s: s, leaderOf: map[uint64]ServerID{}, entries: map[[2]uint64]uint64{}, lives: map[ServerID]*simLife{}}
}

func (k *simChecker) restarted(n *simNode, snapIndex uint64) {
	k.lives[n.id] = &simLife{commit: snapIndex, applied: snapIndex}
	if n.s.opt.lazyHardState {
		return // that planted bug lets a term's messages out before it is durable
	}
	// A term this server led that did not survive its crash never left it:
	// behind a hung disk every message waits for the term to be durable
	// (holdBehindHungDisk), so only a sole voter can win such an election,
	// and no one saw it lead. Forget that leadership, or a later leader of
	// a lower term would look stale to the lease check.
	k.maxLeaderTerm = 0
	for t, id := range k.leaderOf {
		if id == n.id && t > n.c.term {
			delete(k.leaderOf, t)
			continue
		}
		k.maxLeaderTerm = max(k.maxLeaderTerm, t)
	}
}

// installed records that a server's state jumped to a snapshot at index.
func (k *simChecker) installed(n *simNode, index uint64) {
	life := k.lives[n.id]
	life.applied = index
	life.commit = max(life.commit, index)
}

// appended checks entries a server just added to its log.
func (k *simChecker) appended(n *simNode, ents []Log) {
	if len(ents) == 0 {
		return
	}
	life := k.lives[n.id]
	if life.leaderTerm != 0 && life.leaderTerm == n.c.term && ents[0].Index <= life.leaderLast {
		k.s.fail("leader append-only: %s, leader of term %d, rewrote its log from index %d (its last was %d)",
			n.id, life.leaderTerm, ents[0].Index, life.leaderLast)
		return
	}
	n.mirror.append(ents)
	for i := ents[0].Index; i <= n.mirror.last(); i++ {
		key := [2]uint64{i, n.mirror.terms[i-1]}
		h := n.mirror.chain[i-1]
		if prev, ok := k.entries[key]; ok && prev != h {
			k.s.fail("log matching: %s holds entry (index %d, term %d) with a history other servers' copies do not have", n.id, i, key[1])
			return
		}
		k.entries[key] = h
	}
}

// staleAppendRefused checks what a server answered an append from an
// older term: only a refusal carrying its own, newer term.
func (k *simChecker) staleAppendRefused(n *simNode, m *Message) {
	for _, out := range [][]Message{n.c.msgs, n.c.msgsAfterAppend} {
		for _, r := range out {
			if r.To == m.From && r.Type == MsgAppendResp && (!r.Reject || r.Term <= m.Term) {
				k.s.fail("%s, in term %d, answered an append of term %d from %s with %+v", n.id, n.c.term, m.Term, m.From, r)
				return
			}
		}
	}
}

// leaseRead checks a lease read the leader n is about to serve without a
// round trip: no leader of a later term may have been elected yet, or the
// read may miss its writes. Stronger than the linearizability check, which
// needs such a write and a read to race.
func (k *simChecker) leaseRead(n *simNode) {
	if k.maxLeaderTerm > n.c.term {
		k.s.fail("lease read: %s, leader of term %d, served a read from its lease after %s was elected in term %d",
			n.id, n.c.term, k.leaderOf[k.maxLeaderTerm], k.maxLeaderTerm)
	}
}

// afterStep checks a server's role and commit index after it acted.
func (k *simChecker) afterStep(n *simNode) {
	c, life := n.c, k.lives[n.id]
	led := c.role == roleLeader && life.leaderTerm == c.term
	if led && c.log.committed > life.commit && n.mirror.terms[c.log.committed-1] != c.term {
		k.s.fail("commit rule: %s, leader of term %d, advanced its commit index to %d, an entry of term %d (Raft paper Figure 8)",
			n.id, c.term, c.log.committed, n.mirror.terms[c.log.committed-1])
		return
	}
	if c.role == roleLeader {
		if l, ok := k.leaderOf[c.term]; ok && l != n.id {
			k.s.fail("election safety: %s and %s both lead term %d", l, n.id, c.term)
			return
		}
		if life.leaderTerm != c.term {
			k.leaderOf[c.term] = n.id
			k.maxLeaderTerm = max(k.maxLeaderTerm, c.term)
			life.leaderTerm, life.leaderLast = c.term, c.log.lastIndex()
			k.s.record(n, "leader", "", c.term, c.log.lastIndex())
			k.completeness(n)
		}
		if c.log.lastIndex() < life.leaderLast {
			k.s.fail("leader append-only: %s, leader of term %d, shrank its log from %d to %d", n.id, c.term, life.leaderLast, c.log.lastIndex())
			return
		}
		life.leaderLast = c.log.lastIndex()
	} else {
		life.leaderTerm = 0
	}
	if c.log.committed < life.commit {
		k.s.fail("%s's commit index went back from %d to %d", n.id, life.commit, c.log.committed)
		return
	}
	if c.log.committed > n.mirror.last() {
		k.s.fail("%s committed %d beyond its last entry %d", n.id, c.log.committed, n.mirror.last())
		return
	}
	for i := life.commit + 1; i <= c.log.committed; i++ {
		k.commit(n, i)
	}
	life.commit = c.log.committed
}

// commit records that server n holds index i committed.
func (k *simChecker) commit(n *simNode, i uint64) {
	h, t := n.mirror.chain[i-1], n.mirror.terms[i-1]
	if i <= uint64(len(k.committed)) {
		if k.committed[i-1] != h {
			k.s.fail("committed entries disagree: %s committed (index %d, term %d), another server committed a different entry there (term %d)",
				n.id, i, t, k.committedTerm[i-1])
		}
		return
	}
	if i != uint64(len(k.committed))+1 {
		// Everything below a committed entry is committed: n's log
		// matches up to i, so take its entries for the gap too.
		for j := uint64(len(k.committed)) + 1; j < i; j++ {
			k.commit(n, j)
		}
	}
	k.committed = append(k.committed, h)
	k.committedTerm = append(k.committedTerm, t)
	k.committedIn = append(k.committedIn, n.c.term)
	// It was committed in a term no later than n's: leaders of later
	// terms must already hold it. (A leader of an earlier term, cut off
	// without CheckQuorum, need not.)
	for _, o := range k.s.nodes {
		if o.up() && o.c.role == roleLeader && o.c.term > n.c.term {
			if o.mirror.last() < i || o.mirror.chain[i-1] != h {
				k.s.fail("leader completeness: %s leads term %d without committed entry (index %d, term %d)", o.id, o.c.term, i, t)
			}
		}
	}
}

// completeness checks that a new leader holds every entry known committed
// in an earlier term than its own. (A leader of an old term can win late —
// its votes delayed — after entries committed in later terms; it need not
// hold those.)
func (k *simChecker) completeness(n *simNode) {
	last := uint64(len(k.committed))
	for last > 0 && k.committedIn[last-1] >= n.c.term {
		last--
	}
	if last == 0 {
		return
	}
	if n.mirror.last() < last || n.mirror.chain[last-1] != k.committed[last-1] {
		k.s.fail("leader completeness: %s became leader of term %d without committed entry %d (term %d)",
			n.id, n.c.term, last, k.committedTerm[last-1])
	}
}

// applied checks an entry a server applies: the next in order, and the
// entry committed at its index.
func (k *simChecker) applied(n *simNode, e *Log) {
	life := k.lives[n.id]
	if e.Index != life.applied+1 {
		k.s.fail("%s applied index %d after %d", n.id, e.Index, life.applied)
		return
	}
	life.applied = e.Index
	if e.Index > uint64(len(k.committed)) {
		k.s.fail("%s applied index %d, which is not known committed (highest %d)", n.id, e.Index, len(k.committed))
		return
	}
	if n.mirror.chain[e.Index-1] != k.committed[e.Index-1] {
		k.s.fail("state machine safety: %s applied (index %d, term %d), not the entry committed there (term %d)",
			n.id, e.Index, e.Term, k.committedTerm[e.Index-1])
	}
}
