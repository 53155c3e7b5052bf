package rafttest_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// fakeTB records failures instead of failing the real test. Its Fatal
// methods end the goroutine they run on (runtime.Goexit), as the real ones
// do, so run the code under test with run.
type fakeTB struct {
	testing.TB // the real test: Name, TempDir

	mu       sync.Mutex
	fatals   []string
	errors   []string
	logs     []string
	cleanups []func()
}

func newFakeTB(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t}
	t.Cleanup(func() {
		// Anything the test did not finish.
		f.finish()
	})
	return f
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) record(list *[]string, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*list = append(*list, msg)
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.record(&f.fatals, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) { f.record(&f.fatals, fmt.Sprint(args...)); runtime.Goexit() }
func (f *fakeTB) FailNow()          { f.record(&f.fatals, "FailNow"); runtime.Goexit() }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.record(&f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Error(args ...any)               { f.record(&f.errors, fmt.Sprint(args...)) }
func (f *fakeTB) Fail()                           { f.record(&f.errors, "Fail") }
func (f *fakeTB) Logf(format string, args ...any) { f.record(&f.logs, fmt.Sprintf(format, args...)) }
func (f *fakeTB) Log(args ...any)                 { f.record(&f.logs, fmt.Sprint(args...)) }

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fatals)+len(f.errors) > 0
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run runs fn on a goroutine of its own and reports whether it returned
// (false: it called a Fatal method).
func (f *fakeTB) run(fn func()) (returned bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
		returned = true
	}()
	<-done
	return returned
}

// finish runs the cleanups, last first, as go test does at the end of a
// test.
func (f *fakeTB) finish() {
	for {
		f.mu.Lock()
		n := len(f.cleanups)
		if n == 0 {
			f.mu.Unlock()
			return
		}
		fn := f.cleanups[n-1]
		f.cleanups = f.cleanups[:n-1]
		f.mu.Unlock()
		f.run(fn)
	}
}

func (f *fakeTB) snapshot() (fatals, errors, logs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.fatals...), append([]string(nil), f.errors...), append([]string(nil), f.logs...)
}

// requireFatal runs fn and fails t unless fn stopped with one Fatal whose
// message contains every want.
func requireFatal(t *testing.T, f *fakeTB, fn func(), want ...string) {
	t.Helper()
	before, _, _ := f.snapshot()
	if f.run(fn) {
		t.Fatalf("the helper returned; want it to fail the test with %q", want)
	}
	fatals, _, _ := f.snapshot()
	if len(fatals) != len(before)+1 {
		t.Fatalf("got fatals %q, want one more than %q", fatals, before)
	}
	msg := fatals[len(fatals)-1]
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("failure message %q does not contain %q", msg, w)
		}
	}
	t.Logf("failed as expected: %s", msg)
}

// requireOK runs fn and fails t unless it returned without failing.
func requireOK(t *testing.T, f *fakeTB, fn func()) {
	t.Helper()
	fatals0, errs0, _ := f.snapshot()
	returned := f.run(fn)
	fatals, errs, _ := f.snapshot()
	if !returned || len(fatals)+len(errs) > len(fatals0)+len(errs0) {
		t.Fatalf("the helper failed: %q %q", fatals[len(fatals0):], errs[len(errs0):])
	}
}
