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
// A Lock is a pipe holding one token byte. Locking reads the byte out
// (the pipe is nonblocking, so the wait happens in the Go runtime's
// poller and ctx or Close can interrupt it); unlocking writes it back,
// nonblocking too: a write that cannot complete at once is an error,
// never a wait. Every process holding the two ends of the pipe contends
// for the same byte. Nothing else is involved: no shared memory, no
// semaphore files, nothing to clean up when the processes exit.
//
// Inside one process, goroutines first queue for a one-place channel (the turn), so
// only one of them at a time waits on the pipe; when the token comes
// back, the waiting goroutines of every process race for it (each waiting
// process is woken, one wins, the others wait again). No order is
// promised: a process or goroutine may take the Lock again right after
// releasing it, and under constant contention a waiter may wait for a
// long time. The same holds for Python's lock and for sync.Mutex in its
// normal mode.
//
// # Ownership and misuse
//
// A Lock is held by a process, not by a goroutine: as with sync.Mutex,
// any goroutine of the process that locked it may unlock it. Unlike
// Python's multiprocessing.Lock, another process may not: a process can
// only give back a token it took. That is what lets misuse be caught
// without a race and without an extra system call:
//
//   - Unlock of a Lock this process does not hold (never locked, unlocked
//     twice, or held by another process) is caught in the calling
//     process before anything is written: [Lock.Unlock] panics with
//     [ErrNotHeld], like sync.Mutex, and [Lock.Release] returns it. The
//     Lock is left as it was; a Lock held by another process stays held.
//     So this package never puts a second token in the pipe.
//   - Extra tokens, written into the pipe by something that does not
//     follow this package (another program given the descriptors, a bug
//     writing to the wrong descriptor), are taken together with the real
//     one: every acquisition reads all the bytes waiting (up to 64), so
//     two tokens never admit two holders. The process that took them
//     reports it when it unlocks: Unlock panics with [ErrExtraToken],
//     Release returns it, after putting back exactly one token.
//
// Not caught: an extra token written while the Lock is held and taken by
// a waiter before the holder unlocks (two processes are then inside at
// once, and the pipe holds one token afterwards, so nothing looks wrong),
// and a token lost with a dead holder (below).
//
// # Crashes
//
// A process killed while it holds the Lock takes the token with it: the
// Lock stays locked for every other process, forever. There is no owner
// to check and no way to tell a dead holder from a slow one; Python's
// lock has the same limit. [Lock.Lock] then waits forever; use
// [Lock.LockContext] with a deadline where a holder may die, so the
// others can give up and report instead of hanging. A process that dies
// while waiting, or while not holding the Lock, costs nothing.
//
// # Close
//
// [Lock.Close] closes this process's descriptors and wakes every
// goroutine of this process blocked in Lock or LockContext with
// [ErrClosed]; other processes go on. Close does not unlock: if this
// process holds the Lock, the Unlock that ends the critical section
// gives the token back and closes the last descriptor.
//
// # Cost
//
// An uncontended Lock+Unlock is two system calls, a pipe read and a pipe
// write: about 2 µs on the 2-vCPU machine it was measured on, 10 to 25
// times slower than Python's multiprocessing.Lock (a semaphore in shared
// memory, whose fast path makes no system call) and a hundred times
// sync.Mutex; the package's own bookkeeping is about a tenth of it and
// Lock and Unlock do not allocate. See the Benchmark functions and
// `go run ./bench lock`, which measures both languages in one run. Use a
// Lock around work that takes longer than that, such as writing a file or
// a log line, not around an increment in memory.
//
// The pipe's read end is in the Go runtime poller of every process that
// has the Lock open, so an Unlock that puts the token into the empty pipe
// can wake an idle poller thread in each of them, even where no goroutine
// waits for the Lock (measured: an idle process with a pending timer spent
// about 0.3 µs of CPU per Unlock of another process). A Lock taken
// hundreds of thousands of times a second costs some CPU in every process
// that has it open; Close it in processes that no longer need it.
//
// Linux only.
package lock
