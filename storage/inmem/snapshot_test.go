package inmem

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelraft/raft"
)

func testConfig() raft.Configuration {
	return raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "a", Address: "addr-a"},
		{Suffrage: raft.Nonvoter, ID: "b", Address: "addr-b"},
	}}
}

// create writes and closes a snapshot whose contents name its index and
// term, and returns its ID.
func create(t *testing.T, s *SnapshotStore, index, term uint64) string {
	t.Helper()
	sink, err := s.Create(index, term, testConfig(), index-1)
	require.NoError(t, err)
	n, err := sink.Write([]byte(fmt.Sprintf("snap %d/%d", index, term)))
	require.NoError(t, err)
	require.Positive(t, n)
	require.NoError(t, sink.Close())
	return sink.ID()
}

func readSnapshot(t *testing.T, s *SnapshotStore, id string) (*raft.SnapshotMeta, string) {
	t.Helper()
	meta, rc, err := s.Open(id)
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	return meta, string(b)
}

// listIDs returns the IDs List gives, in its order.
func listIDs(t *testing.T, s *SnapshotStore) []string {
	t.Helper()
	metas, err := s.List()
	require.NoError(t, err)
	ids := []string{}
	for _, m := range metas {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestSnapshotVisibleOnlyAfterClose(t *testing.T) {
	s := NewSnapshotStore()
	cfg := testConfig()
	sink, err := s.Create(10, 3, cfg, 7)
	require.NoError(t, err)
	// The caller may reuse its configuration once Create returns.
	cfg.Servers[0].ID = "changed"

	_, err = sink.Write([]byte("hello, "))
	require.NoError(t, err)
	_, err = sink.Write([]byte("world"))
	require.NoError(t, err)
	require.Empty(t, listIDs(t, s), "listed before Close")
	_, _, err = s.Open(sink.ID())
	require.ErrorContains(t, err, fmt.Sprintf("inmem: Open: no snapshot with ID %q", sink.ID()))

	require.NoError(t, sink.Close())
	require.Equal(t, []string{sink.ID()}, listIDs(t, s))
	meta, data := readSnapshot(t, s, sink.ID())
	require.Equal(t, "hello, world", data)
	require.Equal(t, &raft.SnapshotMeta{
		ID: sink.ID(), Index: 10, Term: 3, Configuration: testConfig(), ConfigurationIndex: 7, Size: 12,
	}, meta)
	metas, err := s.List()
	require.NoError(t, err)
	require.Equal(t, meta, metas[0])
}

func TestSnapshotSinkAfterFinish(t *testing.T) {
	tests := []struct {
		name   string
		finish func(raft.SnapshotSink) error
		then   func(raft.SnapshotSink) error
		err    string // "" when the second call is allowed
	}{
		{"Write after Close", raft.SnapshotSink.Close, func(k raft.SnapshotSink) error {
			_, err := k.Write([]byte("x"))
			return err
		}, "Write: sink already closed"},
		{"Close after Close", raft.SnapshotSink.Close, raft.SnapshotSink.Close, "Close: sink already closed"},
		{"Cancel after Close", raft.SnapshotSink.Close, raft.SnapshotSink.Cancel, "Cancel: sink already closed"},
		{"Write after Cancel", raft.SnapshotSink.Cancel, func(k raft.SnapshotSink) error {
			_, err := k.Write([]byte("x"))
			return err
		}, "Write: sink already cancelled"},
		{"Close after Cancel", raft.SnapshotSink.Cancel, raft.SnapshotSink.Close, "Close: sink already cancelled"},
		{"Cancel after Cancel", raft.SnapshotSink.Cancel, raft.SnapshotSink.Cancel, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSnapshotStore()
			sink, err := s.Create(5, 1, testConfig(), 1)
			require.NoError(t, err)
			_, err = sink.Write([]byte("data"))
			require.NoError(t, err)
			require.NoError(t, tt.finish(sink))
			err = tt.then(sink)
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, "inmem: snapshot "+sink.ID()+": "+tt.err)
			}
			// Whatever came second did not change the outcome of the first.
			metas, err := s.List()
			require.NoError(t, err)
			if strings.HasSuffix(tt.name, "after Close") {
				require.Len(t, metas, 1)
				_, data := readSnapshot(t, s, sink.ID())
				require.Equal(t, "data", data)
			} else {
				require.Empty(t, metas)
			}
		})
	}
}

func TestSnapshotCancel(t *testing.T) {
	s := NewSnapshotStore()
	keep := create(t, s, 5, 1)
	sink, err := s.Create(10, 2, testConfig(), 1)
	require.NoError(t, err)
	_, err = sink.Write([]byte("doomed"))
	require.NoError(t, err)
	require.NoError(t, sink.Cancel())
	require.Equal(t, []string{keep}, listIDs(t, s))
	_, _, err = s.Open(sink.ID())
	require.Error(t, err)

	// A cancelled snapshot takes no retention slot: with one more closed,
	// the first is still kept.
	a := create(t, s, 11, 2)
	require.Equal(t, []string{a, keep}, listIDs(t, s))
}

func TestSnapshotIDsUnique(t *testing.T) {
	s := NewSnapshotStoreRetain(10)
	seen := map[string]bool{}
	for range 5 {
		sink, err := s.Create(7, 2, testConfig(), 1)
		require.NoError(t, err)
		require.False(t, seen[sink.ID()], "ID %q reused", sink.ID())
		seen[sink.ID()] = true
		require.Regexp(t, `^2-7-\d+$`, sink.ID())
		require.NoError(t, sink.Cancel())
	}
}

func TestSnapshotIDsUniqueAcrossCrash(t *testing.T) {
	// The restarted store must not reuse the ID of a snapshot it holds.
	s := NewSnapshotStore()
	id := create(t, s, 7, 2)
	c := s.Crash()
	sink, err := c.Create(7, 2, testConfig(), 1)
	require.NoError(t, err)
	require.NotEqual(t, id, sink.ID())
	require.NoError(t, sink.Close())
	require.Len(t, listIDs(t, c), 2)
}

func TestSnapshotListOrder(t *testing.T) {
	s := NewSnapshotStoreRetain(10)
	// Closed out of index order, and two at index 20 whose creation order
	// differs from their closing order.
	i10 := create(t, s, 10, 1)
	k20a, err := s.Create(20, 2, testConfig(), 1)
	require.NoError(t, err)
	k20b, err := s.Create(20, 2, testConfig(), 1)
	require.NoError(t, err)
	for _, k := range []raft.SnapshotSink{k20a, k20b} {
		_, err := k.Write([]byte("snap 20/2"))
		require.NoError(t, err)
	}
	i30 := create(t, s, 30, 2)
	require.NoError(t, k20b.Close())
	i5 := create(t, s, 5, 1)
	require.NoError(t, k20a.Close())
	i25 := create(t, s, 25, 1)

	require.Equal(t, []string{i30, i25, k20b.ID(), k20a.ID(), i10, i5}, listIDs(t, s))
	metas, err := s.List()
	require.NoError(t, err)
	for _, m := range metas {
		_, data := readSnapshot(t, s, m.ID)
		require.Equal(t, fmt.Sprintf("snap %d/%d", m.Index, m.Term), data)
	}
}

func TestSnapshotRetention(t *testing.T) {
	tests := []struct {
		name    string
		retain  int
		indexes []uint64 // closed in this order
		want    []uint64 // indexes listed afterwards
	}{
		{"default keeps 2", 0, []uint64{1, 2, 3}, []uint64{3, 2}},
		{"keeps 1", 1, []uint64{1, 2, 3}, []uint64{3}},
		{"keeps 3", 3, []uint64{1, 2, 3, 4, 5}, []uint64{5, 4, 3}},
		{"fewer than retained", 3, []uint64{1, 2}, []uint64{2, 1}},
		// An older snapshot closed last is the one dropped.
		{"late old snapshot dropped", 2, []uint64{5, 6, 4}, []uint64{6, 5}},
		{"late middle snapshot kept", 2, []uint64{4, 6, 5}, []uint64{6, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSnapshotStore()
			if tt.retain != 0 {
				s = NewSnapshotStoreRetain(tt.retain)
			}
			ids := map[uint64]string{}
			for _, i := range tt.indexes {
				ids[i] = create(t, s, i, 1)
			}
			var want []string
			for _, i := range tt.want {
				want = append(want, ids[i])
			}
			require.Equal(t, want, listIDs(t, s))
			for i, id := range ids {
				_, _, err := s.Open(id)
				if slices.Contains(tt.want, i) {
					require.NoError(t, err, "index %d", i)
				} else {
					require.Error(t, err, "index %d was dropped", i)
				}
			}
		})
	}
	require.Panics(t, func() { NewSnapshotStoreRetain(0) })
}

func TestSnapshotReaderOutlivesRetention(t *testing.T) {
	s := NewSnapshotStoreRetain(1)
	id := create(t, s, 1, 1)
	_, rc, err := s.Open(id)
	require.NoError(t, err)
	create(t, s, 2, 1) // drops id
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, "snap 1/1", string(b))
	require.NoError(t, rc.Close())
}

func TestSnapshotMetaCopies(t *testing.T) {
	s := NewSnapshotStore()
	id := create(t, s, 3, 1)
	meta, _ := readSnapshot(t, s, id)
	meta.Index = 99
	meta.Configuration.Servers[0].ID = "changed"
	metas, err := s.List()
	require.NoError(t, err)
	metas[0].Size = 0
	metas[0].Configuration.Servers[1].ID = "changed"

	meta, _ = readSnapshot(t, s, id)
	require.Equal(t, uint64(3), meta.Index)
	require.Equal(t, int64(len("snap 3/1")), meta.Size)
	require.Equal(t, testConfig(), meta.Configuration)
}

func TestSnapshotCrash(t *testing.T) {
	s := NewSnapshotStoreRetain(2)
	a := create(t, s, 10, 1)
	pending, err := s.Create(20, 1, testConfig(), 1)
	require.NoError(t, err)
	_, err = pending.Write([]byte("half"))
	require.NoError(t, err)

	c := s.Crash()
	// Only the closed snapshot survives; closing the pending sink later
	// publishes to the original only.
	require.Equal(t, []string{a}, listIDs(t, c))
	require.NoError(t, pending.Close())
	require.Equal(t, []string{pending.ID(), a}, listIDs(t, s))
	require.Equal(t, []string{a}, listIDs(t, c))
	_, _, err = c.Open(pending.ID())
	require.Error(t, err)

	// The copy keeps the retention and evolves on its own.
	b := create(t, c, 30, 2)
	d := create(t, c, 40, 2)
	require.Equal(t, []string{d, b}, listIDs(t, c))
	require.Equal(t, []string{pending.ID(), a}, listIDs(t, s))
	_, data := readSnapshot(t, s, a)
	require.Equal(t, "snap 10/1", data)
}

func TestSnapshotCrashAfterRetention(t *testing.T) {
	// Once retention has trimmed the list, it has spare capacity: a Close
	// on the original must not shift entries under the copy.
	s := NewSnapshotStoreRetain(2)
	create(t, s, 1, 1)
	b := create(t, s, 2, 1)
	c3 := create(t, s, 3, 1)
	c := s.Crash()
	create(t, s, 4, 1)
	create(t, s, 5, 1)
	require.Equal(t, []string{c3, b}, listIDs(t, c))

	// Nor the other way round.
	s = c.Crash()
	create(t, c, 6, 1)
	require.Equal(t, []string{c3, b}, listIDs(t, s))
}

// TestSnapshotCancelWhileWriting cancels a snapshot from another goroutine
// than the one writing it, as a shutdown would: under -race this checks that
// the sink's state is guarded, and the writer must see its next Write fail.
func TestSnapshotCancelWhileWriting(t *testing.T) {
	s := NewSnapshotStore()
	sink, err := s.Create(1, 1, testConfig(), 1)
	require.NoError(t, err)
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := sink.Write([]byte("first"))
		assert.NoError(t, err)
		close(started)
		for {
			if _, err := sink.Write([]byte("more")); err != nil {
				assert.ErrorContains(t, err, "sink already cancelled")
				return
			}
		}
	})
	<-started
	require.NoError(t, sink.Cancel())
	wg.Wait()
	require.Empty(t, listIDs(t, s))
}

func TestSnapshotConcurrent(t *testing.T) {
	s := NewSnapshotStoreRetain(3)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				index := uint64(w*1000 + i + 1)
				sink, err := s.Create(index, 1, testConfig(), 1)
				if !assert.NoError(t, err) {
					return
				}
				_, err = sink.Write([]byte(fmt.Sprintf("snap %d/1", index)))
				assert.NoError(t, err)
				if i%5 == 4 {
					assert.NoError(t, sink.Cancel())
				} else {
					assert.NoError(t, sink.Close())
				}
				metas, err := s.List()
				assert.NoError(t, err)
				for _, m := range metas {
					// A snapshot listed may be dropped before Open.
					if _, rc, err := s.Open(m.ID); err == nil {
						b, err := io.ReadAll(rc)
						assert.NoError(t, err)
						assert.Equal(t, fmt.Sprintf("snap %d/1", m.Index), string(b))
					}
				}
				_ = s.Crash()
			}
		})
	}
	wg.Wait()
	metas, err := s.List()
	require.NoError(t, err)
	require.Len(t, metas, 3)
	// The newest three closed: writer 3's i = 48, 47, 46 (49 was cancelled).
	for k, want := range []uint64{3049, 3048, 3047} {
		require.Equal(t, want, metas[k].Index)
	}
}
