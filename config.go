package raft

import (
	"fmt"
	"github.com/keelraft/raft/metrics"
	"log/slog"
	"time"
)

// Config configures a Raft server. Start from DefaultConfig and set LocalID.
type Config struct {
	// LocalID identifies this server; it must be unique in the cluster.
	LocalID ServerID

	// HeartbeatInterval is how often the leader tells followers it is
	// alive. Default 100ms.
	HeartbeatInterval time.Duration
	// ElectionTimeout is how long a follower waits without hearing from a
	// leader before it campaigns; each wait is drawn at random from
	// [ElectionTimeout, 2*ElectionTimeout). Must be at least
	// 2*HeartbeatInterval. Default 1s.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader goes on without hearing from
	// a quorum before it steps down (CheckQuorum). Shorter than
	// ElectionTimeout, an old leader cut off from the cluster stops leading
	// before a new one can be elected. Between 2*HeartbeatInterval and
	// ElectionTimeout; 0 means ElectionTimeout/2.
	LeaderLeaseTimeout time.Duration
	// ClockDrift bounds how much the clock rates of any two servers may
	// differ, as a fraction: 0.1 means one server's clock may run at most
	// 10 % slower than another's. Lease reads (ReadMode Lease) depend on
	// it: a leader serves them for (electionTicks-1)*(1-ClockDrift)-1
	// ticks after a quorum confirmed it, where a tick is
	// HeartbeatInterval/2 and electionTicks = ElectionTimeout/tick (with
	// the defaults, 16 ticks: 800ms of a 1s election timeout). In [0, 1);
	// 0 means the default, 0.1.
	ClockDrift float64

	// MaxAppendEntries bounds the entries in one AppendEntries message.
	// Default 256.
	MaxAppendEntries int
	// MaxAppendBytes bounds the command bytes in one AppendEntries message
	// (a larger single entry is still sent alone). Default 1 MiB.
	MaxAppendBytes uint64
	// MaxInflightAppends bounds the AppendEntries messages in flight to one
	// follower (the pipelining window). Default 64.
	MaxInflightAppends int
	// MaxInflightBytes bounds the command bytes in flight to one follower;
	// 0 means no bound beyond MaxInflightAppends. Default 32 MiB.
	MaxInflightBytes uint64

	// MaxLogCacheBytes bounds the memory the log's entries take once they
	// are applied: beyond it the oldest applied, durable entries are
	// dropped from memory and read back from the LogStore if a follower
	// that lags needs them. Entries not yet applied are bounded by
	// MaxPendingBytes on a leader. An entry counts as its data plus 64
	// bytes. 0 means the default, 256 KiB.
	MaxLogCacheBytes uint64
	// MaxPendingBytes bounds the commands a leader holds that its FSM has
	// not applied yet (appended, replicating, committed but not applied),
	// counted like MaxLogCacheBytes. Beyond it Apply (and proposals
	// forwarded to this leader) fail at once with ErrProposalQueueFull
	// instead of queueing without bound when commands come faster than
	// the cluster commits and applies them; one batch is always admitted
	// when nothing is pending, so a single large command is never refused
	// for its size. 0 means the default, 32 MiB.
	MaxPendingBytes uint64

	// PreVoteDisabled turns off PreVote (on by default): without it, a
	// server cut off from the leader raises its term when it campaigns and
	// disrupts the cluster when it comes back.
	PreVoteDisabled bool
	// CheckQuorumDisabled turns off CheckQuorum (on by default): without
	// it, a leader cut off from a quorum keeps believing it leads.
	CheckQuorumDisabled bool
	// ForwardingDisabled turns off proposal forwarding (on by default):
	// without it, Apply and Barrier on a follower fail at once with a
	// *NotLeaderError naming the leader, for the caller to retry there.
	ForwardingDisabled bool

	// PromotionMaxLag and PromotionStableTime decide when a server that is
	// to become a voter (AddVoter, or a ChangeConfiguration that makes a
	// nonvoter a voter) is caught up: the leader first adds it as a
	// nonvoter, and promotes it once its log has stayed within
	// PromotionMaxLag entries of the leader's last index for
	// PromotionStableTime. A server that never catches up is never
	// promoted, so a slow or unreachable new server cannot cost the
	// cluster its quorum. PromotionMaxLag must be at least 1 (default
	// 256); PromotionStableTime must not be negative (default 1s; 0 means
	// the first heartbeat tick it is within PromotionMaxLag).
	PromotionMaxLag     uint64
	PromotionStableTime time.Duration
	// SnapshotThreshold is how many applied entries since the last snapshot
	// make the server take a new one (checked every SnapshotInterval).
	// Default 8192.
	SnapshotThreshold uint64
	// SnapshotMaxEntries bounds the log under any load: once this many
	// entries were applied since the last snapshot, a snapshot is taken at
	// once, without waiting for SnapshotInterval. It keeps bounded what
	// grows with the log's length — the LogStore's index in memory, the
	// disk, the replay after a restart — when commands come faster than
	// SnapshotThreshold per SnapshotInterval. A SnapshotThreshold above it
	// raises it (so a huge threshold still means "only when asked"); 0
	// means the default, 131,072 (etcd snapshots every 100,000 entries).
	SnapshotMaxEntries uint64
	// SnapshotInterval is how often the server checks SnapshotThreshold;
	// each wait is drawn at random from [SnapshotInterval,
	// 2*SnapshotInterval) so that servers do not snapshot in step. Default
	// 2 minutes.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries the log keeps behind a snapshot when
	// it is compacted, so that a follower slightly behind catches up from
	// the log instead of a snapshot. Default 10240.
	TrailingLogs uint64
	// SnapshotChunkSize is the size of the chunks InstallSnapshot streams a
	// snapshot in; a few of them (snapshotWindow) are in flight per
	// follower. Between 1 KiB and MaxSnapshotChunk; default 256 KiB.
	SnapshotChunkSize int

	// DiskStallTimeout is how long this server's oldest unfinished log or
	// stable-store write may be under way before the server counts its
	// disk as stalled: a write that neither returns nor fails (an fsync
	// that hangs, a disk that blocks when full). A stalled leader steps
	// down and stops heartbeating, so that the others elect a leader that
	// can make commands durable; a stalled server of any role does not
	// campaign until a write completes again and its disk has then worked
	// for the longer of ElectionTimeout and DiskStallTimeout. The stall is
	// logged (Warn, then Info when it clears), reported by Stats
	// ("disk_stalled", "disk_stalled_since", "disk_stalled_for") and to
	// observers (Observation.DiskStalled). 0 means the default: 5s, or
	// ElectionTimeout if that is longer. A positive value must be at least
	// ElectionTimeout (stepping down costs the cluster an election, so a
	// shorter stall is cheaper ridden out). A negative value turns the
	// check off: a leader whose disk hangs then goes on leading, and every
	// write through it hangs too.
	DiskStallTimeout time.Duration

	// Logger receives keel's logs. Nil means silent.
	Logger *slog.Logger

	// Metrics receives the server's counters, gauges and latency
	// histograms (the README lists them all, with what to alert on). Nil
	// records nothing and costs nothing. The adapter modules
	// github.com/keelraft/raft/metrics/prometheus and .../metrics/otel
	// provide sinks; metrics.Recorder keeps them in memory. Servers may
	// share a sink only if it tells them apart (for example a Prometheus
	// sink per server, each with a constant "server" label).
	Metrics metrics.Sink

	// sessionClock, when set (tests only, export_test.go), replaces the
	// wall clock a leader stamps session entries with.
	sessionClock func() time.Time
}

// diskStallTimeout is DiskStallTimeout with the default applied; 0 means
// the check is off.
func (c *Config) diskStallTimeout() time.Duration {
	switch {
	case c.DiskStallTimeout == 0:
		return max(defaultDiskStallTimeout, c.ElectionTimeout)
	case c.DiskStallTimeout < 0:
		return 0
	}
	return c.DiskStallTimeout
}

// sessionNow is the leader's time for a session entry, in Unix
// nanoseconds.
func (c *Config) sessionNow() int64 {
	if c.sessionClock != nil {
		return c.sessionClock().UnixNano()
	}
	return time.Now().UnixNano()
}

// DefaultConfig returns a Config with every default set; only LocalID is
// left for the caller.
func DefaultConfig() *Config {
	return &Config{
		HeartbeatInterval:  100 * time.Millisecond,
		ElectionTimeout:    time.Second,
		MaxAppendEntries:   256,
		MaxAppendBytes:     1 << 20,
		MaxInflightAppends: 64,
		MaxInflightBytes:   32 << 20,
		MaxLogCacheBytes:   defaultLogCacheBytes,
		MaxPendingBytes:    defaultPendingBytes,

		PromotionMaxLag:     256,
		PromotionStableTime: time.Second,
		SnapshotThreshold:   8192,
		SnapshotMaxEntries:  defaultSnapMaxEnts,
		SnapshotInterval:    2 * time.Minute,
		TrailingLogs:        10240,
		SnapshotChunkSize:   256 << 10,
	}
}

// defaultDiskStallTimeout is Config.DiskStallTimeout's default.
const defaultDiskStallTimeout = 5 * time.Second

// Defaults for fields where 0 means the default.
const (
	defaultClockDrift    = 0.1
	defaultLogCacheBytes = 256 << 10
	defaultPendingBytes  = 32 << 20
	defaultSnapMaxEnts   = 1 << 17
)

// orDefault returns v, or def when v is 0.
func orDefault(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

// heartbeatTicks is how many ticks make a HeartbeatInterval. The core counts
// time in ticks; a tick is HeartbeatInterval/heartbeatTicks.
const heartbeatTicks = 2

// ValidateConfig checks every field and names the first bad one.
func ValidateConfig(c *Config) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c == nil:
		return fmt.Errorf("%w: nil Config", ErrInvalidConfig)
	case c.LocalID == "":
		return bad("LocalID", "is empty")
	case c.HeartbeatInterval < 2*time.Millisecond:
		return bad("HeartbeatInterval", "is %v, want at least 2ms", c.HeartbeatInterval)
	case c.ElectionTimeout < 2*c.HeartbeatInterval:
		return bad("ElectionTimeout", "is %v, want at least 2*HeartbeatInterval (%v)", c.ElectionTimeout, 2*c.HeartbeatInterval)
	case c.LeaderLeaseTimeout != 0 && (c.LeaderLeaseTimeout < 2*c.HeartbeatInterval || c.LeaderLeaseTimeout > c.ElectionTimeout):
		return bad("LeaderLeaseTimeout", "is %v, want between 2*HeartbeatInterval (%v) and ElectionTimeout (%v)",
			c.LeaderLeaseTimeout, 2*c.HeartbeatInterval, c.ElectionTimeout)
	case c.ClockDrift < 0 || c.ClockDrift >= 1:
		return bad("ClockDrift", "is %v, want in [0, 1)", c.ClockDrift)
	case c.MaxAppendEntries < 1:
		return bad("MaxAppendEntries", "is %d, want at least 1", c.MaxAppendEntries)
	case c.MaxAppendBytes < 1:
		return bad("MaxAppendBytes", "is %d, want at least 1", c.MaxAppendBytes)
	case c.MaxInflightAppends < 1:
		return bad("MaxInflightAppends", "is %d, want at least 1", c.MaxInflightAppends)
	case c.PromotionMaxLag < 1:
		return bad("PromotionMaxLag", "is %d, want at least 1", c.PromotionMaxLag)
	case c.PromotionStableTime < 0:
		return bad("PromotionStableTime", "is %v, want at least 0", c.PromotionStableTime)
	case c.SnapshotThreshold < 1:
		return bad("SnapshotThreshold", "is %d, want at least 1", c.SnapshotThreshold)
	case c.SnapshotInterval < time.Millisecond:
		return bad("SnapshotInterval", "is %v, want at least 1ms", c.SnapshotInterval)
	case c.SnapshotChunkSize < 1<<10 || c.SnapshotChunkSize > MaxSnapshotChunk:
		return bad("SnapshotChunkSize", "is %d, want between 1 KiB and %d", c.SnapshotChunkSize, MaxSnapshotChunk)
	case c.DiskStallTimeout > 0 && c.DiskStallTimeout < c.ElectionTimeout:
		return bad("DiskStallTimeout", "is %v, want at least ElectionTimeout (%v), 0 for the default or negative for off", c.DiskStallTimeout, c.ElectionTimeout)
	}
	return nil
}

// coreConfig derives the core's tick-based configuration.
func (c *Config) coreConfig(rand randSource) (coreConfig, time.Duration) {
	tick := c.HeartbeatInterval / heartbeatTicks
	lease := c.LeaderLeaseTimeout
	if lease == 0 {
		lease = c.ElectionTimeout / 2
	}
	drift := c.ClockDrift
	if drift == 0 {
		drift = defaultClockDrift
	}
	electionTicks := int(c.ElectionTimeout / tick)
	return coreConfig{
		id:               c.LocalID,
		leaseReadTicks:   leaseReadTicksFor(electionTicks, drift),
		electionTicks:    int(c.ElectionTimeout / tick),
		leaseTicks:       max(int(lease/tick), 2*heartbeatTicks),
		heartbeatTicks:   heartbeatTicks,
		preVote:          !c.PreVoteDisabled,
		checkQuorum:      !c.CheckQuorumDisabled,
		maxAppendEntries: c.MaxAppendEntries,
		maxAppendBytes:   c.MaxAppendBytes,
		maxInflightMsgs:  c.MaxInflightAppends,
		maxInflightBytes: c.MaxInflightBytes,
		rand:             rand,

		promotionMaxLag:      c.PromotionMaxLag,
		promotionStableTicks: int((c.PromotionStableTime + tick - 1) / tick),
		trailingLogs:         c.TrailingLogs,
		diskHoldTicks:        max(electionTicks, int(c.diskStallTimeout()/tick)),
		logCacheBytes:        orDefault(c.MaxLogCacheBytes, defaultLogCacheBytes),
		maxPendingBytes:      orDefault(c.MaxPendingBytes, defaultPendingBytes),
	}, tick
}
