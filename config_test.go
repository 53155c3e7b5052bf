package raft

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValidateConfigNamesTheField(t *testing.T) {
	ok := DefaultConfig()
	ok.LocalID = "a"
	require.NoError(t, ValidateConfig(ok))
	cases := map[string]func(*Config){
		"LocalID":             func(c *Config) { c.LocalID = "" },
		"HeartbeatInterval":   func(c *Config) { c.HeartbeatInterval = time.Millisecond },
		"ElectionTimeout":     func(c *Config) { c.ElectionTimeout = c.HeartbeatInterval },
		"LeaderLeaseTimeout":  func(c *Config) { c.LeaderLeaseTimeout = 2 * c.ElectionTimeout },
		"MaxAppendEntries":    func(c *Config) { c.MaxAppendEntries = 0 },
		"MaxAppendBytes":      func(c *Config) { c.MaxAppendBytes = 0 },
		"MaxInflightAppends":  func(c *Config) { c.MaxInflightAppends = 0 },
		"PromotionMaxLag":     func(c *Config) { c.PromotionMaxLag = 0 },
		"PromotionStableTime": func(c *Config) { c.PromotionStableTime = -time.Second },
		"DiskStallTimeout":    func(c *Config) { c.DiskStallTimeout = c.ElectionTimeout - time.Millisecond },
	}
	for field, breakIt := range cases {
		c := *ok
		breakIt(&c)
		err := ValidateConfig(&c)
		require.ErrorIs(t, err, ErrInvalidConfig, field)
		require.Contains(t, err.Error(), field)
	}
	require.ErrorIs(t, ValidateConfig(nil), ErrInvalidConfig)
}

func TestCoreConfigTicks(t *testing.T) {
	c := DefaultConfig()
	c.LocalID = "a"
	cc, tick := c.coreConfig(nil)
	require.Equal(t, 50*time.Millisecond, tick)
	require.Equal(t, 20, cc.electionTicks)
	require.Equal(t, 10, cc.leaseTicks, "lease defaults to half the election timeout")
	require.True(t, cc.preVote)
	require.True(t, cc.checkQuorum)
	require.Equal(t, 20, cc.promotionStableTicks, "PromotionStableTime in ticks")
	require.Equal(t, uint64(256), cc.promotionMaxLag)
}

// DiskStallTimeout: 0 is the default (5s, or the election timeout if
// longer), negative is off, and the hold after a stall is the longer of
// the election timeout and the stall timeout, in ticks.
func TestDiskStallTimeoutConfig(t *testing.T) {
	c := DefaultConfig()
	c.LocalID = "a"
	require.Equal(t, 5*time.Second, c.diskStallTimeout())
	cc, _ := c.coreConfig(nil)
	require.Equal(t, 100, cc.diskHoldTicks, "5s of 50ms ticks")

	c.ElectionTimeout = 8 * time.Second
	require.NoError(t, ValidateConfig(c), "the default follows a long election timeout")
	require.Equal(t, 8*time.Second, c.diskStallTimeout())

	c.ElectionTimeout = time.Second
	c.DiskStallTimeout = time.Second
	require.NoError(t, ValidateConfig(c))
	cc, _ = c.coreConfig(nil)
	require.Equal(t, 20, cc.diskHoldTicks, "at least an election timeout")

	c.DiskStallTimeout = -1
	require.NoError(t, ValidateConfig(c), "negative turns the check off")
	require.Zero(t, c.diskStallTimeout())
	cc, _ = c.coreConfig(nil)
	require.Equal(t, 20, cc.diskHoldTicks)
}
