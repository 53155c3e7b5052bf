package raft

import "sort"

// The log cache: a bound on the memory the core's log holds. Entries that
// are applied and durable are evicted, oldest first, once the entries in
// memory exceed coreConfig.logCacheBytes; only their terms stay (as runs,
// a few per term change), which is all the consistency check, the
// conflict hints and elections need. A leader that must send a follower
// evicted entries asks the driver to read them from the LogStore
// (ready.loads) and sends them when they arrive (core.loaded), one read
// per follower at a time.

// entryOverhead approximates what an entry costs in memory beyond its
// data: the Log struct and the slice header of Data.
const entryOverhead = 64

func entrySize(e *Log) uint64 { return uint64(len(e.Data)) + entryOverhead }

// termRun says that the entries from first on, up to the next run's first,
// have term.
type termRun struct {
	first, term uint64
}

// evictedTerm returns the term of index in (snapIndex, base].
func (l *raftLog) evictedTerm(index uint64) uint64 {
	i := sort.Search(len(l.runs), func(i int) bool { return l.runs[i].first > index })
	return l.runs[i-1].term
}

// evictedConflictByTerm continues findConflictByTerm below the entries in
// memory: index <= base.
func (l *raftLog) evictedConflictByTerm(index, term uint64) (uint64, uint64) {
	for i := len(l.runs) - 1; i >= 0 && index > l.snapIndex; i-- {
		r := l.runs[i]
		if r.first > index {
			continue
		}
		if r.term <= term {
			return index, r.term
		}
		index = r.first - 1
	}
	return l.snapIndex, l.snapTerm
}

// recount recomputes memBytes and appliedBytes from the entries.
func (l *raftLog) recount() {
	l.memBytes, l.appliedBytes, l.backlogBytes = 0, 0, 0
	for i := range l.entries {
		n := entrySize(&l.entries[i])
		l.memBytes += n
		switch idx := l.entries[i].Index; {
		case idx <= l.applied:
			l.appliedBytes += n
		case idx <= l.applying:
			l.backlogBytes += n
		}
	}
}

// pendingBytes is the size of the entries in memory not yet applied: on a
// leader, its proposals on their way through replication, commit and
// apply.
func (l *raftLog) pendingBytes() uint64 { return l.memBytes - l.appliedBytes }

// setApplied records that the FSM applied every entry up to index.
func (l *raftLog) setApplied(index uint64) {
	for i := max(l.applied, l.base) + 1; i <= index && i <= l.lastIndex(); i++ {
		n := entrySize(l.entry(i))
		l.appliedBytes += n
		l.backlogBytes -= min(n, l.backlogBytes)
	}
	l.applied = index
}

// evict drops applied, durable entries from memory, oldest first, while
// the entries in memory take more than limit bytes; it brings them down
// to three quarters of limit so that evictions (each a copy of what stays)
// come in batches. limit 0 means no bound.
func (l *raftLog) evict(limit uint64) {
	if limit == 0 || l.memBytes <= limit {
		return
	}
	upTo := min(l.applied, l.stable, l.lastIndex())
	target := limit / 4 * 3
	n := 0
	freed := uint64(0)
	for n < len(l.entries) && l.entries[n].Index <= upTo && l.memBytes-freed > target {
		e := &l.entries[n]
		if len(l.runs) == 0 || l.runs[len(l.runs)-1].term != e.Term {
			l.runs = append(l.runs, termRun{first: e.Index, term: e.Term})
		}
		freed += entrySize(e)
		n++
	}
	if n == 0 {
		return
	}
	l.base += uint64(n)
	// Copy what stays: the evicted entries' memory goes once no message or
	// job still holds them (the old array is never written to).
	l.entries = append([]Log(nil), l.entries[n:]...)
	l.memBytes -= freed
	l.appliedBytes -= freed
}

// forget moves the start of the log to index (a compaction or an
// installed snapshot): runs at or below it go, and entries too when
// index is beyond base.
func (l *raftLog) forget(index, term uint64) {
	if index >= l.base {
		if index > l.base {
			l.entries = append([]Log(nil), l.entries[min(index-l.base, uint64(len(l.entries))):]...)
		}
		l.base = index
		l.runs = nil
	} else {
		i := sort.Search(len(l.runs), func(i int) bool { return l.runs[i].first > index })
		if i > 0 {
			// The run holding index+1 starts there now.
			l.runs = append([]termRun(nil), l.runs[i-1:]...)
			l.runs[0].first = index + 1
		}
	}
	l.snapIndex, l.snapTerm = index, term
	l.recount()
}

// dropEvictedFrom forgets the evicted entries from index on, and every
// entry in memory. Only a planted bug (TruncateCommitted) replaces entries
// that old: they are applied.
func (l *raftLog) dropEvictedFrom(index uint64) {
	i := sort.Search(len(l.runs), func(i int) bool { return l.runs[i].first >= index })
	l.runs = l.runs[:i:i]
	l.entries, l.base = nil, index-1
}

// reset empties the log: it starts after (index, term).
func (l *raftLog) reset(index, term uint64) {
	l.entries, l.runs = nil, nil
	l.base, l.snapIndex, l.snapTerm = index, index, term
	l.recount()
}

// applyBacklogFull reports whether a follower's applier holds
// MaxPendingBytes of committed entries its FSM has not applied yet: it
// takes no new entries until the FSM catches up, so that a slow FSM cannot
// make it buffer without bound. Only the apply backlog counts, never
// uncommitted entries: those commit only once this server takes the
// leader's newer ones, so refusing for them could stall forever. Entries
// replacing a conflicting suffix are always taken.
func (c *core) applyBacklogFull() bool {
	return c.cfg.maxPendingBytes > 0 && c.log.backlogBytes > c.cfg.maxPendingBytes
}

// logLoad asks the driver for the entries [Lo, Hi] from the LogStore, up
// to MaxBytes of data beyond the first entry, for a leader of Term to send
// to follower To, or (To empty) for the applier.
type logLoad struct {
	To       ServerID
	Term     uint64
	Lo, Hi   uint64
	MaxBytes uint64
}

// startLog is a log as read at start-up: the configuration entries and
// term runs of (snapIndex, base], and the entries after base, in memory.
type startLog struct {
	base    uint64
	runs    []termRun
	confs   []Log
	entries []Log
}

// startLogBuilder builds a startLog from the entries after the snapshot,
// given in order, keeping at most limit bytes of them in memory (0: all),
// so that a restart with a long log stays within the cache bound too.
type startLogBuilder struct {
	limit uint64
	sl    startLog
	first int // sl.entries[first:] are kept
	bytes uint64
}

func newStartLogBuilder(snapIndex, limit uint64) *startLogBuilder {
	return &startLogBuilder{limit: limit, sl: startLog{base: snapIndex}}
}

func (b *startLogBuilder) add(e Log) {
	b.sl.entries = append(b.sl.entries, e)
	b.bytes += entrySize(&e)
	for b.limit > 0 && b.bytes > b.limit && b.first < len(b.sl.entries) {
		old := &b.sl.entries[b.first]
		if len(b.sl.runs) == 0 || b.sl.runs[len(b.sl.runs)-1].term != old.Term {
			b.sl.runs = append(b.sl.runs, termRun{first: old.Index, term: old.Term})
		}
		if old.Type == LogConfiguration {
			b.sl.confs = append(b.sl.confs, *old)
		}
		b.bytes -= entrySize(old)
		b.sl.base = old.Index
		*old = Log{}
		b.first++
		if b.first > len(b.sl.entries)/2 {
			// Copy what stays, so that memory stays within twice the bound.
			b.sl.entries = append([]Log(nil), b.sl.entries[b.first:]...)
			b.first = 0
		}
	}
}

func (b *startLogBuilder) result() startLog {
	b.sl.entries = b.sl.entries[b.first:]
	return b.sl
}

// takeApply returns the entries to hand to the applier now: those read
// back from the LogStore, or the committed, durable ones in memory. Entries
// out of memory (evicted at start-up, before they were applied) are asked
// for first.
func (c *core) takeApply() []Log {
	if ents := c.applyLoaded; ents != nil {
		c.applyLoaded = nil
		return ents
	}
	l := c.log
	if l.applying >= l.base {
		return l.toApply(c.applyLimit())
	}
	hi := min(l.committed, l.stable, c.applyLimit(), l.base)
	if hi > l.applying && !c.applyLoading {
		c.applyLoading = true
		c.loads = append(c.loads, logLoad{Lo: l.applying + 1, Hi: hi, MaxBytes: c.cfg.maxAppendBytes})
	}
	return nil
}

// requestLoad asks the driver for the evicted entries follower to needs
// next, unless a read for it is under way already.
func (c *core) requestLoad(to ServerID) {
	pr := c.prs[to]
	if pr.loading != 0 {
		return
	}
	pr.loading = pr.next
	hi := min(c.log.base, pr.next+uint64(c.cfg.maxAppendEntries)-1)
	c.loads = append(c.loads, logLoad{To: to, Term: c.term, Lo: pr.next, Hi: hi, MaxBytes: c.cfg.maxAppendBytes})
}

// loaded hands the core the entries a logLoad read (none if they were
// compacted away meanwhile). They go to the follower if it still needs
// them, or (a load with no follower) to the applier if they are still
// next.
func (c *core) loaded(ld logLoad, ents []Log) {
	if ld.To == "" {
		c.applyLoading = false
		if len(ents) > 0 && ents[0].Index == c.log.applying+1 && ents[len(ents)-1].Index <= ld.Hi && c.loadedMatch(ents) {
			c.applyLoaded = ents
			c.log.applying = ents[len(ents)-1].Index
		}
		return
	}
	pr := c.prs[ld.To]
	if c.role != roleLeader || c.term != ld.Term || pr == nil || pr.loading != ld.Lo {
		return
	}
	pr.loading = 0
	if len(ents) > 0 && pr.next == ld.Lo && !pr.paused() {
		if prevTerm, ok := c.log.term(ld.Lo - 1); ok && ents[0].Index == ld.Lo && c.loadedMatch(ents) {
			c.sendEntries(ld.To, ld.Lo-1, prevTerm, ents)
		}
	}
	c.fillWindow(ld.To)
}

// loadedMatch checks that entries read back from the LogStore are the
// ones this log holds: contiguous, with the terms it knows.
func (c *core) loadedMatch(ents []Log) bool {
	for i := range ents {
		if ents[i].Index != ents[0].Index+uint64(i) || !c.log.matchTerm(ents[i].Index, ents[i].Term) {
			c.violation("the LogStore returned entry %d of term %d, which the log does not hold", ents[i].Index, ents[i].Term)
			return false
		}
	}
	return true
}
