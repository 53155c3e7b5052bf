package raft

import "fmt"

// outMsg is a message and the address it goes to, resolved by the event
// loop (which owns the address book) before it leaves the loop.
type outMsg struct {
	addr ServerAddress
	msg  *Message
}

// persistJob is one ready's log writes, and the messages that may leave
// only once they are durable.
type persistJob struct {
	entries []Log
	msgs    []outMsg
	// compact, when set, trims the log before entries are written.
	compact logCompaction
	// loads are reads of evicted entries, done after the writes.
	loads []logLoad
	// hardState, when set, is written first (persist_stall.go).
	hardState *hardState
}

func (j *persistJob) empty() bool {
	return len(j.entries) == 0 && len(j.msgs) == 0 && j.compact.to == 0 && len(j.loads) == 0 && j.hardState == nil
}

// loadResult is what a logLoad read: the entries, or the error that
// stopped the read.
type loadResult struct {
	load logLoad
	ents []Log
	err  error
}

// persister writes log entries on a goroutine of its own, so the leader
// sends to followers while its own write is under way. Jobs run in order;
// jobs queued while a write is under way are combined into one StoreLogs
// call (group commit).
type persister struct {
	logs LogStore
	send func(outMsg)
	// notify receives the last (index, term) made durable after each group.
	notify func(index, term uint64)
	// fail receives the first storage error; the persister then stops
	// acknowledging anything (fail-stop).
	fail func(error)
	// loaded receives the results of a group's loads.
	loaded func([]loadResult)

	jobs *workQueue[persistJob]

	lastOnDisk uint64 // the LogStore's last index; persister goroutine only
	batch      []*Log // reused StoreLogs argument
	metrics    *raftMetrics

	persistStall // persist_stall.go: term and vote, and when the write under way began

	// syncer, when set, makes the writes durable: logs and stable are then
	// a SharedLogStore's staged view (persist_round.go).
	syncer Syncer
	unsynced
	// hosted, on a Host, is the persister's place in its worker's rounds.
	hosted *hostedPersist
}

func newPersister(logs LogStore, lastOnDisk uint64, send func(outMsg), notify func(uint64, uint64), fail func(error), loaded func([]loadResult)) *persister {
	return &persister{logs: logs, lastOnDisk: lastOnDisk, send: send, notify: notify, fail: fail, loaded: loaded, jobs: newWorkQueue[persistJob]()}
}

func (p *persister) submit(j persistJob) {
	if j.hardState != nil {
		p.hardStates.Add(1)
	}
	p.queuedMsgs.Add(int64(len(j.msgs)))
	p.jobs.push(j)
}

// close stops the persister; jobs not yet written are dropped, and nothing
// they would have acknowledged is sent.
func (p *persister) close() { p.jobs.close() }

func (p *persister) run() {
	for {
		jobs, open := p.jobs.takeAll()
		if !open || !p.process(jobs) {
			return
		}
	}
}

// process writes jobs, then sends what waited for them; false means a
// storage failure stopped the persister. It is for a persister without a
// staged view: a Host's rounds write those (persist_round.go).
func (p *persister) process(jobs []persistJob) bool {
	p.beginWrite()
	last, err := p.write(jobs)
	return p.finish(jobs, last, err)
}

// finish acts on the writes of jobs once they are durable, or have failed
// with err: it sends what waited for them, reports how far the log is
// durable and does the reads; false means the persister stopped.
func (p *persister) finish(jobs []persistJob, last *Log, err error) bool {
	if err != nil {
		p.fail(err)
		return false
	}
	for _, j := range jobs {
		for _, m := range j.msgs {
			p.send(m)
		}
		p.queuedMsgs.Add(-int64(len(j.msgs)))
		p.jobDone(&j)
	}
	if last != nil {
		p.notify(last.Index, last.Term)
	}
	var results []loadResult
	for _, j := range jobs {
		for _, ld := range j.loads {
			results = append(results, p.load(ld))
		}
	}
	p.endWrite() // the reads too: one that hangs holds up the writes behind it
	if len(results) > 0 {
		p.loaded(results)
	}
	return true
}

// load reads the entries a logLoad asks for, stopping at its byte bound.
func (p *persister) load(ld logLoad) loadResult {
	res := loadResult{load: ld}
	var size uint64
	for i := ld.Lo; i <= ld.Hi; i++ {
		var e Log
		if err := p.logs.GetLog(i, &e); err != nil {
			res.err = fmt.Errorf("raft: read log entry %d for %s: %w", i, ld.To, err)
			return res
		}
		size += uint64(len(e.Data))
		if size > ld.MaxBytes && len(res.ents) > 0 {
			break
		}
		res.ents = append(res.ents, e)
	}
	return res
}

// write stores the entries of jobs, as few StoreLogs calls as the order
// allows, and returns the last entry written.
func (p *persister) write(jobs []persistJob) (*Log, error) {
	p.batch = p.batch[:0]
	var last *Log
	for ji := range jobs {
		if hs := jobs[ji].hardState; hs != nil {
			if err := p.writeHardState(hs); err != nil {
				return nil, err
			}
		}
		if jobs[ji].compact.to > 0 {
			if err := p.store(); err != nil {
				return nil, err
			}
			if p.syncer != nil {
				// compact reads the first index, which a staged view
				// gives only once the writes before are durable.
				if err := p.sync(); err != nil {
					return nil, err
				}
			}
			if err := p.compact(jobs[ji].compact); err != nil {
				return nil, err
			}
		}
		ents := jobs[ji].entries
		if len(ents) == 0 {
			continue
		}
		first := ents[0].Index
		if len(p.batch) > 0 && first != p.batch[len(p.batch)-1].Index+1 {
			// A job that replaces entries of the batch: write the batch first.
			if err := p.store(); err != nil {
				return nil, err
			}
		}
		if len(p.batch) == 0 && first <= p.lastOnDisk {
			// A conflicting suffix: delete it before writing over it.
			if err := p.logs.DeleteRange(first, p.lastOnDisk); err != nil {
				return nil, fmt.Errorf("raft: delete log suffix [%d, %d]: %w", first, p.lastOnDisk, err)
			}
			p.lastOnDisk = first - 1
		}
		for i := range ents {
			p.batch = append(p.batch, &ents[i])
		}
		last = &ents[len(ents)-1]
	}
	if err := p.store(); err != nil {
		return nil, err
	}
	return last, nil
}

func (p *persister) store() error {
	if len(p.batch) == 0 {
		return nil
	}
	first, last := p.batch[0].Index, p.batch[len(p.batch)-1].Index
	start := p.metrics.now()
	if err := p.logs.StoreLogs(p.batch); err != nil {
		return fmt.Errorf("raft: store log entries [%d, %d]: %w", first, last, err)
	}
	if p.syncer != nil {
		p.staged(len(p.batch), false, start)
	} else {
		p.metrics.logWritten(len(p.batch), start)
	}
	p.lastOnDisk = last
	clear(p.batch)
	p.batch = p.batch[:0]
	return nil
}
