package raft

import "time"

// Disk stalls: the driver's side (the core's is in stall.go). The
// persister records when the write under way began (persist_stall.go); on
// every tick the event loop compares that with Config.DiskStallTimeout and
// tells the core when its disk stalls and when it works again. The loop
// itself never waits on a store — log writes, term and vote go through the
// persister, snapshots through the snapshot workers and the applier — so
// it goes on ticking whatever the disk does.

// diskWatch is the event loop's view of the persister's writes; loop only.
type diskWatch struct {
	stalled bool
	since   time.Time // while stalled: when the write that stalled began
}

// checkDiskStall decides, on a tick, whether the disk is stalled: a write
// has been under way for longer than DiskStallTimeout. It tells the core
// of a change, and logs it; publish reports it to Stats and observers.
func (r *Raft) checkDiskStall() {
	timeout := r.conf.diskStallTimeout()
	if timeout <= 0 {
		return
	}
	now := time.Now()
	var began time.Time
	if ns := r.persister.busySince.Load(); ns != 0 {
		began = time.Unix(0, ns)
	}
	stalled := !began.IsZero() && now.Sub(began) >= timeout
	if stalled == r.stall.stalled {
		return
	}
	r.stall.stalled = stalled
	r.core.setDiskStalled(stalled)
	if stalled {
		r.metrics.diskStall()
		r.stall.since = began
		r.logger.Warn("disk stalled: a log or stable-store write has not completed; not leading or campaigning until writes complete",
			"write_started", began, "waited", now.Sub(began).Round(time.Millisecond), "timeout", timeout, "state", publicState(r.core.role))
		return
	}
	r.logger.Info("disk stall over: writes complete again; campaigning resumes after a hold",
		"stalled_for", now.Sub(r.stall.since).Round(time.Millisecond), "hold", time.Duration(r.core.cfg.diskHoldTicks)*r.tick)
	r.stall.since = time.Time{}
}

// holdForHardState keeps the messages of rd that would leave at once for
// the persister to send, when term and vote are being written (by rd, or
// by an earlier ready whose write is not done): they may depend on them.
// It returns the held messages, routed, with room for rd's
// msgsAfterAppend, and removes them from rd.
func (r *Raft) holdForHardState(rd *ready) []outMsg {
	if rd.hardState == nil && !r.persister.hardStatePending() {
		return nil
	}
	held := make([]outMsg, 0, len(rd.msgs)+len(rd.msgsAfterAppend))
	for i := range rd.msgs {
		held = append(held, r.route(&rd.msgs[i]))
	}
	rd.msgs = nil
	return held
}

// stalledSinceString and stalledForString are Stats' values for a stall:
// when the stalled write began (RFC 3339) and how long ago, or empty.
func stalledSinceString(p published) string {
	if !p.diskStalled {
		return ""
	}
	return p.stalledSince.Format(time.RFC3339Nano)
}

func stalledForString(p published) string {
	if !p.diskStalled {
		return ""
	}
	return time.Since(p.stalledSince).Round(time.Millisecond).String()
}
