package filesnap

import (
	"errors"
	"io"
	"os"
	"testing"

	"github.com/keelraft/raft"
)

// A truncated or corrupted snapshot is refused with an error naming it.
func TestTruncatedAndCorruptedNameTheSnapshot(t *testing.T) {
	s, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}
	write := func(index uint64) string {
		sk, err := s.Create(index, 1, conf, 1)
		if err != nil {
			t.Fatal(err)
		}
		sk.Write(make([]byte, 4096))
		if err := sk.Close(); err != nil {
			t.Fatal(err)
		}
		return sk.ID()
	}
	truncated, corrupted := write(10), write(20)

	fi, err := os.Stat(s.path(truncated))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.path(truncated), fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Open(truncated)
	if !errors.Is(err, ErrCorrupt) || !contains(err.Error(), truncated) {
		t.Fatalf("open truncated: %v, want ErrCorrupt naming %s", err, truncated)
	}

	b, _ := os.ReadFile(s.path(corrupted))
	b[100] ^= 1
	os.WriteFile(s.path(corrupted), b, 0o644)
	_, rc, err := s.Open(corrupted)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrCorrupt) || !contains(err.Error(), corrupted) {
		t.Fatalf("read corrupted: %v, want ErrCorrupt naming %s", err, corrupted)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
