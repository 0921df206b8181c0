package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/plock"
	"github.com/mproc-go/mproc/internal/share"
)

// Errors of this package. Test with errors.Is.
var (
	// ErrClosed is returned by LockContext and Share after Close, and by
	// a LockContext that Close interrupted; Lock panics with it in the
	// same cases.
	ErrClosed = errors.New("lock: closed")
	// ErrNotHeld is returned by Release, and Unlock panics with it, when
	// this process does not hold the Lock: it was never locked, was
	// already unlocked, or is held by another process.
	ErrNotHeld = errors.New("lock: unlock of a lock this process does not hold")
)

type notSendable = share.Inheritable[lockName]

// lockName names lock.Lock in the errors of notSendable.
type lockName struct{}

func (lockName) String() string { return "lock.Lock" }

// Lock is a mutual-exclusion lock shared by processes, which the kernel
// releases when the holding process dies. It implements sync.Locker.
//
// A Lock is safe for use by several goroutines and processes. It is held
// by a process, not a goroutine: any goroutine of the process that locked
// it may unlock it, as with sync.Mutex; another process may not (see
// Release). Goroutines of one process wait for each other inside the
// process, and only one of them at a time competes with the other
// processes. No order is promised, within a process or between processes.
type Lock struct {
	// notSendable makes msgpack refuse a Lock in a message: see ErrNotSendable.
	notSendable

	r, w *os.File // the two ends of the lock's pipe
	pl   *plock.Mutex

	// turn has room for one goroutine of this process: the one taking
	// the lock or holding it. The others wait to send on it.
	turn chan struct{}
	done chan struct{} // closed by Close

	mu     sync.Mutex
	state  state // guarded by mu
	closed bool  // guarded by mu

	closeOnce sync.Once
	closeErr  error
	finOnce   sync.Once
	finErr    error
}

type state int

const (
	idle   state = iota // no goroutine of this process has the turn
	taking              // a goroutine has the turn and is taking the lock
	held                // this process holds the lock
)

// New returns a new, unlocked Lock. Hand it to a child with Share.
func New() (*Lock, error) {
	r, w, err := fd.Pipe("mproc-lock")
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	l, err := newLock(r, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return l, nil
}

// newLock builds a Lock over the two ends of its pipe, whose descriptors
// must be nonblocking so that the runtime polls them.
func newLock(r, w *os.File) (*Lock, error) {
	pl, err := plock.New(r, r, w)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return &Lock{
		r: r, w: w, pl: pl,
		turn: make(chan struct{}, 1),
		done: make(chan struct{}),
	}, nil
}

// Lock locks l, waiting as long as it takes. It cannot report an error, so
// it panics when LockContext would return one: with an error wrapping
// ErrClosed if l is closed before or while it waits (returning would let
// the caller into the critical section without the lock). Use LockContext
// where Close may race with locking.
func (l *Lock) Lock() {
	if err := l.LockContext(context.Background()); err != nil {
		panic(err)
	}
}

// LockContext locks l, waiting until it is free, ctx ends or l is closed.
// When ctx ends first it returns ctx.Err() and leaves the Lock as it was;
// when Close interrupts it, ErrClosed. A Lock whose holder died is free
// again for LockContext within 100 ms (waiters look again that often).
func (l *Lock) LockContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.turn <- struct{}{}: // no other goroutine of this process is in
	default:
		select {
		case l.turn <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return ErrClosed
		}
	}
	if err := l.begin(); err != nil {
		return err
	}
	err := l.pl.Lock(ctx)
	switch {
	case err == nil, err == ctx.Err():
	case errors.Is(err, plock.ErrClosed):
		err = ErrClosed
	default:
		err = fmt.Errorf("lock: %w", err)
	}
	l.end(err == nil)
	return err
}

// TryLock locks l if it is free at once and reports whether it did; it
// never waits. It reports false when l is closed, and may report false
// while another goroutine of this process is about to take the lock.
func (l *Lock) TryLock() bool {
	select {
	case l.turn <- struct{}{}:
	default:
		return false
	}
	if l.begin() != nil {
		return false
	}
	ok, _ := l.pl.TryLock()
	l.end(ok)
	return ok
}

// Unlock unlocks l. Like sync.Mutex's, it may be called by any goroutine of
// the process that holds l, and it panics on misuse: with ErrNotHeld when
// this process does not hold l (a second Unlock, or a Lock held by another
// process). See Release for an Unlock that returns the error.
func (l *Lock) Unlock() {
	if err := l.Release(); err != nil {
		panic(err)
	}
}

// Release is Unlock returning its error instead of panicking: ErrNotHeld
// when this process does not hold l, and changes nothing then. It never
// waits.
//
// Release works after Close when this process held l at the time: it
// unlocks l for the other processes and closes the last descriptors.
func (l *Lock) Release() error {
	l.mu.Lock()
	if l.state != held {
		l.mu.Unlock()
		return ErrNotHeld
	}
	err := l.pl.Unlock()
	l.state = idle
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.finish()
	}
	<-l.turn
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// Close releases this process's descriptors of l and wakes every goroutine
// of this process blocked in Lock or LockContext, which get ErrClosed.
// Later calls get ErrClosed (TryLock reports false). Other processes are
// not affected. Close is idempotent and safe to call concurrently with
// every other method; it returns the same result every time.
//
// Close does not unlock: if this process holds l, it stays held until
// Unlock (or Release), which then unlocks it for the other processes and
// closes the last descriptors. A holder that never unlocks keeps the
// others waiting until it exits.
func (l *Lock) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.done)
		st := l.state
		l.mu.Unlock()
		l.pl.Stop() // wakes a goroutine waiting for the lock
		if st == idle {
			l.closeErr = l.finish()
		}
	})
	return l.closeErr
}

// finish closes the descriptors, once no goroutine of this process has
// the turn.
func (l *Lock) finish() error {
	l.finOnce.Do(func() {
		l.finErr = errors.Join(l.pl.Close(), l.r.Close(), l.w.Close())
	})
	return l.finErr
}

// begin marks that the caller, which has the turn, is taking the lock.
func (l *Lock) begin() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		<-l.turn
		return ErrClosed
	}
	l.state = taking
	return nil
}

// end records whether the caller took the lock, and gives up the turn when
// it did not.
func (l *Lock) end(took bool) {
	l.mu.Lock()
	if took {
		l.state = held
		l.mu.Unlock()
		return
	}
	l.state = idle
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.finish()
	}
	<-l.turn
}
