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
	// ErrNothingNewToSnapshot means Snapshot found nothing applied since the
	// last snapshot.
	ErrNothingNewToSnapshot = errors.New("raft: nothing new to snapshot")
	// ErrSnapshotCorrupt means a snapshot failed its checksum or could not
	// be read; the error names it.
	ErrSnapshotCorrupt = errors.New("raft: corrupt snapshot")
	// ErrRestoreInProgress means a command was refused because Restore is
	// replacing the cluster's state; retry once it returns.
	ErrRestoreInProgress = errors.New("raft: restore in progress")
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
