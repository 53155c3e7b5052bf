package sim

import (
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

// KVInput is a key-value operation: a put of Value, or a get.
type KVInput struct {
	Put   bool
	Key   string
	Value string
}

// KVOutput is what a get returned, or what a put replaced; Found is false
// for a missing key.
type KVOutput struct {
	Value string
	Found bool
}

type kvState = KVOutput

// KVModel is a register per key; histories are partitioned by key, so each
// key is checked on its own.
var KVModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string]int{}
		var parts [][]porcupine.Operation
		for _, op := range history {
			k := op.Input.(KVInput).Key
			i, ok := byKey[k]
			if !ok {
				i = len(parts)
				byKey[k] = i
				parts = append(parts, nil)
			}
			parts[i] = append(parts[i], op)
		}
		return parts
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(kvState), input.(KVInput)
		if in.Put {
			// A put whose outcome is unknown has no output: any is fine.
			out, known := output.(KVOutput)
			return !known || out == st, kvState{Value: in.Value, Found: true}
		}
		return output.(KVOutput) == st, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(KVInput)
		out, known := output.(KVOutput)
		if in.Put {
			switch {
			case !known:
				return fmt.Sprintf("put(%s, %s) -> ?", in.Key, in.Value)
			case !out.Found:
				return fmt.Sprintf("put(%s, %s) -> none", in.Key, in.Value)
			}
			return fmt.Sprintf("put(%s, %s) -> %s", in.Key, in.Value, out.Value)
		}
		if !out.Found {
			return fmt.Sprintf("get(%s) -> none", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
	},
	DescribeState: func(state any) string {
		st := state.(kvState)
		if !st.Found {
			return "<none>"
		}
		return st.Value
	},
}

// History records the operations clients saw, in virtual time.
type History struct {
	ops []porcupine.Operation
}

// Call starts an operation and returns its handle.
func (h *History) Call(client int, in KVInput, at Time) int {
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: int64(at), Return: -1})
	return len(h.ops) - 1
}

// Return completes an operation with its output.
func (h *History) Return(op int, out KVOutput, at Time) {
	h.ops[op].Output = out
	h.ops[op].Return = int64(at)
}

// Forget removes an operation known never to have taken effect (a put whose
// command is in no server's committed log at the end of a run).
func (h *History) Forget(op int) { h.ops[op].Metadata = forgotten{} }

type forgotten struct{}

// Returned reports whether an operation has returned.
func (h *History) Returned(op int) bool { return h.ops[op].Return >= 0 }

// Len returns how many operations were recorded.
func (h *History) Len() int { return len(h.ops) }

// Check checks the history for linearizability. An operation never
// returned is a put whose outcome is unknown — it may take effect at any
// time after its call — or a get that constrains nothing and is left out.
// A check that times out fails. On failure porcupine's visualisation is
// written to dir and its path is in the error.
func (h *History) Check(timeout time.Duration, dir string) error {
	ops := make([]porcupine.Operation, 0, len(h.ops))
	for _, op := range h.ops {
		if _, ok := op.Metadata.(forgotten); ok {
			continue
		}
		if op.Return < 0 {
			if !op.Input.(KVInput).Put {
				continue
			}
			op.Return = math.MaxInt64
		}
		ops = append(ops, op)
	}
	res, info := porcupine.CheckOperationsVerbose(KVModel, ops, timeout)
	if res == porcupine.Ok {
		return nil
	}
	path := filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(KVModel, info, path); err != nil {
		path = "(visualisation failed: " + err.Error() + ")"
	}
	if res == porcupine.Unknown {
		return fmt.Errorf("linearizability check of %d operations timed out after %v; partial visualisation: %s", len(ops), timeout, path)
	}
	return fmt.Errorf("history of %d operations is not linearizable; visualisation: %s", len(ops), path)
}
