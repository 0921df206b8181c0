// Package plock is the process lock that lock, value, semaphore, event and
// barrier are built on: flock(2) for mutual exclusion between processes,
// released by the kernel when the holder dies, and a wake pipe to tell
// waiting processes that something changed.
//
// # The lock
//
// The processes share a target file (the read end of a pipe, or a memfd).
// flock(2) locks an open file description, not a descriptor: children that
// inherit one descriptor share its description, so they would share one
// lock. So each process reopens the target through /proc/self/fd/N and
// gets a description of its own, close-on-exec. flock(LOCK_EX|LOCK_NB) on
// it is the lock; flock(LOCK_UN), or the death of the process (SIGKILL
// included, since the kernel closes the description), releases it. Goroutines
// of one process share the description, so they must exclude each other
// inside the process (the callers do, with a channel).
//
// # Waiting
//
// flock's own wait cannot be interrupted by a ctx or by Close (Go restarts
// it after a signal), so nobody waits in flock. A waiter tries LOCK_NB
// instead, and waits for the wake pipe: whoever releases the lock or
// changes shared state writes one byte into it ([Mutex.Wake]). The wake
// pipe is in the runtime poller of every process, and a write into a polled
// pipe wakes every poller that watches it, so every waiting process sees
// every wake. Nobody reads the bytes, except a waker that finds the pipe
// full, which empties it first: a wake is the edge of a write, not a byte
// to consume, so one process's waiter never steals another's wake.
//
// A holder that dies writes nothing. So every waiter also rechecks every
// [Recheck]: a lock whose holder died is taken within that delay.
//
// In each process one goroutine per Mutex (started when the first waiter
// comes, ended when the last leaves) waits on the pipe and wakes the
// waiting goroutines of the process through a channel.
package plock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// Recheck is how often a waiter looks again without being woken: the
// longest a waiter waits after a holder's death, or after a process died
// between changing shared state and writing the wake byte.
const Recheck = 100 * time.Millisecond

// ErrClosed is returned by calls on a closed Mutex.
var ErrClosed = errors.New("closed")

// Mutex is one process's handle on a process lock and its wake pipe. Its
// methods are safe for concurrent use, but TryLock and Unlock act for the
// whole process: the caller keeps more than one goroutine from holding it.
type Mutex struct {
	wr, ww *os.File // the wake pipe, shared
	wrc    syscall.RawConn
	wwc    syscall.RawConn
	own    int // this process's own open file description of the target

	mu       sync.Mutex
	closed   bool
	waiters  int            // goroutines between Subscribe and Unsubscribe
	tick     chan struct{}  // closed at the next wake or recheck
	watching bool           // the watcher goroutine runs
	watchers sync.WaitGroup // the watcher goroutines, joined by Close
	done     chan struct{}  // closed by Close

}

// New returns a Mutex over target (whose flock is the lock) and the two
// ends of the wake pipe (which may be the target itself). It does not take
// ownership of the files: the caller closes them after Close.
func New(target, wr, ww *os.File) (*Mutex, error) {
	own, err := Reopen(target)
	if err != nil {
		return nil, err
	}
	m := &Mutex{wr: wr, ww: ww, own: own, tick: make(chan struct{}), done: make(chan struct{})}
	if m.wrc, err = wr.SyscallConn(); err != nil {
		unix.Close(own)
		return nil, err
	}
	if m.wwc, err = ww.SyscallConn(); err != nil {
		unix.Close(own)
		return nil, err
	}
	return m, nil
}

// Reopen opens f again through /proc/self/fd, close-on-exec, to get an
// open file description of this process's own: read-only for a pipe,
// read-write for anything else.
func Reopen(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	own := -1
	var oerr error
	if err := rc.Control(func(d uintptr) {
		var st unix.Stat_t
		if oerr = unix.Fstat(int(d), &st); oerr != nil {
			oerr = os.NewSyscallError("fstat", oerr)
			return
		}
		mode := unix.O_RDWR
		if st.Mode&unix.S_IFMT == unix.S_IFIFO {
			mode = unix.O_RDONLY
		}
		path := fmt.Sprintf("/proc/self/fd/%d", d)
		own, oerr = unix.Open(path, mode|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if oerr != nil {
			oerr = fmt.Errorf("reopen %s (is /proc mounted?): %w", path, os.NewSyscallError("open", oerr))
		}
	}); err != nil {
		return -1, err
	}
	return own, oerr
}

// Own returns this process's own descriptor of the target (for pread,
// pwrite and record locks). It is valid until Close.
func (m *Mutex) Own() int { return m.own }

// TryLock takes the lock if it is free and reports whether it did: one
// flock(2). It never waits.
func (m *Mutex) TryLock() (bool, error) {
	for {
		err := unix.Flock(m.own, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EWOULDBLOCK:
			return false, nil
		case unix.EINTR:
			continue
		case unix.EBADF:
			return false, ErrClosed
		}
		return false, (os.NewSyscallError("flock", err))
	}
}

// Lock takes the lock, waiting until it is free, ctx ends or Close.
func (m *Mutex) Lock(ctx context.Context) error {
	if ok, err := m.TryLock(); ok || err != nil {
		return err
	}
	return m.Wait(ctx, m.TryLock)
}

// Unlock releases the lock (flock(LOCK_UN)) and wakes the waiters.
func (m *Mutex) Unlock() error {
	var err error
	for {
		if err = unix.Flock(m.own, unix.LOCK_UN); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return (os.NewSyscallError("flock", err))
	}
	return m.Wake()
}

// Wake writes one byte into the wake pipe, so that every process waiting
// on it looks again. It never waits: a full pipe is emptied first.
func (m *Mutex) Wake() error {
	var werr error
	if err := m.wwc.Write(func(d uintptr) bool { werr = m.wake(d); return true }); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("wake: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("wake: %w", werr)
	}
	return nil
}

var wakeByte = [1]byte{'w'}

func (m *Mutex) wake(d uintptr) error {
	for range 3 {
		_, err := unix.Write(int(d), wakeByte[:])
		switch err {
		case nil, unix.EPIPE: // EPIPE: no process has the read end open: nobody to wake
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			m.drain()
			continue
		}
		return os.NewSyscallError("write", err)
	}
	return nil
}

// drain empties the wake pipe: nobody reads it, so it fills up after
// 64 KiB of wakes nobody waited for.
func (m *Mutex) drain() {
	var buf [4096]byte
	m.wrc.Control(func(d uintptr) {
		for {
			n, err := unix.Read(int(d), buf[:])
			if n <= 0 || err != nil {
				return
			}
		}
	})
}

// Wait waits until check reports true, calling it at once, after every
// wake and every Recheck. It returns check's error, ctx.Err() when ctx
// ends first, or ErrClosed on Close.
func (m *Mutex) Wait(ctx context.Context, check func() (bool, error)) error {
	tick, err := m.subscribe()
	if err != nil {
		return err
	}
	defer m.unsubscribe()
	for {
		ok, err := check()
		if ok || err != nil {
			return err
		}
		select {
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		}
		tick = m.next()
	}
}

func (m *Mutex) subscribe() (chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	m.waiters++
	if !m.watching {
		m.watching = true
		m.watchers.Add(1)
		go m.watch()
	}
	return m.tick, nil
}

func (m *Mutex) next() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tick
}

func (m *Mutex) unsubscribe() {
	m.mu.Lock()
	m.waiters--
	m.mu.Unlock()
}

// watch waits on the wake pipe while this process has waiters, and closes
// the tick channel at every wake and every Recheck. It also closes it each
// time it starts waiting (the first call of Read's function comes after
// the poller was armed): a wake that came before then, which the poller
// may have dropped, is covered by the waiters looking again.
func (m *Mutex) watch() {
	defer m.watchers.Done()
	for {
		m.mu.Lock()
		if m.closed {
			m.watching = false
			m.mu.Unlock()
			return
		}
		m.wr.SetReadDeadline(time.Now().Add(Recheck))
		m.mu.Unlock()
		stop := false
		err := m.wrc.Read(func(uintptr) bool {
			if !m.broadcast() {
				stop = true
				return true
			}
			return false // wait for the next wake
		})
		if stop {
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			m.stop()
			return
		}
	}
}

// broadcast wakes the waiting goroutines and reports whether any are left
// to watch for; when none, the watcher stops.
func (m *Mutex) broadcast() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.tick)
	m.tick = make(chan struct{})
	if m.waiters == 0 || m.closed {
		m.watching = false
		return false
	}
	return true
}

func (m *Mutex) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.tick)
	m.tick = make(chan struct{})
	m.watching = false
}

// Stop wakes every waiter of this process with ErrClosed and waits for the
// watcher goroutine; later waits fail with ErrClosed. It leaves the lock
// as it is: a goroutine holding it may still unlock it. Idempotent.
func (m *Mutex) Stop() {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
	m.mu.Unlock()
	m.wr.SetReadDeadline(time.Unix(1, 0))
	m.watchers.Wait()
}

// Close stops m (see Stop) and closes this process's own description of
// the target, which releases the lock if this process holds it. It does
// not close the files given to New. Call it once, when no goroutine uses
// m any more.
func (m *Mutex) Close() error {
	m.Stop()
	if m.own < 0 {
		return nil
	}
	err := unix.Close(m.own)
	m.own = -1
	return err
}

// NewPipe returns the two ends of a new wake pipe, both nonblocking and
// close-on-exec.
func NewPipe(name string) (r, w *os.File, err error) { return fd.Pipe(name) }
