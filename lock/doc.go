// Package lock provides [Lock], a mutual-exclusion lock shared by the
// processes of a program: what Python's multiprocessing.Lock is to Python,
// with Go's sync.Locker methods plus [Lock.LockContext] and
// [Lock.TryLock].
//
//	l, err := lock.New()          // parent
//	err = l.Share(cmd, "log")     // before cmd.Start
//
//	l, err := lock.Inherit("log") // child
//	l.Lock()
//	defer l.Unlock()
//
// # How it works
//
// A Lock is flock(2) on a pipe. flock locks an open file description, and
// children that inherit a descriptor share its description, so each
// process reopens the pipe through /proc/self/fd/N (close-on-exec) and
// gets its own: flock(LOCK_EX|LOCK_NB) on it is Lock, flock(LOCK_UN) is
// Unlock. Nothing else is involved: no shared memory, no semaphore files,
// nothing to clean up when the processes exit. The implementation is
// internal/plock, shared with the other primitives of mproc.
//
// Nobody waits inside flock (its wait cannot be interrupted by a ctx or by
// Close). A waiting process tries again each time the pipe is written to:
// every Unlock writes one byte into it, and a write into the pipe wakes the
// runtime poller of every process that has the Lock open. Inside one
// process, goroutines first queue for a one-place channel (the turn), so only one of
// them at a time competes with the other processes. No order is promised:
// a process or goroutine may take the Lock again right after releasing it,
// and under constant contention a waiter may wait for a long time. The same
// holds for Python's lock and for sync.Mutex in its normal mode.
//
// # Ownership and misuse
//
// A Lock is held by a process, not by a goroutine: as with sync.Mutex,
// any goroutine of the process that locked it may unlock it. Unlike
// Python's multiprocessing.Lock, another process may not: the kernel
// knows which open file description holds the flock. Unlock of a Lock
// this process does not hold (never locked, unlocked twice, or held by
// another process) is caught in the calling process: [Lock.Unlock] panics
// with [ErrNotHeld], like sync.Mutex, and [Lock.Release] returns it. The
// Lock is left as it was; a Lock held by another process stays held.
//
// # Crashes
//
// When the process holding the Lock dies, SIGKILL included, the kernel
// closes its open file description and with it drops the flock: the Lock
// is free at once. A dead holder writes no wake byte, so a process already
// waiting notices within 100 ms (waiters look again that often); a
// TryLock or a new Lock gets it at once. What the dead holder was doing
// under the Lock is not undone: a file it was writing is left half
// written. Python's lock, a semaphore in shared memory, stays locked for
// ever in that case. A process that dies while waiting, or while not
// holding the Lock, costs nothing.
//
// # Close
//
// [Lock.Close] closes this process's descriptors and wakes every
// goroutine of this process blocked in Lock or LockContext with
// [ErrClosed]; other processes go on. Close does not unlock: if this
// process holds the Lock, the Unlock that ends the critical section
// unlocks it for the other processes and closes the last descriptors.
//
// # Cost
//
// An uncontended Lock+Unlock is three system calls: flock(LOCK_EX|LOCK_NB),
// flock(LOCK_UN) and the one-byte write that wakes waiters; about 1 µs on
// the 2-vCPU machine it was measured on (the token pipe this package used
// before, a read and a write, cost the same within noise and lost the lock
// with a dead holder), 10 to 25 times slower than Python's
// multiprocessing.Lock (a semaphore in shared memory, whose fast path makes
// no system call) and a hundred times sync.Mutex. See the Benchmark
// functions and `go run ./bench lock`, which measures both languages in one
// run. Use a Lock around work that takes longer than that, such as writing
// a file or a log line, not around an increment in memory (for that, see
// package value).
//
// The pipe's read end is in the Go runtime poller of every process that
// has the Lock open, so an Unlock can wake an idle poller thread in each of
// them, even where no goroutine waits for the Lock. A Lock taken hundreds
// of thousands of times a second costs some CPU in every process that has
// it open; Close it in processes that no longer need it.
//
// Linux only (flock on a pipe, /proc/self/fd).
package lock
