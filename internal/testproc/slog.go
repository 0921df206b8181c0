package testproc

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// LogRecord is one record a LogRecorder kept: its message and attributes
// (those given to Logger.With first), by key.
type LogRecord struct {
	Msg   string
	Level slog.Level
	Attrs map[string]any
}

// LogRecorder is a slog.Handler that keeps every record, for tests that
// check what the machinery logs. It is safe for use by several goroutines.
type LogRecorder struct {
	store *logStore
	attrs []slog.Attr
}

type logStore struct {
	mu   sync.Mutex
	recs []LogRecord
}

// NewLogRecorder returns a logger at level Debug whose records the returned
// recorder keeps.
func NewLogRecorder() (*slog.Logger, *LogRecorder) {
	r := &LogRecorder{store: &logStore{}}
	return slog.New(r), r
}

// Enabled implements slog.Handler: every level.
func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := LogRecord{Msg: rec.Message, Level: rec.Level, Attrs: map[string]any{}}
	for _, a := range r.attrs {
		lr.Attrs[a.Key] = a.Value.Any()
	}
	rec.Attrs(func(a slog.Attr) bool {
		lr.Attrs[a.Key] = a.Value.Resolve().Any()
		return true
	})
	r.store.mu.Lock()
	r.store.recs = append(r.store.recs, lr)
	r.store.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (r *LogRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogRecorder{store: r.store, attrs: append(slices.Clip(r.attrs), attrs...)}
}

// WithGroup implements slog.Handler; groups are flattened.
func (r *LogRecorder) WithGroup(string) slog.Handler { return r }

// Records returns the records with message msg so far, oldest first; an
// empty msg returns them all.
func (r *LogRecorder) Records(msg string) []LogRecord {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	var out []LogRecord
	for _, rec := range r.store.recs {
		if msg == "" || rec.Msg == msg {
			out = append(out, rec)
		}
	}
	return out
}
