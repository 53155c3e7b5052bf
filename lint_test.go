package raft

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// coreFiles are the deterministic core: given the same inputs and seed they
// must produce the same outputs, so a seed can replay a run.
var coreFiles = []string{
	"core.go", "election.go", "replication.go", "read.go",
	"progress.go", "quorum.go", "log.go", "membership.go",
	"transfer.go", "bugs.go",
	"snapshot.go", "bugs_snapshot.go", "logcache.go",
	"stall.go", "core_counts.go",
	"session.go", // applied by the applier, not the core, but every server must agree
}

// forbiddenInCore are packages that bring time, I/O, concurrency or
// global randomness.
var forbiddenInCore = map[string]bool{
	"time": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true,
	"os": true, "net": true, "io": true, "sync": true, "sync/atomic": true,
	"log": true, "log/slog": true, "context": true, "runtime": true,
}

func TestCoreIsDeterministic(t *testing.T) {
	fset := token.NewFileSet()
	for _, name := range coreFiles {
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			require.False(t, forbiddenInCore[path], "%s imports %s", name, path)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement at %v", name, fset.Position(n.Pos()))
			case *ast.SelectStmt:
				t.Errorf("%s: select at %v", name, fset.Position(n.Pos()))
			case *ast.ChanType:
				t.Errorf("%s: channel type at %v", name, fset.Position(n.Pos()))
			case *ast.RangeStmt:
				// Map iteration order is random: outputs must not depend
				// on it. Ranging over maps is allowed only where the
				// result is order-independent; those sites are listed.
				if isMapRange(n) && !orderFreeRanges[fset.Position(n.Pos()).Filename+":"+funcAt(f, n.Pos())] {
					t.Errorf("%s: range over a map in %s at %v", name, funcAt(f, n.Pos()), fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
}

// orderFreeRanges are map ranges whose effect does not depend on order.
var orderFreeRanges = map[string]bool{
	"election.go:tickLeader":   true, // clears a flag on every progress
	"election.go:quorumActive": true, // builds a set
	"session.go:sweep":         true, // deletes every expired session
	"session.go:dropFrom":      true, // deletes every session at or above an index
	"session.go:liveIDs":       true, // collects IDs, then sorts them
}

// isMapRange reports whether a range statement ranges over a field or
// variable we know is a map: the progress and vote maps, and the session
// table.
func isMapRange(n *ast.RangeStmt) bool {
	sel, ok := n.X.(*ast.SelectorExpr)
	return ok && (sel.Sel.Name == "prs" || sel.Sel.Name == "votes" || sel.Sel.Name == "acks" || sel.Sel.Name == "sessions")
}

func funcAt(f *ast.File, pos token.Pos) string {
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Pos() <= pos && pos < fd.End() {
			return fd.Name.Name
		}
	}
	return ""
}

// TestHandlersNegativeSpace checks the dispatch table's gaps: combinations
// of role and message that must have no handler have none.
func TestHandlersNegativeSpace(t *testing.T) {
	mustNot := map[role][]MessageType{
		roleFollower:     {MsgAppendResp, MsgHeartbeatResp, MsgVoteResp, MsgPreVoteResp},
		rolePreCandidate: {MsgAppendResp, MsgHeartbeatResp, MsgVoteResp, MsgTimeoutNow},
		roleCandidate:    {MsgAppendResp, MsgHeartbeatResp, MsgPreVoteResp, MsgTimeoutNow},
		roleLeader:       {MsgAppend, MsgHeartbeat, MsgVoteResp, MsgPreVoteResp, MsgTimeoutNow},
	}
	for r, types := range mustNot {
		for _, mt := range types {
			require.Nil(t, handlers[r][mt], "%v must not handle %v", r, mt)
		}
	}
	// Votes are answered before dispatch, in every role.
	for r := role(0); r < numRoles; r++ {
		require.Nil(t, handlers[r][MsgVote])
		require.Nil(t, handlers[r][MsgPreVote])
	}
}
