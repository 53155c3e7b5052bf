package rafttest_test

import (
	"fmt"
	"os"
	"testing"
)

// exampleT stands in for the *testing.T a real test has, so that the
// package's examples can run. It implements what rafttest uses.
type exampleT struct {
	testing.TB // nil: calling anything else panics
	cleanups   []func()
	dirs       []string
}

func newExampleT() *exampleT                        { return &exampleT{} }
func (t *exampleT) Helper()                         {}
func (t *exampleT) Name() string                    { return "Example" }
func (t *exampleT) Failed() bool                    { return false }
func (t *exampleT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Logf(format string, args ...any) {}
func (t *exampleT) Errorf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
func (t *exampleT) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "rafttest-example")
	if err != nil {
		panic(err)
	}
	t.dirs = append(t.dirs, dir)
	return dir
}

// finish does what go test does when a test ends: it runs the cleanups.
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, dir := range t.dirs {
		os.RemoveAll(dir)
	}
}
