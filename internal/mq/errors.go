package mq

import (
	"context"
	"errors"
	"strings"
)

// Errors are the sentinel errors of a public package built on the engine
// (queue, simplequeue, joinable). The engine's own errors carry no
// package name; each public package passes what the engine returns
// through [Errors.Public], so that its users see one prefix, the
// package's, and test its own sentinels with errors.Is.
type Errors struct {
	// Prefix is the package's name, which starts every message.
	Prefix string
	// The package's sentinels, standing for the engine's ErrClosed,
	// ErrFull, ErrEmpty, ErrTooLarge, ErrMaxsize, ErrCorrupt and
	// ErrDropped.
	Closed, Full, Empty, TooLarge, Maxsize, Corrupt, Dropped error
}

// NewErrors makes the sentinels of the package named pkg: "pkg: closed"
// and so on, with the engine's texts.
func NewErrors(pkg string) *Errors {
	s := func(e error) error { return errors.New(pkg + ": " + e.Error()) }
	return &Errors{
		Prefix:   pkg,
		Closed:   s(ErrClosed),
		Full:     s(ErrFull),
		Empty:    s(ErrEmpty),
		TooLarge: s(ErrTooLarge),
		Maxsize:  s(ErrMaxsize),
		Corrupt:  s(ErrCorrupt),
		Dropped:  s(ErrDropped),
	}
}

// Public returns err as the package's user sees it: an engine sentinel
// becomes the package's own, and any other error of the engine gets the
// package's prefix and matches, with errors.Is, both the package's
// sentinel it wraps (if any) and everything err wraps. nil and ctx.Err()
// values pass unchanged, as does an error whose message already has the
// prefix (one a hook of the package returned through the engine).
func (e *Errors) Public(err error) error {
	switch err {
	case nil, context.Canceled, context.DeadlineExceeded:
		return err
	case ErrClosed:
		return e.Closed
	case ErrFull:
		return e.Full
	case ErrEmpty:
		return e.Empty
	case ErrTooLarge:
		return e.TooLarge
	case ErrMaxsize:
		return e.Maxsize
	case ErrCorrupt:
		return e.Corrupt
	case ErrDropped:
		return e.Dropped
	}
	pe := &publicError{err: err}
	for _, p := range [...]struct{ engine, public error }{
		{ErrClosed, e.Closed}, {ErrFull, e.Full}, {ErrEmpty, e.Empty},
		{ErrTooLarge, e.TooLarge}, {ErrMaxsize, e.Maxsize}, {ErrCorrupt, e.Corrupt},
		{ErrDropped, e.Dropped},
	} {
		if errors.Is(err, p.engine) {
			pe.sentinel = p.public
			break
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, e.Prefix+": ") {
		msg = e.Prefix + ": " + msg
	}
	pe.msg = msg
	return pe
}

// publicError is an engine error as a public package reports it.
type publicError struct {
	msg      string
	sentinel error // the package's sentinel, or nil
	err      error // the engine's error
}

func (e *publicError) Error() string { return e.msg }

func (e *publicError) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.err}
	}
	return []error{e.sentinel, e.err}
}
