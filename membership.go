package raft

import (
	"fmt"
	"slices"
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
