package raft

import (
	"fmt"
	"slices"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// ServerID identifies a server for its whole life, whatever its address.
type ServerID string

// ServerAddress is where a Transport reaches a server.
type ServerAddress string

// ServerSuffrage says whether a server votes.
type ServerSuffrage uint8

const (
	// Voter servers vote in elections and count toward commit quorums.
	Voter ServerSuffrage = iota
	// Nonvoter servers receive the log but do not vote or count toward
	// quorums. New servers join as nonvoters and are promoted once caught up.
	Nonvoter
)

// String returns "Voter" or "Nonvoter".
func (s ServerSuffrage) String() string {
	switch s {
	case Voter:
		return "Voter"
	case Nonvoter:
		return "Nonvoter"
	default:
		return fmt.Sprintf("ServerSuffrage(%d)", uint8(s))
	}
}

// Server is one member of a Configuration.
type Server struct {
	Suffrage ServerSuffrage
	ID       ServerID
	Address  ServerAddress
}

// Configuration is the membership of the cluster.
//
// While a joint-consensus change is under way, Servers is the new
// configuration C_new and Old the configuration being left, C_old: elections
// and commits then need a majority of the voters of each. Old is empty at all
// other times.
type Configuration struct {
	Servers []Server
	Old     []Server
}

// Clone returns a deep copy.
func (c Configuration) Clone() Configuration {
	return Configuration{Servers: slices.Clone(c.Servers), Old: slices.Clone(c.Old)}
}

// Joint reports whether the configuration is a joint C_old,new.
func (c Configuration) Joint() bool { return len(c.Old) > 0 }

// Validate checks that IDs and addresses are set and unique within each half,
// and that there is at least one voter in each.
func (c Configuration) Validate() error {
	if err := validateServers(c.Servers); err != nil {
		return err
	}
	if c.Joint() {
		if err := validateServers(c.Old); err != nil {
			return fmt.Errorf("old configuration: %w", err)
		}
	}
	return nil
}

func validateServers(servers []Server) error {
	ids := make(map[ServerID]bool, len(servers))
	addrs := make(map[ServerAddress]bool, len(servers))
	voters := 0
	for _, s := range servers {
		if s.ID == "" {
			return fmt.Errorf("configuration: server with address %q has an empty ID", s.Address)
		}
		if s.Address == "" {
			return fmt.Errorf("configuration: server %q has an empty address", s.ID)
		}
		if ids[s.ID] {
			return fmt.Errorf("configuration: server ID %q appears twice", s.ID)
		}
		if addrs[s.Address] {
			return fmt.Errorf("configuration: address %q appears twice", s.Address)
		}
		if s.Suffrage != Voter && s.Suffrage != Nonvoter {
			return fmt.Errorf("configuration: server %q has unknown suffrage %d", s.ID, s.Suffrage)
		}
		ids[s.ID], addrs[s.Address] = true, true
		if s.Suffrage == Voter {
			voters++
		}
	}
	if voters == 0 {
		return fmt.Errorf("configuration: no voter")
	}
	return nil
}

// encodeConfiguration encodes a configuration as the Data of a
// LogConfiguration entry.
func encodeConfiguration(c Configuration) []byte {
	var b []byte
	if err := codec.NewEncoderBytes(&b, wireHandle).Encode(c); err != nil {
		// Encoding a plain struct into memory cannot fail.
		panic(fmt.Sprintf("raft: encode configuration: %v", err))
	}
	return b
}

// decodeConfiguration decodes and validates the Data of a LogConfiguration
// entry.
func decodeConfiguration(b []byte) (Configuration, error) {
	var c Configuration
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(&c); err != nil {
		return Configuration{}, fmt.Errorf("decode configuration: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Configuration{}, err
	}
	return c, nil
}

// voterIDs returns the IDs of the voters among servers, sorted so that
// everything derived from them is deterministic.
func voterIDs(servers []Server) []ServerID {
	var ids []ServerID
	for _, s := range servers {
		if s.Suffrage == Voter {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// memberIDs returns every server of both halves, sorted, without duplicates.
func (c Configuration) memberIDs() []ServerID {
	var ids []ServerID
	for _, s := range c.Servers {
		ids = append(ids, s.ID)
	}
	for _, s := range c.Old {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// address returns the address of server id in either half.
func (c Configuration) address(id ServerID) (ServerAddress, bool) {
	for _, s := range c.Servers {
		if s.ID == id {
			return s.Address, true
		}
	}
	for _, s := range c.Old {
		if s.ID == id {
			return s.Address, true
		}
	}
	return "", false
}

// confEntry is a configuration and the index of the log entry carrying it.
type confEntry struct {
	index uint64
	conf  Configuration
}

// configs tracks the configuration entries in the log. A server uses the
// latest one from the moment it appends it (Raft dissertation §4.1), so when
// a conflicting suffix is truncated the configuration must roll back: the
// list keeps every configuration entry above the newest committed one.
//
// Invariant: entries is non-empty and ascending by index; entries[0] is the
// base (from a snapshot, or the empty configuration at index 0).
type configs struct {
	entries []confEntry
}

func newConfigs(base confEntry) configs { return configs{entries: []confEntry{base}} }

func (cs *configs) latest() confEntry { return cs.entries[len(cs.entries)-1] }

// committed returns the newest configuration at or below commitIndex.
func (cs *configs) committed(commitIndex uint64) confEntry {
	for i := len(cs.entries) - 1; i > 0; i-- {
		if cs.entries[i].index <= commitIndex {
			return cs.entries[i]
		}
	}
	return cs.entries[0]
}

func (cs *configs) add(e confEntry) { cs.entries = append(cs.entries, e) }

// truncateFrom drops the configurations of entries at or above index and
// reports whether it dropped any.
func (cs *configs) truncateFrom(index uint64) bool {
	n := len(cs.entries)
	for n > 1 && cs.entries[n-1].index >= index {
		n--
	}
	dropped := n < len(cs.entries)
	cs.entries = cs.entries[:n]
	return dropped
}

// compact forgets configurations older than the newest committed one,
// which can never be rolled back to.
func (cs *configs) compact(commitIndex uint64) {
	for len(cs.entries) > 1 && cs.entries[1].index <= commitIndex {
		cs.entries = cs.entries[1:]
	}
}
