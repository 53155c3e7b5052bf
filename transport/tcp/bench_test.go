package tcp

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/keelraft/raft"
	"github.com/keelraft/raft/metrics"
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
