package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
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
	// ErrExtraToken is returned by Release, and Unlock panics with it,
	// when this process found more than one token in the pipe as it took
	// the Lock: something other than this package wrote to the pipe. The
	// extra tokens were taken with the real one, so the Lock was not given
	// to two holders and goes back to one token; the error reports that
	// someone broke the protocol.
	ErrExtraToken = errors.New("lock: more than one token in the pipe: written by something that did not hold the lock")
)

// token is the byte that stands for the Lock being free.
var token = [1]byte{'L'}

// takeMax is how many bytes one read takes: the token and any extra ones
// (see ErrExtraToken), which collapse into one at every acquisition.
const takeMax = 64

type notSendable = share.Inheritable[lockName]

// lockName names lock.Lock in the errors of notSendable.
type lockName struct{}

func (lockName) String() string { return "lock.Lock" }

// Lock is a mutual-exclusion lock shared by processes: a pipe holding one
// token byte, taken to lock and written back to unlock. It implements
// sync.Locker.
//
// A Lock is safe for use by several goroutines and processes. It is held
// by a process, not a goroutine: any goroutine of the process that locked
// it may unlock it, as with sync.Mutex; another process may not (see
// Release). Goroutines of one process wait for each other inside the
// process, and only one of them at a time waits for the token; that one
// races with the waiters of other processes when the token comes back. No
// order is promised, within a process or between processes.
type Lock struct {
	// notSendable makes msgpack refuse a Lock in a message: see ErrNotSendable.
	notSendable

	r, w     *os.File // the two ends of the token pipe
	rrc, wrc syscall.RawConn

	// turn has room for one goroutine of this process: the one taking
	// the token or holding the Lock. The others wait to send on it.
	turn chan struct{}
	done chan struct{} // closed by Close

	mu     sync.Mutex
	state  state // guarded by mu
	closed bool  // guarded by mu
	extra  int   // extra tokens taken with the token; guarded by mu

	closeOnce  sync.Once
	closeErr   error
	closeWOnce sync.Once

	// The system calls of TryLock and give, built once so that locking
	// and unlocking do not allocate. tryN and tryBuf belong to the
	// goroutine with the turn; giveN and giveErr are guarded by mu.
	tryFn, giveFn func(fd uintptr) bool
	tryN, giveN   int
	tryBuf        [takeMax]byte
	giveErr       error
}

type state int

const (
	idle   state = iota // no goroutine of this process has the turn
	taking              // a goroutine has the turn and is taking the token
	held                // this process holds the token
)

// New returns a new, unlocked Lock. Hand it to a child with Share.
func New() (*Lock, error) {
	r, w, err := fd.Pipe("mproc-lock")
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if _, err := w.Write(token[:]); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("lock: put the token: %w", err)
	}
	l, err := newLock(r, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return l, nil
}

// newLock builds a Lock over the two ends of a token pipe, whose
// descriptors must be nonblocking so that the runtime polls them.
func newLock(r, w *os.File) (*Lock, error) {
	rrc, err := r.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	wrc, err := w.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	l := &Lock{
		r: r, w: w, rrc: rrc, wrc: wrc,
		turn: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	l.tryFn = func(d uintptr) bool {
		l.tryN, _ = unix.Read(int(d), l.tryBuf[:])
		return true // never wait
	}
	l.giveFn = func(d uintptr) bool {
		l.giveN, l.giveErr = unix.Write(int(d), token[:])
		return true // never wait: a full pipe is an error
	}
	return l, nil
}

// Lock locks l, waiting as long as it takes. It cannot report an error, so
// it panics when LockContext would return one: with an error wrapping
// ErrClosed if l is closed before or while it waits (returning would let
// the caller into the critical section without the lock). Use LockContext
// where Close may race with locking, or where the holder may die: a
// process killed while holding the Lock takes the token with it, and Lock
// then waits forever.
func (l *Lock) Lock() {
	if err := l.LockContext(context.Background()); err != nil {
		panic(err)
	}
}

// LockContext locks l, waiting until the token is free, ctx ends or l is
// closed. When ctx ends first it returns ctx.Err() and leaves the Lock as
// it was, even when the token is free at that moment; when Close
// interrupts it, ErrClosed.
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
	n, err := l.take(ctx)
	l.end(n)
	return err
}

// TryLock locks l if the token is free at once and reports whether it
// did; it never waits. It reports false when l is closed, and may report
// false while another goroutine of this process is about to take the
// token.
func (l *Lock) TryLock() bool {
	select {
	case l.turn <- struct{}{}:
	default:
		return false
	}
	if l.begin() != nil {
		return false
	}
	n := 0
	if err := l.rrc.Read(l.tryFn); err == nil && l.tryN > 0 {
		n = l.tryN
	}
	l.end(n)
	return n > 0
}

// Unlock unlocks l. Like sync.Mutex's, it may be called by any goroutine of
// the process that holds l, and it panics on misuse: with ErrNotHeld when
// this process does not hold l (a second Unlock, or a Lock held by another
// process), with an error wrapping ErrExtraToken when something outside
// this package wrote tokens into the pipe. See Release for an Unlock that
// returns the error.
func (l *Lock) Unlock() {
	if err := l.Release(); err != nil {
		panic(err)
	}
}

// Release is Unlock returning its error instead of panicking: ErrNotHeld
// when this process does not hold l, and changes nothing then; an error
// wrapping ErrExtraToken when this process took extra tokens with the
// Lock, after unlocking it with exactly one token. It never waits: a token
// that cannot be written at once is an error, not a block.
//
// Release works after Close when this process held l at the time: it
// hands the token back to the other processes and closes the last
// descriptor.
func (l *Lock) Release() error {
	l.mu.Lock()
	if l.state != held {
		l.mu.Unlock()
		return ErrNotHeld
	}
	err := l.give()
	if err == nil && l.extra > 0 {
		err = fmt.Errorf("%w (%d extra bytes, discarded)", ErrExtraToken, l.extra)
	}
	l.extra = 0
	l.state = idle
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.closeW()
	}
	<-l.turn
	return err
}

// Close releases this process's descriptors of l and wakes every goroutine
// of this process blocked in Lock or LockContext, which get ErrClosed.
// Later calls get ErrClosed (TryLock reports false). Other processes are
// not affected. Close is idempotent and safe to call concurrently with
// every other method; it returns the same result every time.
//
// Close does not unlock: if this process holds l, it stays held until
// Unlock (or Release), which then gives the token back to the other
// processes and closes the last descriptor. A holder that never unlocks
// leaves the others waiting, as if it had died.
func (l *Lock) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.done)
		st := l.state
		l.mu.Unlock()
		l.closeErr = l.r.Close() // wakes a goroutine reading the token
		if st == idle {
			l.closeW()
		}
	})
	return l.closeErr
}

// begin marks that the caller, which has the turn, is taking the token.
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

// end records the outcome of taking the token, n bytes taken (0: none),
// and gives up the turn when the token was not taken.
func (l *Lock) end(n int) {
	l.mu.Lock()
	if n > 0 {
		l.state = held
		l.extra = n - 1
		l.mu.Unlock()
		return
	}
	l.state = idle
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.closeW()
	}
	<-l.turn
}

// take reads the token, and any extra ones with it, waiting in the runtime
// poller until it arrives, ctx ends or Close closes the read end. It
// returns the number of bytes taken, 0 on error. Only the goroutine with
// the turn calls it, so the read deadline is its own.
func (l *Lock) take(ctx context.Context) (int, error) {
	var b [takeMax]byte
	var n int
	var err error
	if ctx.Done() == nil {
		n, err = l.r.Read(b[:])
	} else {
		stop := fd.WatchDeadline(ctx, l.r.SetReadDeadline)
		n, err = l.r.Read(b[:])
		if stop() && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, ctx.Err()
		}
	}
	switch {
	case n > 0:
		return n, nil
	case errors.Is(err, os.ErrClosed):
		return 0, ErrClosed
	case err == io.EOF:
		// Impossible while this process keeps the write end open, which
		// it does until the goroutine taking the token gives up the turn.
		return 0, errors.New("lock: token pipe has no writer left")
	}
	return 0, fmt.Errorf("lock: take the token: %w", err)
}

// give writes the token back. The caller holds mu and the token.
func (l *Lock) give() error {
	err := l.wrc.Write(l.giveFn)
	n, werr := l.giveN, l.giveErr
	switch {
	case err != nil:
		return fmt.Errorf("lock: give the token back: %w", err)
	case werr == unix.EPIPE:
		// No process has the read end any more (this one has closed its
		// own): nobody is left to take the token.
		return nil
	case werr == unix.EAGAIN:
		return fmt.Errorf("%w: the pipe is full, the token is lost", ErrExtraToken)
	case werr != nil:
		return fmt.Errorf("lock: give the token back: %w", os.NewSyscallError("write", werr))
	case n != 1:
		return errors.New("lock: give the token back: short write")
	}
	return nil
}

func (l *Lock) closeW() {
	l.closeWOnce.Do(func() { l.w.Close() })
}
