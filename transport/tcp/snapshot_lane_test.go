package tcp

import (
	"bytes"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/stretchr/testify/require"
)

// TestSnapshotChunksDoNotDelayHeartbeats streams a snapshot of 4 chunks
// of 1 MiB to a peer and, while it streams, sends heartbeats to the same
// peer, one at a time, every 5 ms.
// MsgSnapshot rides the bulk lane and heartbeats the fast lane, so the first
// heartbeat overtakes the snapshot instead of waiting for 4 MiB to be
// encoded, written and decoded before it, and none waits long.
func TestSnapshotChunksDoNotDelayHeartbeats(t *testing.T) {
	a := newTransport(t, Options{})
	b := newTransport(t, Options{})
	const (
		chunks    = 4
		chunkSize = 1 << 20
		bound     = 500 * time.Millisecond
	)
	conf := &raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "a", Address: a.LocalAddr()}}}
	chunk := func(id string, offset int, data []byte, done bool) *raft.Message {
		return &raft.Message{Type: raft.MsgSnapshot, From: "a", Term: 3, Index: 100, LogTerm: 2,
			Snapshot: &raft.SnapshotChunk{
				ID: id, Offset: uint64(offset), Data: data, Done: done, Size: uint64(offset + len(data)),
				Configuration: conf, ConfigurationIndex: 1,
			}}
	}

	// Dial both lanes first (a heartbeat and a small snapshot), so that
	// what follows measures steady state.
	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", 0)))
	require.NoError(t, a.Send(b.LocalAddr(), chunk("2-100-0", 0, []byte("small"), true)))
	seen := map[raft.MessageType]bool{}
	for len(seen) < 2 {
		seen[recv(t, b, 10*time.Second).Type] = true
	}

	data := bytes.Repeat([]byte("s"), chunkSize)
	start := time.Now()
	for i := range chunks {
		require.NoError(t, a.Send(b.LocalAddr(), chunk("2-100-1", i*chunkSize, data, i == chunks-1)))
	}
	// A heartbeat goes out at once, then one every 5 ms while none is in
	// flight, until the whole snapshot has arrived.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	hb, sent, inFlight := uint64(1), time.Now(), true
	require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", hb)))
	var (
		got         int // chunks received
		firstBefore = -1
		delivered   int
		worst       time.Duration
		total       time.Duration
	)
	for got < chunks || inFlight {
		select {
		case <-deadline.C:
			t.Fatalf("after 60 s, %d of %d chunks received, heartbeat in flight %v", got, chunks, inFlight)
		case <-tick.C:
			if !inFlight && got < chunks {
				hb, sent, inFlight = hb+1, time.Now(), true
				require.NoError(t, a.Send(b.LocalAddr(), heartbeat("a", hb)))
			}
		case m := <-b.Consumer():
			switch m.Type {
			case raft.MsgHeartbeat:
				require.Equal(t, hb, m.Commit, "heartbeats out of order")
				lat := time.Since(sent)
				worst, total, delivered, inFlight = max(worst, lat), total+lat, delivered+1, false
				if hb == 1 {
					firstBefore = got
				}
			case raft.MsgSnapshot:
				require.Equal(t, uint64(got*chunkSize), m.Snapshot.Offset, "chunks out of order")
				require.Len(t, m.Snapshot.Data, chunkSize)
				got++
			default:
				t.Fatalf("unexpected %v", m.Type)
			}
		}
	}
	transfer := time.Since(start)
	perChunk := transfer / chunks
	t.Logf("a %d MiB snapshot took %v to stream (%v a chunk); meanwhile %d heartbeats to the same peer, mean latency %v, max %v; the first arrived with %d of %d chunks received",
		chunks*chunkSize>>20, transfer, perChunk, delivered, total/time.Duration(delivered), worst, firstBefore, chunks)
	require.Less(t, firstBefore, chunks, "the first heartbeat waited behind the snapshot")
	// A heartbeat queued behind even one chunk would take about perChunk.
	require.Less(t, worst, min(bound, perChunk), "a heartbeat waited behind the snapshot")
}
