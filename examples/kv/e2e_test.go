package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// e2eProc is one kv server process of the end-to-end test.
type e2eProc struct {
	id, raftAddr, httpAddr string
	dir, logPath           string
	cmd                    *exec.Cmd
	done                   chan struct{} // closed when cmd.Wait returns
}

// start launches the server binary, appending its output to logPath.
func (p *e2eProc) start(t *testing.T, bin, peers string) {
	t.Helper()
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log for %s: %v", p.id, err)
	}
	cmd := exec.Command(bin, "-id", p.id, "-dir", p.dir, "-peers", peers)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", p.id, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() {
		cmd.Wait()
		logFile.Close()
		close(done)
	}()
}

// kill stops the process with SIGKILL and waits for it to exit.
func (p *e2eProc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// stop sends SIGINT and waits up to 5 s for a clean exit, then kills.
func (p *e2eProc) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-p.done:
		p.cmd = nil
	case <-timer.C:
		p.kill()
	}
}

// freePorts returns n distinct loopback addresses that were free a moment
// ago.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// The porcupine model: a register per key (the history is partitioned by
// key).
type kvInput struct {
	op    string // "put" or "get"
	key   string
	value string // for put
}

type kvOutput struct {
	value string
	found bool
}

type kvState struct {
	value string
	found bool
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var parts [][]porcupine.Operation
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() interface{} { return kvState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in := state.(kvState), input.(kvInput)
		switch in.op {
		case "put":
			return true, kvState{value: in.value, found: true}
		case "get":
			out := output.(kvOutput)
			return out == kvOutput(st), st
		}
		return false, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(kvInput)
		if in.op == "put" {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		out := output.(kvOutput)
		if !out.found {
			return fmt.Sprintf("get(%s) -> not found", in.key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.key, out.value)
	},
	DescribeState: func(state interface{}) string {
		st := state.(kvState)
		if !st.found {
			return "<none>"
		}
		return st.value
	},
}

// e2eHistory collects operations from concurrent clients.
type e2eHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// unknown marks ops whose outcome is unknown; their return time is set
	// to the end of the history before checking.
	unknown []bool
	acked   map[string][]string // key -> values of acknowledged puts
	maybe   map[string][]string // key -> values of puts with unknown outcome
}

func (h *e2eHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *e2eHistory) add(op porcupine.Operation, unknown bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
	h.unknown = append(h.unknown, unknown)
	in := op.Input.(kvInput)
	if in.op == "put" {
		if unknown {
			h.maybe[in.key] = append(h.maybe[in.key], in.value)
		} else {
			h.acked[in.key] = append(h.acked[in.key], in.value)
		}
	}
}

// e2ePut writes key=value through addr. It reports whether the write was
// acknowledged (done) and, if not, whether it may have been applied.
func e2ePut(client *http.Client, addr, key, value string) (acked, maybe bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// A bytes.Reader body sets GetBody, so the client re-sends the PUT on
	// a 307 redirect to the leader.
	req, err := http.NewRequestWithContext(ctx, "PUT", "http://"+addr+"/kv/"+key, bytes.NewReader([]byte(value)))
	if err != nil {
		return false, true
	}
	resp, err := client.Do(req)
	if err != nil {
		// A failed dial means this hop never reached a server; earlier hops
		// were redirects, which apply nothing.
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return false, false
		}
		return false, true
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return true, false
	}
	// NotLeaderError from Apply: nothing was proposed.
	if resp.StatusCode == http.StatusServiceUnavailable && strings.HasPrefix(string(body), "not the leader") {
		return false, false
	}
	return false, true
}

// e2eGet reads key linearizably through addr; ok is false if the read
// failed.
func e2eGet(client *http.Client, addr, key string) (out kvOutput, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/kv/"+key+"?consistency=linearizable", nil)
	if err != nil {
		return kvOutput{}, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return kvOutput{}, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return kvOutput{}, false
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return kvOutput{value: string(body), found: true}, true
	case http.StatusNotFound:
		return kvOutput{}, true
	}
	return kvOutput{}, false
}

// e2eLeader asks every running server for /status and returns the index of
// the one that reports itself leader, or -1.
func e2eLeader(client *http.Client, procs []*e2eProc) int {
	for i, p := range procs {
		if p.cmd == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.httpAddr+"/status", nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			continue
		}
		var st status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		cancel()
		if err == nil && st.State == "Leader" && string(st.ID) == p.id {
			return i
		}
	}
	return -1
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// TestEndToEndKillLeader runs three kv server processes, drives concurrent
// writes and linearizable reads through them, SIGKILLs the leader and
// restarts it on the same data, and checks the history with porcupine.
func TestEndToEndKillLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs server processes")
	}
	testStart := time.Now()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "kv")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built in %v", time.Since(testStart).Round(time.Millisecond))

	addrs := freePorts(t, 6)
	ids := []string{"a", "b", "c"}
	var procs []*e2eProc
	var peerList []string
	for i, id := range ids {
		p := &e2eProc{
			id: id, raftAddr: addrs[2*i], httpAddr: addrs[2*i+1],
			dir: filepath.Join(tmp, "data-"+id), logPath: filepath.Join(tmp, id+".log"),
		}
		procs = append(procs, p)
		peerList = append(peerList, id+"="+p.raftAddr+"="+p.httpAddr)
	}
	peers := strings.Join(peerList, ",")

	transport := &http.Transport{DisableKeepAlives: true}
	client := &http.Client{Transport: transport}
	// Cleanup runs last-registered first: close the client, then stop the
	// servers, then (on failure) print the log paths.
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("server %s log: %s", p.id, p.logPath)
			}
		}
	})
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop()
			}()
		}
		wg.Wait()
	})
	t.Cleanup(transport.CloseIdleConnections)

	for _, p := range procs {
		p.start(t, bin, peers)
	}
	if !waitFor(8*time.Second, func() bool { return e2eLeader(client, procs) >= 0 }) {
		t.Fatalf("no leader within 8 s")
	}
	t.Logf("cluster up with a leader after %v", time.Since(testStart).Round(time.Millisecond))

	keys := []string{"x", "y", "z"}
	h := &e2eHistory{start: time.Now(), acked: map[string][]string{}, maybe: map[string][]string{}}
	stopClients := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 4
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(c) + time.Now().UnixNano()))
			for seq := 0; ; seq++ {
				select {
				case <-stopClients:
					return
				default:
				}
				key := keys[rng.Intn(len(keys))]
				addr := procs[rng.Intn(len(procs))].httpAddr
				call := h.now()
				if rng.Intn(2) == 0 {
					value := fmt.Sprintf("c%d-%d", c, seq)
					acked, maybe := e2ePut(client, addr, key, value)
					if acked || maybe {
						h.add(porcupine.Operation{ClientId: c, Input: kvInput{op: "put", key: key, value: value},
							Call: call, Output: kvOutput{}, Return: h.now()}, !acked)
					}
				} else if out, ok := e2eGet(client, addr, key); ok {
					h.add(porcupine.Operation{ClientId: c, Input: kvInput{op: "get", key: key},
						Call: call, Output: out, Return: h.now()}, false)
				}
			}
		}()
	}

	// The fault schedule: kill the leader ~1 s in, restart it 1.5 s later,
	// stop the clients at 4 s.
	phase := time.NewTimer(time.Second)
	<-phase.C
	killed := -1
	waitFor(time.Second, func() bool { killed = e2eLeader(client, procs); return killed >= 0 })
	if killed < 0 {
		close(stopClients)
		wg.Wait()
		t.Fatalf("no leader to kill")
	}
	procs[killed].kill()
	killedAt := time.Since(h.start)
	t.Logf("killed leader %s at %v", procs[killed].id, killedAt.Round(time.Millisecond))
	phase.Reset(1500 * time.Millisecond)
	<-phase.C
	procs[killed].start(t, bin, peers)
	t.Logf("restarted %s at %v", procs[killed].id, time.Since(h.start).Round(time.Millisecond))
	phase.Reset(4*time.Second - time.Since(h.start))
	<-phase.C
	close(stopClients)
	wg.Wait()
	t.Logf("clients stopped at %v", time.Since(h.start).Round(time.Millisecond))

	// Final reads: every key, through the current leader, must show a write
	// that was acknowledged or may have been applied, and (checked by
	// porcupine) nothing older than the last acknowledged write.
	if !waitFor(5*time.Second, func() bool { return e2eLeader(client, procs) >= 0 }) {
		t.Fatalf("no leader after the run")
	}
	for _, key := range keys {
		var out kvOutput
		read := waitFor(5*time.Second, func() bool {
			addr := procs[rand.Intn(len(procs))].httpAddr
			call := h.now()
			o, ok := e2eGet(client, addr, key)
			if ok {
				out = o
				h.add(porcupine.Operation{ClientId: clients, Input: kvInput{op: "get", key: key},
					Call: call, Output: o, Return: h.now()}, false)
			}
			return ok
		})
		if !read {
			t.Fatalf("final read of %q failed", key)
		}
		h.mu.Lock()
		acked, maybe := h.acked[key], h.maybe[key]
		h.mu.Unlock()
		switch {
		case !out.found && len(acked) > 0:
			t.Errorf("final read of %q: not found, but %d writes were acknowledged", key, len(acked))
		case out.found && !contains(acked, out.value) && !contains(maybe, out.value):
			t.Errorf("final read of %q: %q was never written", key, out.value)
		}
	}

	// Every server's /metrics, scraped as Prometheus would.
	if !waitFor(5*time.Second, func() bool { return e2eLeader(client, procs) >= 0 }) {
		t.Fatalf("no leader before the scrape")
	}
	checkScrapes(t, client, procs)

	// Unknown outcomes: the write may take effect any time after its call.
	end := h.now() + 1
	var nPut, nGet, nUnknown int
	for i := range h.ops {
		if h.unknown[i] {
			h.ops[i].Return = end
			nUnknown++
		}
		if h.ops[i].Input.(kvInput).op == "put" {
			nPut++
		} else {
			nGet++
		}
	}
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, 5*time.Second)
	t.Logf("porcupine: %s on %d ops (%d puts, %d of them unknown; %d gets) in %v",
		res, len(h.ops), nPut, nUnknown, nGet, time.Since(checkStart).Round(time.Millisecond))
	if res != porcupine.Ok {
		path := filepath.Join(t.TempDir(), "linearizability.html")
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			t.Logf("visualize: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
		t.Errorf("history is not linearizable: %s", res)
	}
	if nPut == 0 || nGet == 0 {
		t.Errorf("workload made no progress: %d puts, %d gets", nPut, nGet)
	}
	t.Logf("total %v", time.Since(testStart).Round(time.Millisecond))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
