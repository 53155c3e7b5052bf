package wal

import (
	"context"
	"log/slog"
	"sync"
)

// capture returns a logger appending each record's message and attributes
// to out.
func capture(out *[]string) *slog.Logger {
	return slog.New(&captureHandler{out: out, mu: &sync.Mutex{}})
}

type captureHandler struct {
	mu  *sync.Mutex
	out *[]string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	h.mu.Lock()
	*h.out = append(*h.out, s)
	h.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }
