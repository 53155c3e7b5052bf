package lock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The child of TestOtherProcess: try the lock and report.
	if p := os.Getenv("KEEL_LOCK_CHILD"); p != "" {
		l, err := Acquire(p)
		switch {
		case errors.Is(err, ErrInUse):
			os.Stdout.WriteString("in use")
		case err != nil:
			os.Stdout.WriteString("error: " + err.Error())
		default:
			l.Release()
			os.Stdout.WriteString("acquired")
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestSecondAcquireRefusedUntilRelease(t *testing.T) {
	p := filepath.Join(t.TempDir(), "LOCK")
	a, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(p)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), p) {
		t.Fatalf("second Acquire: %v, want ErrInUse naming %s", err, p)
	}
	// Another spelling of the same path is the same lock.
	rel, err := filepath.Rel(mustWd(t), p)
	if err == nil {
		if _, err := Acquire(rel); !errors.Is(err, ErrInUse) {
			t.Fatalf("Acquire(%s): %v, want ErrInUse", rel, err)
		}
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	b, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the lock file should stay: %v", err)
	}
}

func TestAcquireMissingDirectory(t *testing.T) {
	_, err := Acquire(filepath.Join(t.TempDir(), "no", "LOCK"))
	if err == nil || errors.Is(err, ErrInUse) {
		t.Fatalf("Acquire in a missing directory: %v, want an error other than ErrInUse", err)
	}
}

// The lock holds against another process, and is free once released.
func TestOtherProcess(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no flock: only the in-process check applies")
	}
	p := filepath.Join(t.TempDir(), "LOCK")
	child := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "KEEL_LOCK_CHILD="+p)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return string(out)
	}
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := child(); got != "in use" {
		t.Fatalf("child while held: %q, want in use", got)
	}
	l.Release()
	if got := child(); got != "acquired" {
		t.Fatalf("child after release: %q, want acquired", got)
	}
}

func mustWd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
