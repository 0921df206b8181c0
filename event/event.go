// Package event provides [Event], a flag shared by the processes of a
// program that they can wait for: Python's multiprocessing.Event.
//
//	e, err := event.New()            // parent
//	err = e.Share(cmd, "start")      // before cmd.Start
//
//	e, err := event.Inherit("start") // child
//	err = e.Wait(ctx)                // returns once some process Sets it
//
// # How it works
//
// The flag and a count of Sets live in a crash-safe record (internal/record,
// as package value's): IsSet reads it with two preads and no lock. Set and
// Clear change it under the record's flock and then write one byte into the
// event's pipe, which wakes the runtime poller of every process that has
// the Event open: every waiter of every process looks at the record again.
// A waiter returns when the flag is set or the count of Sets has moved
// since it began to wait, so a Set followed at once by a Clear still wakes
// every waiter, as in Python.
//
// # Crashes
//
// A process killed at any moment, in the middle of a Set or Clear too,
// leaves the flag set or not, never torn, and takes no lock with it. One
// killed between changing the flag and writing the wake byte delays the
// waiters by at most 100 ms (waiters look again that often).
//
// # Cost
//
// IsSet is two preads; Set and Clear about six system calls; a Set wakes
// every waiting process through the poller. Linux only.
package event

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/mproc-go/mproc/internal/record"
	"github.com/mproc-go/mproc/internal/share"
)

// Kind is the kind recorded for an Event in the environment variable that
// lists inherited descriptors: the memfd of its record and the two ends of
// its wake pipe.
const Kind = "event"

// Errors of this package. Test with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Event, and by a Wait
	// that Close interrupted.
	ErrClosed = errors.New("event: closed")
	// ErrCorrupt means the shared record does not hold an event.
	ErrCorrupt = errors.New("event: corrupt record")

	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Event (or a value holding one) was given to
	// Send, Put, Map, Apply or Go, or met in a message being decoded; share
	// it through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

type notSendable = share.Inheritable[typeName]

// typeName names event.Event in the errors of notSendable.
type typeName struct{}

func (typeName) String() string { return "event.Event" }

// Event is a flag shared by processes, initially clear. It is safe for use
// by several goroutines and processes.
type Event struct {
	// notSendable makes msgpack refuse a Event in a message: see ErrNotSendable.
	notSendable

	rec *record.Record
}

// state is the record: the flag and the number of Sets that found it
// clear.
//
//	set byte | sets uint64, big-endian
type state struct {
	set  bool
	sets uint64
}

func (s state) encode() []byte {
	b := make([]byte, 9)
	if s.set {
		b[0] = 1
	}
	binary.BigEndian.PutUint64(b[1:], s.sets)
	return b
}

func decode(b []byte) (state, error) {
	if len(b) != 9 || b[0] > 1 {
		return state{}, ErrCorrupt
	}
	return state{set: b[0] == 1, sets: binary.BigEndian.Uint64(b[1:])}, nil
}

// New returns a new Event, clear.
func New() (*Event, error) {
	rec, err := record.New("event", []byte(Kind), state{}.encode())
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return &Event{rec: rec}, nil
}

func (e *Event) err(err error) error {
	return record.Public(err, ErrClosed, "event: ")
}

func (e *Event) load() (state, error) {
	data, err := e.rec.Load(context.Background())
	if err != nil {
		return state{}, e.err(err)
	}
	return decode(data)
}

// IsSet reports whether the flag is set. It takes no lock. It reports
// false when e is closed.
func (e *Event) IsSet() bool {
	st, err := e.load()
	return err == nil && st.set
}

// Set sets the flag and wakes every goroutine of every process waiting in
// Wait. Setting a set Event changes nothing. It waits only, briefly, for
// another process's Set or Clear under way.
func (e *Event) Set() error {
	return e.err(e.rec.Update(context.Background(), func(old []byte) ([]byte, error) {
		st, err := decode(old)
		if err != nil || st.set {
			return nil, err
		}
		st.set = true
		st.sets++
		return st.encode(), nil
	}))
}

// Clear clears the flag: later Waits block until the next Set.
func (e *Event) Clear() error {
	return e.err(e.rec.Update(context.Background(), func(old []byte) ([]byte, error) {
		st, err := decode(old)
		if err != nil || !st.set {
			return nil, err
		}
		st.set = false
		return st.encode(), nil
	}))
}

// Wait returns nil at once if the flag is set, else once some process
// Sets it (even if another Clears it again right away), ctx.Err() when ctx
// ends first, or ErrClosed when e is closed.
func (e *Event) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := e.load()
	if err != nil || st.set {
		return err
	}
	since := st.sets
	return e.err(e.rec.Wait(ctx, func(data []byte) (bool, error) {
		st, err := decode(data)
		return err == nil && (st.set || st.sets != since), err
	}))
}

// Share arranges for the child that cmd will start to inherit e under
// name: it appends e's three descriptors to cmd.ExtraFiles and records
// them in cmd.Env. The child calls Inherit(name). Share may be called by
// several goroutines, for any number of commands; it fails with ErrClosed
// once e is closed.
func (e *Event) Share(cmd *exec.Cmd, name string) error {
	select {
	case <-e.rec.Done():
		return ErrClosed
	default:
	}
	return share.Add(cmd, name, Kind, e.rec.Files()...)
}

// Inherit returns the Event a parent shared with this process under name.
// Calling it again with the same name returns the same *Event. The error
// wraps ErrNotInherited, ErrWrongKind or ErrBadFD. Inherit is safe for use
// by several goroutines.
func Inherit(name string) (*Event, error) {
	return share.InheritAs(name, Kind, func(files []*os.File) (*Event, error) {
		rec, err := record.Inherit(files, Kind, "an event")
		if err != nil {
			return nil, err
		}
		return &Event{rec: rec}, nil
	})
}

// Close releases this process's descriptors of e and wakes every goroutine
// of this process blocked in Wait, which get ErrClosed. Other processes are
// not affected. Close is idempotent and safe to call concurrently with the
// other methods.
func (e *Event) Close() error { return e.err(e.rec.Close()) }
