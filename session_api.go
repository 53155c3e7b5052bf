package raft

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Client sessions give commands exactly-once semantics (Raft dissertation
// §6.3) without any help from the FSM. A client registers a session, then
// numbers its commands 1, 2, 3, … and sends each with ApplySession. When
// the outcome of a command is unknown — a timeout, ErrLeadershipLost, a
// leader that crashed — the client sends the same (session, seq) again, to
// whichever server now leads: keel applies a command at most once per
// sequence number, and a retry of one already applied gets the response
// the FSM returned the first time, without the FSM seeing it again.
//
// The session table is replicated: every server applies the session
// entries in log order, and it is part of every snapshot, so a retry gets
// the same answer after a leader change, a restart or an InstallSnapshot.

// RegisterSession registers a client session and returns its ID (the log
// index of its register entry). On a follower it is forwarded to the
// leader, as Apply is.
//
// The session expires once ttl of log time passes without a command in it
// (any command counts: applied, retried or stale). Log time is the highest
// timestamp, taken from the leader's wall clock when it appended the entry,
// of the session entries applied so far: it moves only with session
// entries (of any session), never goes back, and every server sees it move
// at the same point of the log, so every server expires a session at the
// same entry. The TTL is part of the register entry, so servers agree on it
// whatever their configuration. Clock differences between leaders shift
// when sessions expire, never which commands apply twice. Pick a TTL longer
// than the longest pause between a client's commands, retries included.
//
// An error other than ErrNotLeader leaves the outcome unknown; an orphaned
// session expires on its own. ttl must be more than 0.
func (r *Raft) RegisterSession(ctx context.Context, ttl time.Duration) (uint64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("raft: RegisterSession: TTL %v, want more than 0", ttl)
	}
	e := sessionEntry{op: sessionRegister, ttl: int64(ttl)}
	f := r.propose(ctx, Log{Type: LogSession, Data: e.encode()})
	if err := f.Error(); err != nil {
		return 0, err
	}
	id, ok := f.Response().(uint64)
	if !ok {
		return 0, fmt.Errorf("raft: RegisterSession: entry %d registered no session", f.Index())
	}
	return id, nil
}

// ApplySession proposes cmd as command seq of session (forwarded to the
// leader from a follower, as Apply is; the leader's clock stamps it). A
// client has at most one command outstanding per session: it sends seq+1
// only once seq's outcome is known. When the command is applied, in log order on
// every server:
//
//   - seq above the session's last applied number: the FSM applies cmd, as
//     an ordinary LogCommand entry whose Data is cmd; its response is kept
//     as the session's cached response, and the future returns it;
//   - seq equal to the last applied number (a retry): the FSM does not see
//     it, and the future returns the cached response;
//   - seq below it (a stale copy): not applied; the future fails with
//     ErrSessionStale;
//   - a session that is unknown, closed or expired: not applied; the
//     future fails with ErrSessionExpired. An earlier attempt of the same
//     seq may have been applied: the outcome is unknown.
//
// The FSM's response to a session command must be nil, a []byte, a string
// or an error, the values a snapshot can keep. Every future of the command
// — its first answer and every retry, before or after a restart or a
// snapshot restore — returns the same value: nil, a copy of the bytes (nil
// when empty), the string, or an error whose message is the FSM's error's
// (errors.New: error identity does not survive, messages do). Another
// type comes back as such an error naming it.
//
// Each attempt takes a log entry, whatever the table decides; the future's
// Index is that entry's. Errors other than these, ErrNotLeader and
// argument errors (session and seq must be more than 0) leave the outcome
// unknown: retry the same (session, seq), on the new leader if leadership
// moved.
func (r *Raft) ApplySession(ctx context.Context, session, seq uint64, cmd []byte) ApplyFuture {
	switch {
	case session == 0:
		return errorFuture(errors.New("raft: ApplySession: session 0; use the ID RegisterSession returned"))
	case seq == 0:
		return errorFuture(errors.New("raft: ApplySession: sequence number 0; number a session's commands from 1"))
	}
	e := sessionEntry{op: sessionCommand, session: session, seq: seq, payload: cmd}
	return r.propose(ctx, Log{Type: LogSession, Data: e.encode()})
}

// CloseSession ends a session (forwarded from a follower, as Apply is),
// releasing its cached response on every server; later
// commands in it fail with ErrSessionExpired. Closing a session that is
// unknown, closed or expired fails with ErrSessionExpired. Other errors
// leave the outcome unknown; closing again is harmless, and a session not
// closed expires after its TTL anyway.
func (r *Raft) CloseSession(ctx context.Context, session uint64) error {
	if session == 0 {
		return errors.New("raft: CloseSession: session 0; use the ID RegisterSession returned")
	}
	e := sessionEntry{op: sessionClose, session: session}
	return r.propose(ctx, Log{Type: LogSession, Data: e.encode()}).Error()
}
