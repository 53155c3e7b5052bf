package raft

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLeader means the call needs the leader and this server is not
	// it. The error returned is a *NotLeaderError naming the known leader.
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrLeadershipLost means this server lost leadership before the
	// operation finished; a command may or may not have been committed.
	ErrLeadershipLost = errors.New("raft: leadership lost while committing")
	// ErrFollowerReadFailed means a linearizable read on a follower got no
	// read index from the leader: the follower's leader changed, refused,
	// or did not answer within an election timeout. Retrying is safe.
	ErrFollowerReadFailed = errors.New("raft: follower read failed")
	// ErrRaftShutdown means the server is shut down (or stopped after a
	// storage failure, which the error then wraps too).
	ErrRaftShutdown = errors.New("raft: shut down")
	// ErrCantBootstrap means BootstrapCluster found existing state.
	ErrCantBootstrap = errors.New("raft: bootstrap only works on new clusters")
	// ErrInvalidConfig means a Config field is out of range; the error
	// names the field.
	ErrInvalidConfig = errors.New("raft: invalid config")
	// ErrCorruptState means durable state (stable store, log store or
	// snapshot) cannot be trusted; the server refuses to start on it.
	ErrCorruptState = errors.New("raft: corrupt durable state")

	// ErrConfigChangeInProgress means a membership change was refused
	// because another is under way (or the latest configuration is not
	// committed yet, or the leader has not committed an entry of its term
	// yet): one change at a time. Retry once the earlier one is done.
	ErrConfigChangeInProgress = errors.New("raft: a configuration change is in progress")
	// ErrInvalidConfiguration means a requested configuration is not valid
	// (no voter, duplicate IDs or addresses, empty fields); the error says
	// what is wrong.
	ErrInvalidConfiguration = errors.New("raft: invalid configuration")
	// ErrUnknownServer means a call named a server that is not in the
	// latest configuration.
	ErrUnknownServer = errors.New("raft: unknown server")
	// ErrLeadershipTransferInProgress means the leader refused a proposal
	// or a change because it is handing leadership over; retry on the new
	// leader (or on this one if the transfer times out).
	ErrLeadershipTransferInProgress = errors.New("raft: leadership transfer in progress")
	// ErrNoTransferTarget means a leadership transfer has no server to go
	// to: the target is not a voter of the latest configuration, or there
	// is no other voter.
	ErrNoTransferTarget = errors.New("raft: no leadership transfer target")
	// ErrLeadershipTransferTimeout means the target did not take over within
	// an election timeout; a leader that still leads resumes.
	ErrLeadershipTransferTimeout = errors.New("raft: leadership transfer timed out")
	// ErrLeadershipTransferFailed means another server than the target won
	// the election the transfer started.
	ErrLeadershipTransferFailed = errors.New("raft: leadership transfer failed")
	// ErrNothingNewToSnapshot means Snapshot found nothing applied since the
	// last snapshot.
	ErrNothingNewToSnapshot = errors.New("raft: nothing new to snapshot")
	// ErrUnsupportedVersion means data was written, or a peer speaks, in a
	// format version newer than this build understands: a log entry type,
	// a snapshot header, the stored term and vote, a WAL segment or a wire
	// protocol version. keel refuses it rather than guess; the error names
	// the version found and the newest this build reads. Upgrade this
	// server (see the README's compatibility policy).
	ErrUnsupportedVersion = errors.New("raft: format version newer than this build understands")
	// ErrSnapshotCorrupt means a snapshot failed its checksum or could not
	// be read; the error names it.
	ErrSnapshotCorrupt = errors.New("raft: corrupt snapshot")
	// ErrProposalQueueFull means a command was refused, not appended,
	// because the leader holds Config.MaxPendingBytes of commands it has
	// not yet applied: the cluster is taking commands faster than it
	// commits and applies them. Back off and retry.
	ErrProposalQueueFull = errors.New("raft: proposal queue full")
	// ErrRestoreInProgress means a command was refused because Restore is
	// replacing the cluster's state; retry once it returns.
	ErrRestoreInProgress = errors.New("raft: restore in progress")

	// ErrSessionExpired means a client session is unknown, closed or
	// expired (its TTL of log time passed without a command); the command
	// was not applied. A command retried after this error has an unknown
	// outcome: an earlier attempt may have been applied. Register a new
	// session.
	ErrSessionExpired = errors.New("raft: client session expired or unknown")
	// ErrSessionStale means a session command's sequence number is below
	// the session's last applied one: the client has moved on, and this is
	// an old copy. It was not applied.
	ErrSessionStale = errors.New("raft: stale session command")
)

// NotLeaderError is returned when a call needs the leader. errors.Is(err,
// ErrNotLeader) holds; errors.As gives the leader this server knows of, if
// any, so a client can retry there.
type NotLeaderError struct {
	LeaderID      ServerID
	LeaderAddress ServerAddress
}

// Error describes the error and the known leader.
func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "raft: not the leader (no leader known)"
	}
	return fmt.Sprintf("raft: not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddress)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
