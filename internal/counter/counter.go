// Package counter is a non-negative count shared by several processes, built
// on two pipes, with a Join that waits for it to reach zero. It is the
// unfinished-task count of package joinable.
//
// # How it works
//
// The baton pipe always holds one 16-byte record (record.go) with the count,
// except while a process holds the baton: reading the record takes it (that
// is the lock; the read waits in the runtime poller, so ctx and Close
// interrupt it), writing the updated record back releases it. Any count fits,
// unlike a token per task, which runs into the pipe's capacity.
//
// Join registers under the baton (it sets a flag and notes the generation,
// the number of times the count has reached zero) and then waits for the
// wake pipe to become readable. Whoever brings the count to zero while the
// flag is set empties the wake pipe and writes one byte into it, so every
// waiter of every process sees a fresh readable edge; each then checks,
// under the baton, whether the generation moved. Waiters consume nothing:
// one that gives up on ctx, or is killed, leaves at most the flag set, which
// costs one needless signal later. A waiter watches the wake pipe from
// before it registers, so no signal falls between registering and waiting.
//
// # What a crash costs
//
// A process killed while holding the baton (a window of two syscalls around
// each update) takes the record with it. The count is then lost for good:
// every later Add, Done, Value and Join of every process waits for the
// baton until its ctx ends or its Counter is closed, and never succeeds
// again. Pipes cannot tell who holds them, so this cannot be detected or
// repaired. A process killed at any other moment, including while waiting
// in Join or for the baton, costs nothing.
package counter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// Errors of this package. Test with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Counter, and by calls that
	// Close interrupted.
	ErrClosed = errors.New("closed")
	// ErrTooManyTaskDone is returned by Done when it would take the count
	// below zero; the count is left unchanged.
	ErrTooManyTaskDone = errors.New("task done more times than added")
	// ErrCorrupt means the baton pipe held something that is not a record:
	// the count is lost.
	ErrCorrupt = errors.New("corrupt record in the baton pipe")
)

// NumFiles is the number of files returned by Files and taken by FromFiles.
const NumFiles = 4

// Counter is one process's handle on a shared count. All its methods are
// safe for concurrent use by several goroutines and processes.
type Counter struct {
	br, bw *os.File // baton pipe: read end, write end
	// brFD, bwFD are their descriptors, for plain syscalls by the holder
	// of sem (Close closes them only once it holds sem).
	brFD, bwFD int
	wr, ww     *os.File // wake pipe: read end, write end

	// sem lets one goroutine of this process at a time read the baton, so
	// that each reader can turn its own ctx into a read deadline; Close
	// takes it for good once any holder has given the baton back.
	sem     chan struct{}
	closing chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// New returns a Counter at zero, on two new pipes.
func New() (*Counter, error) {
	br, bw, err := fd.Pipe("mproc:counter:baton")
	if err != nil {
		return nil, err
	}
	wr, ww, err := fd.Pipe("mproc:counter:wake")
	if err != nil {
		br.Close()
		bw.Close()
		return nil, err
	}
	var b [recordLen]byte
	record{}.encode(&b)
	if _, err := bw.Write(b[:]); err != nil {
		closeAll(br, bw, wr, ww)
		return nil, fmt.Errorf("write the first record: %w", err)
	}
	c, err := newCounter(br, bw, wr, ww)
	if err != nil {
		closeAll(br, bw, wr, ww)
		return nil, err
	}
	return c, nil
}

func newCounter(br, bw, wr, ww *os.File) (*Counter, error) {
	brFD, err := sysfd(br)
	if err != nil {
		return nil, err
	}
	bwFD, err := sysfd(bw)
	if err != nil {
		return nil, err
	}
	return &Counter{
		br: br, bw: bw, wr: wr, ww: ww,
		brFD: brFD, bwFD: bwFD,
		sem:     make(chan struct{}, 1),
		closing: make(chan struct{}),
	}, nil
}

// sysfd returns f's descriptor without the side effect of File.Fd, which
// would put it in blocking mode.
func sysfd(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	n := -1
	if err := rc.Control(func(fd uintptr) { n = int(fd) }); err != nil {
		return -1, err
	}
	return n, nil
}

// Files returns the files to hand to a child, in the order FromFiles takes
// them: baton read end, baton write end, wake read end, wake write end. They
// stay owned by c.
func (c *Counter) Files() []*os.File {
	return []*os.File{c.br, c.bw, c.wr, c.ww}
}

// FromFiles returns a Counter over the files that Files returned in the
// process that created it, in the same order. It takes ownership of them,
// and closes them if it fails.
func FromFiles(files []*os.File) (*Counter, error) {
	if len(files) != NumFiles {
		closeAll(files...)
		return nil, fmt.Errorf("%d files, want %d", len(files), NumFiles)
	}
	if err := checkPipe(files[0], files[1]); err != nil {
		closeAll(files...)
		return nil, fmt.Errorf("baton pipe: %w", err)
	}
	if err := checkPipe(files[2], files[3]); err != nil {
		closeAll(files...)
		return nil, fmt.Errorf("wake pipe: %w", err)
	}
	c, err := newCounter(files[0], files[1], files[2], files[3])
	if err != nil {
		closeAll(files...)
		return nil, err
	}
	return c, nil
}

// checkPipe checks that r and w are the read and write ends of one pipe.
func checkPipe(r, w *os.File) error {
	ri, rino, err := statPipe(r)
	if err != nil {
		return err
	}
	wi, wino, err := statPipe(w)
	if err != nil {
		return err
	}
	switch {
	case ri.Socket || wi.Socket:
		return errors.New("a socket, not a pipe")
	case !ri.Readable || ri.Writable:
		return errors.New("first file is not a read end")
	case !wi.Writable || wi.Readable:
		return errors.New("second file is not a write end")
	case rino != wino:
		return errors.New("the two ends belong to different pipes")
	}
	return nil
}

func statPipe(f *os.File) (fd.Info, uint64, error) {
	info, err := fd.FileStat(f)
	if err != nil {
		return info, 0, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return info, 0, err
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return info, 0, err
	}
	if serr != nil {
		return info, 0, os.NewSyscallError("fstat", serr)
	}
	// ctx and Close work through deadlines, which need the runtime poller:
	// the descriptor must have been nonblocking when it was wrapped, as
	// fd.Pipe makes it (and exec leaves it).
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return info, 0, fmt.Errorf("%s: %w (the descriptor was not nonblocking when wrapped)", f.Name(), err)
	}
	return info, st.Ino, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// Add raises the count by n (n >= 0). It blocks while another goroutine or
// process holds the baton; on ctx's end it returns ctx.Err() and leaves the
// count unchanged.
func (c *Counter) Add(ctx context.Context, n int64) error {
	if n < 0 {
		return fmt.Errorf("Add(%d): negative", n)
	}
	rec, err := c.take(ctx)
	if err != nil {
		return err
	}
	if rec.count > math.MaxInt64-n {
		c.put(rec)
		return fmt.Errorf("Add(%d) overflows the count %d", n, rec.count)
	}
	rec.count += n
	return c.put(rec)
}

// TryAdd is Add if the baton is free: it reports false, and changes
// nothing, when another goroutine or process holds it. It never waits.
func (c *Counter) TryAdd(n int64) (bool, error) {
	if n < 0 {
		return false, fmt.Errorf("counter: Add(%d): negative", n)
	}
	rec, ok, err := c.tryTake()
	if !ok || err != nil {
		return false, err
	}
	if rec.count > math.MaxInt64-n {
		c.put(rec)
		return true, fmt.Errorf("counter: Add(%d) overflows the count %d", n, rec.count)
	}
	rec.count += n
	return true, c.put(rec)
}

// TryDoneUpTo is DoneUpTo if the baton is free: it reports false, and
// changes nothing, when another goroutine or process holds it.
func (c *Counter) TryDoneUpTo(n int64) (took int64, ok bool, err error) {
	if n < 0 {
		return 0, false, fmt.Errorf("counter: DoneUpTo(%d): negative", n)
	}
	rec, ok, err := c.tryTake()
	if !ok || err != nil {
		return 0, false, err
	}
	n = min(n, rec.count)
	return n, true, c.lower(rec, n)
}

// Done lowers the count by n (n >= 0). If the count is below n it returns
// ErrTooManyTaskDone and leaves the count unchanged. Waiters in Join are
// woken when the count reaches zero. Blocking as for Add.
func (c *Counter) Done(ctx context.Context, n int64) error {
	if n < 0 {
		return fmt.Errorf("Done(%d): negative", n)
	}
	rec, err := c.take(ctx)
	if err != nil {
		return err
	}
	if rec.count < n {
		if err := c.put(rec); err != nil {
			return err
		}
		return fmt.Errorf("%w: %d done, %d unfinished", ErrTooManyTaskDone, n, rec.count)
	}
	return c.lower(rec, n)
}

// DoneUpTo lowers the count by n or, if the count is below n, to zero, and
// returns by how much it lowered it. Blocking as for Add.
func (c *Counter) DoneUpTo(ctx context.Context, n int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("DoneUpTo(%d): negative", n)
	}
	rec, err := c.take(ctx)
	if err != nil {
		return 0, err
	}
	n = min(n, rec.count)
	return n, c.lower(rec, n)
}

// lower takes n off the count of rec, whose baton the caller holds, signals
// a zero and gives the baton back.
func (c *Counter) lower(rec record, n int64) error {
	if n == 0 {
		return c.put(rec)
	}
	rec.count -= n
	var serr error
	if rec.count == 0 {
		serr = c.signal(&rec)
	}
	return errors.Join(serr, c.put(rec))
}

// Value returns the count. Blocking as for Add.
func (c *Counter) Value(ctx context.Context) (int64, error) {
	rec, err := c.take(ctx)
	if err != nil {
		return 0, err
	}
	return rec.count, c.put(rec)
}

// Close releases this process's descriptors. It interrupts, with ErrClosed,
// every call of this process waiting for the baton or in Join, after giving
// back the baton if a goroutine of this process holds it, so that other
// processes keep the count. Close is idempotent and safe to call
// concurrently; every call returns the result of the first.
func (c *Counter) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.br.SetReadDeadline(aLongTimeAgo)
		c.sem <- struct{}{} // every holder gives back the baton without blocking
		c.closeErr = errors.Join(c.br.Close(), c.bw.Close(), c.wr.Close(), c.ww.Close())
	})
	return c.closeErr
}
