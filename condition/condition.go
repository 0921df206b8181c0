// Package condition provides [Condition], a condition variable shared by
// the processes of a program: Python's multiprocessing.Condition.
//
//	c, err := condition.New(nil)        // parent; nil makes a new lock.Lock
//	err = c.Share(cmd, "ready")         // before cmd.Start: shares c.L too
//
//	c, err := condition.Inherit("ready") // child
//	c.L.Lock()
//	err = c.WaitFor(ctx, func() bool { return ready() })
//	c.L.Unlock()
//
// As with sync.Cond and Python's Condition, the state the predicate looks
// at must be shared too (a value.Value, a file), and changed while holding
// [Condition.L]; Wait releases L while it waits and holds it again when it
// returns.
//
// # How it works
//
// L is a [lock.Lock]. The waiters' queue lives in a crash-safe record
// (internal/record, as package value's): Wait takes a ticket and enters it
// in the queue, with the live id of its process, before it releases L, so
// a Notify made under L after that sees it; Notify(n) takes the n oldest
// tickets out of the queue, which wakes (through the record's pipe, every
// process's poller) the waiters whose ticket is gone; they take L again
// and return. Each process that waits holds, while it has the Condition
// open, a record lock (F_OFD_SETLK) on one byte of the condition's memfd,
// which the kernel drops when the process dies.
//
// # Crashes
//
// A process killed while it waits leaves its tickets in the queue, but
// Notify skips and drops the tickets of dead processes, so a Notify(1) is
// never spent on a dead waiter. A process killed while it holds L frees it
// (see package lock). A process killed in the middle of a Notify leaves the
// queue as it was before or after.
//
// # Cost
//
// Wait is two updates of the record (about six system calls each) plus
// L's release and acquisition; Notify and NotifyAll one update, and a
// wake of every waiting process, each of which looks whether its ticket is
// gone. Linux only.
package condition

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"

	"github.com/mproc-go/mproc/internal/record"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/lock"
)

// Kind is the kind recorded for a Condition in the environment variable
// that lists inherited descriptors: the memfd of its record and the two
// ends of its wake pipe. Its lock is shared beside it, under the
// condition's name followed by ".L".
const Kind = "condition"

// lockSuffix follows the condition's name in the name its lock is shared
// under.
const lockSuffix = ".L"

// Errors of this package. Test with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Condition, and by a Wait
	// that Close interrupted.
	ErrClosed = errors.New("condition: closed")
	// ErrNotHeld is returned by Wait when this process does not hold L.
	ErrNotHeld = errors.New("condition: Wait without holding the lock")
	// ErrCorrupt means the shared record does not hold a condition.
	ErrCorrupt = errors.New("condition: corrupt record")

	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Condition (or a value holding one) was given to
	// Send, Put, Map, Apply or Go, or met in a message being decoded; share
	// it through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

type notSendable = share.Inheritable[typeName]

// typeName names condition.Condition in the errors of notSendable.
type typeName struct{}

func (typeName) String() string { return "condition.Condition" }

// Condition is a condition variable shared by processes. It is safe for
// use by several goroutines and processes.
type Condition struct {
	// notSendable makes msgpack refuse a Condition in a message: see ErrNotSendable.
	notSendable

	// L is held while the condition's state is looked at or changed, and
	// around Wait and Notify.
	L *lock.Lock

	rec *record.Record

	mu sync.Mutex
	id *uint32 // this process's live id, once it has waited
}

// ticket is a waiter in the queue.
type ticket struct {
	n  uint64 // the ticket's number
	id uint32 // the live id of the waiter's process
}

// state is the record:
//
//	next uint64 | count uint32 | count x (ticket uint64, id uint32), big-endian
type state struct {
	next    uint64
	waiters []ticket
}

func (s state) encode() []byte {
	b := make([]byte, 12+12*len(s.waiters))
	binary.BigEndian.PutUint64(b[0:], s.next)
	binary.BigEndian.PutUint32(b[8:], uint32(len(s.waiters)))
	for i, w := range s.waiters {
		binary.BigEndian.PutUint64(b[12+12*i:], w.n)
		binary.BigEndian.PutUint32(b[20+12*i:], w.id)
	}
	return b
}

func decode(b []byte) (state, error) {
	if len(b) < 12 {
		return state{}, ErrCorrupt
	}
	s := state{next: binary.BigEndian.Uint64(b[0:])}
	n := binary.BigEndian.Uint32(b[8:])
	if uint64(len(b)) != 12+12*uint64(n) {
		return state{}, ErrCorrupt
	}
	s.waiters = make([]ticket, n)
	for i := range s.waiters {
		s.waiters[i] = ticket{binary.BigEndian.Uint64(b[12+12*i:]), binary.BigEndian.Uint32(b[20+12*i:])}
	}
	return s, nil
}

// New returns a Condition over l, or over a new lock.Lock when l is nil
// (Python's Condition(lock=None)).
func New(l *lock.Lock) (*Condition, error) {
	if l == nil {
		var err error
		if l, err = lock.New(); err != nil {
			return nil, fmt.Errorf("condition: %w", err)
		}
	}
	rec, err := record.New("condition", []byte(Kind), state{}.encode())
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	return &Condition{L: l, rec: rec}, nil
}

func (c *Condition) err(err error) error {
	return record.Public(err, ErrClosed, "condition: ")
}

func (c *Condition) update(ctx context.Context, fn func(st *state) (bool, error)) error {
	return c.err(c.rec.Update(ctx, func(old []byte) ([]byte, error) {
		st, err := decode(old)
		if err != nil {
			return nil, err
		}
		changed, err := fn(&st)
		if err != nil || !changed {
			return nil, err
		}
		return st.encode(), nil
	}))
}

// register gives this process a live id if it has none, and returns it.
// The caller holds the record's lock.
func (c *Condition) register(st *state) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != nil {
		return *c.id, nil
	}
	for id := uint32(0); ; id++ {
		if slices.ContainsFunc(st.waiters, func(w ticket) bool { return w.id == id }) {
			continue
		}
		ok, err := c.rec.Hold(id)
		if err != nil {
			return 0, err
		}
		if ok {
			c.id = &id
			return id, nil
		}
	}
}

// Wait releases L, waits until a Notify or NotifyAll of any process wakes
// it, and takes L again before it returns, in every case. The caller must
// hold L (ErrNotHeld otherwise, and nothing changes). When ctx ends first
// it returns ctx.Err(), or nil if it was notified meanwhile; when c is
// closed, ErrClosed. As in Python and Go, a Wait may also end when the
// predicate the caller waits for is still false: call it in a loop, or use
// WaitFor.
func (c *Condition) Wait(ctx context.Context) error {
	var t uint64
	err := c.update(context.Background(), func(st *state) (bool, error) {
		id, err := c.register(st)
		if err != nil {
			return false, err
		}
		t = st.next
		st.next++
		st.waiters = append(st.waiters, ticket{t, id})
		return true, nil
	})
	if err != nil {
		return err
	}
	if err := c.L.Release(); err != nil {
		c.remove(t)
		if errors.Is(err, lock.ErrNotHeld) {
			return ErrNotHeld
		}
		return fmt.Errorf("condition: %w", err)
	}
	werr := c.rec.Wait(ctx, func(data []byte) (bool, error) {
		st, err := decode(data)
		if err != nil {
			return false, err
		}
		return !slices.ContainsFunc(st.waiters, func(w ticket) bool { return w.n == t }), nil
	})
	if werr != nil && !errors.Is(werr, record.ErrClosed) && !c.remove(t) {
		werr = nil // notified after all
	}
	// Python's wait takes the lock again whatever happened.
	if err := c.L.LockContext(context.Background()); err != nil {
		return fmt.Errorf("condition: take the lock again: %w", err)
	}
	return c.err(werr)
}

// remove takes ticket t out of the queue and reports whether it was still
// there (not notified).
func (c *Condition) remove(t uint64) bool {
	found := false
	c.update(context.Background(), func(st *state) (bool, error) {
		i := slices.IndexFunc(st.waiters, func(w ticket) bool { return w.n == t })
		if i < 0 {
			return false, nil
		}
		found = true
		st.waiters = slices.Delete(st.waiters, i, i+1)
		return true, nil
	})
	return found
}

// WaitFor waits, as Wait does, until pred reports true, calling pred with L
// held; it returns at once when pred is already true. It returns the error
// of Wait; L is held when it returns, in every case.
func (c *Condition) WaitFor(ctx context.Context, pred func() bool) error {
	for !pred() {
		if err := c.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Notify wakes up to n waiters of any processes, the longest waiting
// first; dead processes' waiters are skipped and dropped. Call it with L
// held, as in Python (this is not checked).
func (c *Condition) Notify(n int) error {
	if n <= 0 {
		return nil
	}
	return c.update(context.Background(), func(st *state) (bool, error) {
		c.mu.Lock()
		mine := c.id
		c.mu.Unlock()
		woken := 0
		changed := false
		kept := st.waiters[:0]
		for _, w := range st.waiters {
			if woken == n {
				kept = append(kept, w)
				continue
			}
			if mine == nil || w.id != *mine {
				alive, err := c.rec.Alive(w.id)
				if err != nil {
					return false, err
				}
				if !alive {
					changed = true
					continue // a dead process's waiter
				}
			}
			woken++
			changed = true
		}
		st.waiters = kept
		return changed, nil
	})
}

// NotifyAll wakes every waiter of every process. Call it with L held.
func (c *Condition) NotifyAll() error {
	return c.update(context.Background(), func(st *state) (bool, error) {
		if len(st.waiters) == 0 {
			return false, nil
		}
		st.waiters = st.waiters[:0]
		return true, nil
	})
}

// Share arranges for the child that cmd will start to inherit c under
// name, and c.L under name followed by ".L" (which lock.Inherit may also
// ask for). The child calls Inherit(name). Share may be called by several
// goroutines, for any number of commands; it fails with ErrClosed once c
// is closed.
func (c *Condition) Share(cmd *exec.Cmd, name string) error {
	select {
	case <-c.rec.Done():
		return ErrClosed
	default:
	}
	if err := share.Add(cmd, name, Kind, c.rec.Files()...); err != nil {
		return err
	}
	if err := c.L.Share(cmd, name+lockSuffix); err != nil {
		return fmt.Errorf("condition: share the lock: %w", err)
	}
	return nil
}

// Inherit returns the Condition a parent shared with this process under
// name, with its lock. Calling it again with the same name returns the
// same *Condition. The error wraps ErrNotInherited, ErrWrongKind or
// ErrBadFD. Inherit is safe for use by several goroutines.
func Inherit(name string) (*Condition, error) {
	if _, ok := share.Lookup(name); !ok {
		return share.InheritAs(name, Kind, func([]*os.File) (*Condition, error) { return nil, ErrNotInherited })
	}
	// The lock first: share.Inherit's open function may not inherit.
	l, err := lock.Inherit(name + lockSuffix)
	if err != nil {
		return nil, fmt.Errorf("condition: its lock: %w", err)
	}
	return share.InheritAs(name, Kind, func(files []*os.File) (*Condition, error) {
		rec, err := record.Inherit(files, Kind, "a condition")
		if err != nil {
			return nil, err
		}
		return &Condition{L: l, rec: rec}, nil
	})
}

// Close releases this process's descriptors of the condition and wakes
// every goroutine of this process blocked in Wait, which take L again and
// return ErrClosed. It does not close L. Close is idempotent and safe to
// call concurrently with the other methods.
func (c *Condition) Close() error { return c.err(c.rec.Close()) }
