// Package debuglog resolves the *slog.Logger of the machinery (process.Cmd,
// pool.Config): the caller's own, or, when it gave none and the environment
// variable MPROC_DEBUG is set to a true value ("1", "true", ...), a text
// logger to stderr at level Debug (Python's log_to_stderr); otherwise a
// logger that discards everything.
package debuglog

import (
	"log/slog"
	"os"
	"strconv"
	"sync"
)

// EnvVar turns on the stderr logger of every logger-less Cmd, Pool and
// Executor of the process.
const EnvVar = "MPROC_DEBUG"

var (
	discard = slog.New(slog.DiscardHandler)
	fromEnv = sync.OnceValue(func() *slog.Logger {
		if on, err := strconv.ParseBool(os.Getenv(EnvVar)); err != nil || !on {
			return nil
		}
		return New()
	})
)

// New returns the logger MPROC_DEBUG turns on: text to stderr, level Debug.
func New() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Resolve returns l if it is not nil, else the MPROC_DEBUG logger if the
// variable is on (read once per process), else a logger that discards
// everything. It never returns nil.
func Resolve(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	if l := fromEnv(); l != nil {
		return l
	}
	return discard
}
