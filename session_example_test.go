package raft_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/keelraft/raft"
	storeinmem "github.com/keelraft/raft/storage/inmem"
	transinmem "github.com/keelraft/raft/transport/inmem"
)

// kvFSM is a tiny key-value FSM: "k=v" sets k and answers the value it
// replaced (a string, as sessions require), "" if none.
type kvFSM struct {
	mu sync.Mutex
	kv map[string]string
}

func (f *kvFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var k, v string
	if _, err := fmt.Sscanf(string(l.Data), "%s %s", &k, &v); err != nil {
		return err // errors are kept for retries as their message
	}
	old := f.kv[k]
	f.kv[k] = v
	return old
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("not needed here") }
func (f *kvFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// singleServer starts a one-server cluster, which elects itself, and
// returns it with its shutdown.
func singleServer() (*raft.Raft, func()) {
	network := transinmem.NewNetwork(1)
	cfg := raft.DefaultConfig()
	cfg.LocalID = "a"
	store, snaps := storeinmem.NewStore(), storeinmem.NewSnapshotStore()
	trans, _ := network.NewTransport("a")
	conf := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}
	if err := raft.BootstrapCluster(cfg, store, store, snaps, conf); err != nil {
		panic(err)
	}
	r, err := raft.NewRaft(cfg, &kvFSM{kv: map[string]string{}}, store, store, snaps, trans)
	if err != nil {
		panic(err)
	}
	for !<-r.LeaderCh() { // it elects itself
	}
	return r, func() { r.Shutdown(); network.Close() }
}

// A client registers a session once, then numbers its commands.
func ExampleRaft_RegisterSession() {
	r, stop := singleServer()
	defer stop()
	ctx := context.Background()

	session, err := r.RegisterSession(ctx, time.Minute)
	if err != nil {
		panic(err)
	}
	f := r.ApplySession(ctx, session, 1, []byte("x 1"))
	if err := f.Error(); err != nil {
		panic(err)
	}
	fmt.Printf("replaced %q\n", f.Response())
	// Output: replaced ""
}

// A command whose outcome is unknown is sent again with the same sequence
// number: it is applied once, and every attempt gets the first answer. An
// old copy arriving after the next command is refused.
func ExampleRaft_ApplySession() {
	r, stop := singleServer()
	defer stop()
	ctx := context.Background()
	session, _ := r.RegisterSession(ctx, time.Minute)

	r.ApplySession(ctx, session, 1, []byte("x 1")).Error()
	for attempt := 1; attempt <= 2; attempt++ {
		f := r.ApplySession(ctx, session, 2, []byte("x 2")) // the same seq each time
		if err := f.Error(); err != nil {
			panic(err)
		}
		fmt.Printf("attempt %d: replaced %q\n", attempt, f.Response())
	}
	r.ApplySession(ctx, session, 3, []byte("x 3")).Error()
	err := r.ApplySession(ctx, session, 2, []byte("x 2")).Error()
	fmt.Println(errors.Is(err, raft.ErrSessionStale))
	// Output:
	// attempt 1: replaced "1"
	// attempt 2: replaced "1"
	// true
}

// Closing a session releases it on every server; commands in it are then
// refused.
func ExampleRaft_CloseSession() {
	r, stop := singleServer()
	defer stop()
	ctx := context.Background()
	session, _ := r.RegisterSession(ctx, time.Minute)

	if err := r.CloseSession(ctx, session); err != nil {
		panic(err)
	}
	err := r.ApplySession(ctx, session, 1, []byte("x 1")).Error()
	fmt.Println(errors.Is(err, raft.ErrSessionExpired))
	// Output: true
}
