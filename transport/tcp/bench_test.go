package tcp

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
	"github.com/stretchr/testify/require"
)

// BenchmarkSendAppends streams MsgAppend messages of 128-byte entries from
// one transport to another, with at most window messages outstanding (sent,
// not yet taken from the receiver's Consumer channel), as Raft's pipelining
// window keeps them. allocs/op and B/op count both ends: encoding, framing,
// reading and decoding one message. Each runs without metrics and with
// a Recorder at both ends (benchstat -col /metrics).
func BenchmarkSendAppends(b *testing.B) {
	for _, entries := range []int{1, 64} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("entries=%d/metrics=off", entries)
			var sa, sr metrics.Sink
			if on {
				name = fmt.Sprintf("entries=%d/metrics=on", entries)
				sa, sr = metrics.NewRecorder(), metrics.NewRecorder()
			}
			b.Run(name, func(b *testing.B) { benchSendAppends(b, entries, sa, sr) })
		}
	}
}

func benchSendAppends(b *testing.B, entries int, sa, sr metrics.Sink) {
	const window = 256
	a, r := newTransport(b, Options{Metrics: sa}), newTransport(b, Options{Metrics: sr})
	ents := make([]raft.Log, entries)
	for i := range ents {
		ents[i] = raft.Log{Index: uint64(11 + i), Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte{'x'}, 128)}
	}
	m := &raft.Message{Type: raft.MsgAppend, From: "a", To: "b", Term: 3, Index: 10, LogTerm: 3, Commit: 9, Entries: ents}
	size, err := raft.EncodeMessage(m)
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: dial the bulk lane.
	if err := a.Send(r.LocalAddr(), m); err != nil {
		b.Fatal(err)
	}
	recv(b, r, 5*time.Second)
	sem := make(chan struct{}, window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			<-r.Consumer()
			<-sem
		}
	}()
	b.SetBytes(int64(len(size)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sem <- struct{}{}
		if err := a.Send(r.LocalAddr(), m); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	if st := a.Stats(); st.Dropped != 0 || st.Failed != 0 {
		b.Fatalf("sender dropped %d, failed %d", st.Dropped, st.Failed)
	}
	if st := r.Stats(); st.ReceiveDropped != 0 {
		b.Fatalf("receiver dropped %d", st.ReceiveDropped)
	}
}

// BenchmarkHostSendAppends runs 3 HostTransports on loopback, each sending
// MsgAppend messages of one 128-byte entry to both others from one
// goroutine per group, G groups in all, with at most 1024 messages
// outstanding per sending host (sent, not yet taken from a Consumer). An
// op is one message delivered; msgs/s is the rate over all three hosts,
// frames/msg the batch frames written per message (1/frames/msg messages
// share a frame and a write).
func BenchmarkHostSendAppends(b *testing.B) {
	for _, groups := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) { benchHost(b, groups) })
	}
}

func benchHost(b *testing.B, groups int) {
	const hosts, window = 3, 1024
	hs := make([]*HostTransport, hosts)
	for i := range hs {
		hs[i] = newHost(b, Options{})
	}
	data := bytes.Repeat([]byte{'x'}, 128)
	msg := func(from int, g int) *raft.Message {
		return &raft.Message{Type: raft.MsgAppend, From: raft.ServerID(rune('0' + from)), To: "x", Term: 3, Index: 10, LogTerm: 3, Commit: uint64(g),
			Entries: []raft.Log{{Index: 11, Term: 3, Type: raft.LogCommand, Data: data}}}
	}
	// Warm up: dial every bulk lane.
	for i, h := range hs {
		for j, p := range hs {
			if i != j {
				require.NoError(b, h.Send(p.LocalAddr(), 1, msg(i, 1)))
			}
		}
	}
	for _, h := range hs {
		for range hosts - 1 {
			recvGroup(b, h, 5*time.Second)
		}
	}
	var sent0, frames0 uint64
	for _, h := range hs {
		sent0 += h.Stats().Sent
		frames0 += h.Stats().Frames
	}
	per := (b.N + hosts*groups - 1) / (hosts * groups) // messages per sending goroutine
	sems := make([]chan struct{}, hosts)
	for i := range sems {
		sems[i] = make(chan struct{}, window)
	}
	var recvWG, sendWG sync.WaitGroup
	expect := make([]int, hosts) // messages each host receives: half of each other host's
	for i := range hosts {
		expect[i] = (hosts - 1) * groups * per / 2
	}
	// Each goroutine alternates between its two peers, starting with the
	// peer after it, so each peer gets per/2 from every goroutine when per
	// is even; make it so.
	if per%2 == 1 {
		per++
		for i := range expect {
			expect[i] = (hosts - 1) * groups * per / 2
		}
	}
	b.SetBytes(int64(len(mustEncode(b, msg(0, 1)))))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i, h := range hs {
		recvWG.Add(1)
		go func() {
			defer recvWG.Done()
			for range expect[i] {
				select {
				case gm := <-h.Consumer():
					<-sems[gm.Msg.From[0]-'0']
				case <-time.After(30 * time.Second):
					b.Errorf("host %d: a message was lost (stats %+v)", i, h.Stats())
					return
				}
			}
		}()
		for g := range groups {
			sendWG.Add(1)
			go func() {
				defer sendWG.Done()
				m := msg(i, g+1)
				for k := range per {
					p := hs[(i+1+k%2)%hosts]
					sems[i] <- struct{}{}
					if err := h.Send(p.LocalAddr(), raft.GroupID(g+1), m); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	sendWG.Wait()
	recvWG.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var sent, frames, dropped uint64
	for _, h := range hs {
		st := h.Stats()
		sent, frames, dropped = sent+st.Sent, frames+st.Frames, dropped+st.Dropped+st.ReceiveDropped
	}
	sent, frames = sent-sent0, frames-frames0
	if dropped != 0 {
		b.Fatalf("%d dropped", dropped)
	}
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(frames)/float64(sent), "frames/msg")
}
