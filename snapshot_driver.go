package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
)

// The driver's side of snapshots: taking them (FSM.Snapshot on the
// applier, Persist on a goroutine of its own), compacting the LogStore,
// restoring the FSM, and choosing the snapshot to start from. The core's
// side is in snapshot.go; sending and receiving in snapshot_send.go and
// snapshot_recv.go. None of it calls the SnapshotStore, a sink or
// FSMSnapshot.Persist on the event loop (the loop only hands work to the
// applier and the snapshot goroutines and hears back through toLoop), so a
// store that hangs never holds up heartbeats or commits
// (TestStuckSnapshotDoesNotBlockTheLeader).

// snapDriver is the snapshot state of a Raft, embedded in it. Fields are
// owned by the event loop unless noted.
type snapDriver struct {
	snaps SnapshotStore
	// snapMeta is the newest snapshot this server holds (taken, received or
	// restored at start).
	snapMeta SnapshotMeta
	// snapshotting: a snapshot is being taken; snapWaiters are the user
	// requests it will answer, snapQueued those that arrived meanwhile.
	snapshotting bool
	snapWaiters  []*snapshotFuture
	snapQueued   []*snapshotFuture
	senders      map[ServerID]*snapshotSender
	receiver     *snapshotReceiver
	// restoring: Restore is under way; proposals are refused.
	restoring bool
}

// SnapshotFuture is the result of Snapshot.
type SnapshotFuture interface {
	Future
	// Open returns the snapshot's metadata and a reader of its contents,
	// once Error has returned nil. The caller closes the reader. The
	// contents are keel's header (the client session table) followed by
	// the FSM's bytes: what Restore takes.
	Open() (*SnapshotMeta, io.ReadCloser, error)
}

type snapshotFuture struct {
	*future
	snaps SnapshotStore
	meta  SnapshotMeta
}

func (f *snapshotFuture) Open() (*SnapshotMeta, io.ReadCloser, error) {
	if err := f.Error(); err != nil {
		return nil, nil, err
	}
	return f.snaps.Open(f.meta.ID)
}

// Snapshot takes a snapshot of the FSM now, stores it and compacts the log
// behind it (keeping Config.TrailingLogs entries), as the server does on
// its own every SnapshotInterval once SnapshotThreshold entries have been
// applied. The future fails with ErrNothingNewToSnapshot if nothing was
// applied since the last snapshot. The event loop is not blocked: the FSM
// captures its state on the applier and persists it on another goroutine
// while the cluster goes on committing.
func (r *Raft) Snapshot(ctx context.Context) SnapshotFuture {
	f := &snapshotFuture{future: newFuture(ctx, r.shutdownCh), snaps: r.snaps}
	if err := r.do(ctx, func() { r.startSnapshot(f) }); err != nil {
		f.respond(0, nil, err)
	}
	return f
}

// startSnapshot asks the applier for a snapshot, or queues f behind the
// one under way. Event loop only.
func (r *Raft) startSnapshot(f *snapshotFuture) {
	if r.snapshotting {
		if f != nil {
			r.snapQueued = append(r.snapQueued, f)
		}
		return
	}
	if f != nil {
		r.snapWaiters = append(r.snapWaiters, f)
	}
	r.snapshotting = true
	minIndex := r.core.snapIndex
	r.applier.submit(applyBatch{op: func() { r.takeSnapshot(minIndex) }})
}

// maybeAutoSnapshot starts a snapshot when SnapshotThreshold entries were
// applied since the last one. Event loop only.
func (r *Raft) maybeAutoSnapshot() {
	if !r.snapshotting && r.core.log.applied >= r.core.snapIndex+r.conf.SnapshotThreshold {
		r.startSnapshot(nil)
	}
}

// maybeSnapshotForLogSize starts a snapshot as soon as SnapshotMaxEntries
// entries were applied since the last one. Event loop only.
func (r *Raft) maybeSnapshotForLogSize() {
	limit := max(orDefault(r.conf.SnapshotMaxEntries, defaultSnapMaxEnts), r.conf.SnapshotThreshold)
	if !r.snapshotting && r.core.log.applied >= r.core.snapIndex+limit {
		r.startSnapshot(nil)
	}
}

// runSnapshotTicker checks the threshold every SnapshotInterval, jittered.
func (r *Raft) runSnapshotTicker() {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	iv := r.conf.SnapshotInterval
	t := time.NewTimer(iv + time.Duration(rng.Int64N(int64(iv))))
	defer t.Stop()
	for {
		select {
		case <-r.shutdownCh:
			return
		case <-t.C:
			r.toLoop(r.maybeAutoSnapshot)
			t.Reset(iv + time.Duration(rng.Int64N(int64(iv))))
		}
	}
}

// toLoop runs fn on the event loop, unless the server shuts down first.
// Workers report to the loop through it.
func (r *Raft) toLoop(fn func()) bool {
	select {
	case r.opCh <- fn:
		r.wakeLoop()
		return true
	case <-r.shutdownCh:
		return false
	}
}

// takeSnapshot runs on the applier, between two applies: the FSM captures
// exactly what is applied, and a goroutine of its own persists it.
func (r *Raft) takeSnapshot(minIndex uint64) {
	a := r.applier
	index := a.applied.Load()
	if index <= minIndex {
		r.toLoop(func() { r.snapshotFinished(SnapshotMeta{}, ErrNothingNewToSnapshot) })
		return
	}
	meta := SnapshotMeta{Index: index, Term: a.lastTerm, Configuration: a.conf.Clone(), ConfigurationIndex: a.confIndex}
	// The session table as of index, encoded here: the applier changes it.
	hdr, err := encodeSnapshotHeader(a.sessions)
	if err != nil {
		r.toLoop(func() { r.snapshotFinished(SnapshotMeta{}, err) })
		return
	}
	start := r.metrics.now()
	fs, err := a.fsm.Snapshot()
	if err != nil {
		r.metrics.snapshotFailed()
		err = fmt.Errorf("raft: FSM snapshot at index %d: %w", index, err)
		r.toLoop(func() { r.snapshotFinished(SnapshotMeta{}, err) })
		return
	}
	r.metrics.snapshotTaken(start)
	// The applier is counted in wg, so this Add cannot race Shutdown's Wait.
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		start := r.metrics.now()
		m, err := r.persistSnapshot(fs, meta, hdr)
		r.metrics.snapshotPersisted(m.Size, start, err)
		fs.Release()
		r.toLoop(func() { r.snapshotFinished(m, err) })
	}()
}

// persistSnapshot writes keel's header hdr, then the FSM's snapshot, to
// the store.
func (r *Raft) persistSnapshot(fs FSMSnapshot, meta SnapshotMeta, hdr []byte) (SnapshotMeta, error) {
	return persistSnapshotTo(r.snaps, r.shutdownCh, fs, meta, hdr)
}

// persistSnapshotTo writes hdr and then fs to a new snapshot in snaps;
// writes fail once stop is closed (nil: never).
func persistSnapshotTo(snaps SnapshotStore, stop <-chan struct{}, fs FSMSnapshot, meta SnapshotMeta, hdr []byte) (SnapshotMeta, error) {
	sink, err := snaps.Create(meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex)
	if err != nil {
		return meta, fmt.Errorf("raft: create snapshot at index %d: %w", meta.Index, err)
	}
	meta.ID = sink.ID()
	cs := &guardedSink{SnapshotSink: sink, stop: stop}
	if _, err := cs.Write(hdr); err != nil {
		cs.Cancel()
		return meta, fmt.Errorf("raft: persist snapshot %s: header: %w", meta.ID, err)
	}
	if err := fs.Persist(cs); err != nil {
		cs.Cancel()
		return meta, fmt.Errorf("raft: persist snapshot %s: %w", meta.ID, err)
	}
	if !cs.closed {
		cs.Cancel()
		return meta, fmt.Errorf("raft: persist snapshot %s: Persist returned without closing the sink", meta.ID)
	}
	meta.Size = cs.n
	return meta, nil
}

// guardedSink counts what is written, remembers Close, and fails writes
// once the server shuts down, so that a long Persist ends.
type guardedSink struct {
	SnapshotSink
	stop   <-chan struct{}
	n      int64
	closed bool
}

func (s *guardedSink) Write(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, ErrRaftShutdown
	default:
	}
	n, err := s.SnapshotSink.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *guardedSink) Close() error {
	err := s.SnapshotSink.Close()
	s.closed = err == nil
	return err
}

// snapshotFinished is the event loop's part of the end of a snapshot.
func (r *Raft) snapshotFinished(meta SnapshotMeta, err error) {
	r.snapshotting = false
	waiters := r.snapWaiters
	r.snapWaiters = nil
	if err == nil {
		r.logger.Info("snapshot taken", "id", meta.ID, "index", meta.Index, "size", meta.Size)
		if meta.Index > r.snapMeta.Index {
			r.snapMeta = meta
		}
		r.core.snapshotDone(meta.Index, meta.Term)
	} else if !errors.Is(err, ErrNothingNewToSnapshot) {
		r.logger.Error("snapshot failed", "err", err)
	}
	for _, f := range waiters {
		f.meta = meta
		f.respond(meta.Index, nil, err)
	}
	if len(r.snapQueued) > 0 {
		queued := r.snapQueued
		r.snapQueued = nil
		r.snapshotting = false
		r.startSnapshot(queued[0])
		r.snapWaiters = append(r.snapWaiters, queued[1:]...)
	}
}

// track records the term and configuration of applied entries.
func (a *applier) track(entries []Log) {
	if len(entries) == 0 {
		return
	}
	a.lastTerm = entries[len(entries)-1].Term
	for i := range entries {
		if entries[i].Type != LogConfiguration {
			continue
		}
		if c, err := decodeConfiguration(entries[i].Data); err == nil {
			a.conf, a.confIndex = c, entries[i].Index
		}
	}
}

// logCompaction trims the LogStore: the entries up to to, or (reset) every
// entry, the next one written being to+1.
type logCompaction struct {
	to    uint64
	reset bool
}

// compact deletes a prefix of the LogStore (or all of it) on the persister,
// in order with the writes around it.
func (p *persister) compact(c logCompaction) error {
	first, err := p.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft: compact log: read first index: %w", err)
	}
	hi := min(c.to, p.lastOnDisk)
	if c.reset {
		hi = p.lastOnDisk
	}
	if first > 0 && hi >= first {
		if err := p.logs.DeleteRange(first, hi); err != nil {
			return fmt.Errorf("raft: compact log [%d, %d]: %w", first, hi, err)
		}
	}
	if c.reset || p.lastOnDisk < c.to {
		p.lastOnDisk = c.to
	}
	return nil
}

// flushSnapshots acts on the snapshot outputs of a ready: start or stop
// transfers, hand received chunks to the receiver, restore the FSM.
func (r *Raft) flushSnapshots(rd *ready) {
	for _, s := range rd.snapshotSends {
		r.startSender(s)
	}
	for id, s := range r.senders {
		pr := r.core.prs[id]
		if r.core.role != roleLeader || r.core.term != s.term || pr == nil || pr.state != stateSnapshot || pr.pendingSnapshot != s.index {
			s.halt()
			delete(r.senders, id)
		}
	}
	for _, m := range rd.snapshotChunks {
		r.receiver.submit(recvChunk{m: m, addr: r.route(&Message{To: m.From}).addr})
	}
	if rd.restore != nil {
		meta := *rd.restore
		r.snapMeta = meta
		// Proposals a follower forwarded and the snapshot covers cannot
		// be told apart from other entries there: outcome unknown.
		for _, f := range r.takeInflight(meta.Index) {
			f.respond(0, nil, ErrLeadershipLost)
		}
		r.applier.submit(applyBatch{op: func() { r.restoreFSM(meta) }})
	}
}

// restoreFSM restores the FSM from a stored snapshot, on the applier. A
// failure stops the server: the FSM's state is unknown.
func (r *Raft) restoreFSM(meta SnapshotMeta) {
	a := r.applier
	start := r.metrics.now()
	sessions, err := restoreFrom(a.fsm, r.snaps, meta.ID)
	if err != nil {
		r.metrics.snapshotFailed()
		r.fatal(err)
		return
	}
	r.metrics.snapshotRestored(start)
	a.sessions = sessions
	a.lastTerm, a.conf, a.confIndex = meta.Term, meta.Configuration.Clone(), meta.ConfigurationIndex
	a.applied.Store(meta.Index)
	r.logger.Info("restored snapshot", "id", meta.ID, "index", meta.Index)
}

// restoreFrom restores fsm from snapshot id and reads the reader to its end,
// so that a store that checks a checksum at the end does. It returns the
// snapshot's session table; the FSM reads only what follows keel's header
// (and is not called if the header is damaged).
func restoreFrom(fsm FSM, snaps SnapshotStore, id string) (*sessionTable, error) {
	_, rc, err := snaps.Open(id)
	if err != nil {
		return nil, fmt.Errorf("raft: snapshot %s: open: %w", id, err)
	}
	cr := &checkedReader{rc: rc}
	sessions, err := readSnapshotHeader(cr)
	if err == nil {
		err = fsm.Restore(cr)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, cr.rc)
		if err == nil {
			err = cr.err
		}
	}
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("raft: snapshot %s: restore: %w", id, err)
	}
	return sessions, nil
}

// checkedReader hands the FSM the snapshot, remembering a read error the
// FSM might swallow, and keeps the FSM's Close from closing it early.
type checkedReader struct {
	rc  io.ReadCloser
	err error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

func (c *checkedReader) Close() error { return nil }

// restoreNewestSnapshot restores the FSM from the newest snapshot it can
// read. If the newest is unreadable (open error, checksum mismatch, restore
// error) it says which and falls back to an older one, but only to one the
// log still covers up to the newest: never silently losing entries. If
// snapshots exist and none can be used, it fails naming them.
func restoreNewestSnapshot(logger *slog.Logger, fsm FSM, snaps SnapshotStore, logs LogStore) (SnapshotMeta, *sessionTable, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	metas, err := snaps.List()
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("raft: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return SnapshotMeta{}, newSessionTable(), nil
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("raft: read first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("raft: read last log index: %w", err)
	}
	var errs []error
	for i, m := range metas {
		if i > 0 && (first == 0 || first > m.Index+1 || last < metas[0].Index) {
			errs = append(errs, fmt.Errorf("snapshot %s: the log [%d, %d] does not cover the entries from it to snapshot %s", m.ID, first, last, metas[0].ID))
			continue
		}
		sessions, err := restoreFrom(fsm, snaps, m.ID)
		if errors.Is(err, ErrUnsupportedVersion) {
			// A newer build ran on these stores: falling back to an older
			// snapshot would run this build on its log too.
			return SnapshotMeta{}, nil, err
		}
		if err != nil {
			logger.Error("snapshot unusable, trying an older one", "id", m.ID, "err", err)
			errs = append(errs, err)
			continue
		}
		if i > 0 {
			logger.Warn("restored an older snapshot", "id", m.ID, "index", m.Index)
		}
		if err := dropConflictingSuffix(logs, m, first, last); err != nil {
			return SnapshotMeta{}, nil, err
		}
		return *m, sessions, nil
	}
	return SnapshotMeta{}, nil, fmt.Errorf("%w: no usable snapshot: %w", ErrCorruptState, errors.Join(errs...))
}

// dropConflictingSuffix trims what a crash between installing a leader's
// snapshot and resetting the log can leave: a log that ends before the
// snapshot (all of it is covered: it goes, so that the next entry can
// follow the snapshot), or entries after the snapshot whose own entry at
// the snapshot's index has another term (they conflict: they go).
func dropConflictingSuffix(logs LogStore, m *SnapshotMeta, first, last uint64) error {
	if first > 0 && last < m.Index {
		if err := logs.DeleteRange(first, last); err != nil {
			return fmt.Errorf("raft: delete log entries [%d, %d] behind snapshot %s: %w", first, last, m.ID, err)
		}
		return nil
	}
	if last <= m.Index {
		return nil
	}
	var e Log
	if err := logs.GetLog(m.Index, &e); err != nil {
		return nil // compacted: nothing to compare
	}
	if e.Term == m.Term {
		return nil
	}
	if err := logs.DeleteRange(m.Index+1, last); err != nil {
		return fmt.Errorf("raft: delete log entries [%d, %d] conflicting with snapshot %s: %w", m.Index+1, last, m.ID, err)
	}
	return nil
}

// initSnapshots sets up the snapshot driver.
func (r *Raft) initSnapshots(snaps SnapshotStore, meta SnapshotMeta) {
	r.snaps, r.snapMeta = snaps, meta
	r.senders = map[ServerID]*snapshotSender{}
	r.receiver = newSnapshotReceiver(r)
	a := r.applier
	a.lastTerm, a.conf, a.confIndex = meta.Term, meta.Configuration.Clone(), meta.ConfigurationIndex
}

// closeSnapshots stops the receiver; senders and the ticker stop on
// shutdownCh.
func (r *Raft) closeSnapshots() {
	if r.receiver != nil {
		r.receiver.queue.close()
	}
}
