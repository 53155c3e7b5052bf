package frame

import (
	"fmt"
	"path/filepath"

	"github.com/keelraft/raft/storage/internal/vfs"
)

// RemoveDead deletes the segments ids of format f from dir, which
// recovery found dead, and syncs dir. It does nothing when ids is empty.
// Errors start with pkg, the calling package's name.
func (f *Format) RemoveDead(fsys vfs.FS, dir string, ids []uint64, pkg string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if err := fsys.Remove(filepath.Join(dir, f.SegmentName(id))); err != nil {
			return fmt.Errorf("%s: remove dead segment %d: %w", pkg, id, err)
		}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	return nil
}
