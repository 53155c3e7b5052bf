package raft

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// gatedStable is a fakeStable whose writes block while gate is open.
type gatedStable struct {
	*fakeStable
	mu   sync.Mutex
	gate chan struct{} // nil: writes go through
}

func (s *gatedStable) Set(k, v []byte) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.fakeStable.Set(k, v)
}

func (t *recordingTransport) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sent)
}

// waitUntil polls cond in the bubble's virtual time.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(d); !cond(); <-tick.C {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// startGatedServer starts server a of a three-server cluster whose
// StableStore writes wait for gs.gate, with a transport that records what
// it sends; stable is the store behind the gate.
func startGatedServer(t *testing.T, conf *Config) (*Raft, *gatedStable, *fakeStable, *recordingTransport) {
	t.Helper()
	logs, stable := &fakeLogStore{}, &fakeStable{kv: map[string][]byte{}}
	servers := Configuration{Servers: []Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}, {ID: "c", Address: "c"}}}
	require.NoError(t, BootstrapCluster(conf, logs, stable, noSnapshots{}, servers))
	gs := &gatedStable{fakeStable: stable, gate: make(chan struct{})}
	trans := &recordingTransport{in: make(chan *Message)}
	r, err := NewRaft(conf, nopFSM{}, logs, gs, noSnapshots{}, trans)
	require.NoError(t, err)
	return r, gs, stable, trans
}

// A StableStore write that hangs blocks the persister, not the event loop:
// the loop keeps serving, detects the stall and reports it. Meanwhile no
// message leaves — neither the answer that depends on the new term nor
// those of later inputs — until term and vote are durable; then they all
// do.
func TestStalledStableStoreDoesNotBlockTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conf := DefaultConfig()
		conf.LocalID = "a"
		conf.HeartbeatInterval = 10 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.DiskStallTimeout = 200 * time.Millisecond
		r, gs, stable, trans := startGatedServer(t, conf)

		start := time.Now()
		trans.in <- &Message{Type: MsgHeartbeat, From: "b", FromAddr: "b", To: "a", Term: 5} // term 5: written, blocks
		synctest.Wait()
		trans.in <- &Message{Type: MsgHeartbeat, From: "b", FromAddr: "b", To: "a", Term: 5} // a later input, same term
		synctest.Wait()
		require.Zero(t, trans.total(), "nothing leaves before term 5 is durable")
		_, err := r.GetConfiguration(context.Background())
		require.NoError(t, err, "the event loop keeps serving")

		waitUntil(t, time.Second, "the stall reported", func() bool { return r.Stats()["disk_stalled"] == "true" })
		require.GreaterOrEqual(t, time.Since(start), conf.DiskStallTimeout)
		require.Zero(t, trans.total(), "still nothing leaves")

		close(gs.gate)
		waitUntil(t, time.Second, "both answers sent", func() bool { return trans.count(MsgHeartbeatResp) == 2 })
		hs, err := loadHardState(stable)
		require.NoError(t, err)
		require.Equal(t, uint64(5), hs.Term)
		waitUntil(t, time.Second, "the stall reported over", func() bool { return r.Stats()["disk_stalled"] == "false" })
		require.NoError(t, r.Shutdown())
	})
}

// While a term/vote write hangs, the answers waiting behind it are bounded:
// beyond maxQueuedMsgs new ones are dropped, not queued.
func TestHeldMessagesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conf := DefaultConfig()
		conf.LocalID = "a"
		r, gs, _, trans := startGatedServer(t, conf)
		for range maxQueuedMsgs + 500 {
			trans.in <- &Message{Type: MsgHeartbeat, From: "b", FromAddr: "b", To: "a", Term: 5}
		}
		synctest.Wait()
		require.Equal(t, int64(maxQueuedMsgs), r.persister.queuedMsgs.Load(), "answers held behind the hung write")
		close(gs.gate)
		waitUntil(t, time.Second, "the held answers sent", func() bool { return trans.count(MsgHeartbeatResp) == maxQueuedMsgs })
		require.NoError(t, r.Shutdown())
	})
}
