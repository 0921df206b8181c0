package mq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// tokens is the token pipe of a bounded queue: it holds one byte per free
// slot. Put takes a byte before its item can be sent; a Get gives one back
// when it hands an item to its caller. Every item in the queue thus holds
// one slot wherever it is, so maxsize minus the bytes in the pipe is the
// exact count of items when no call is under way.
type tokens struct {
	r, w     *os.File
	rrc, wrc syscall.RawConn
	maxsize  int

	// The write end's calls (write, count), made with functions bound
	// once in init: a closure per call, capturing its results, cost three
	// allocations per Get of a bounded queue. wop carries the arguments
	// and results, guarded by wmu; the calls never wait.
	wmu sync.Mutex
	wop tokenOp
}

// tokenOp is a call on the token pipe's write end, run by RawConn.Control.
type tokenOp struct {
	p          []byte
	n          int
	err        error
	write, inq func(uintptr) // doWrite, doInQueue
}

func (op *tokenOp) doWrite(d uintptr) {
	for {
		op.n, op.err = unix.Write(int(d), op.p)
		if op.err != unix.EINTR {
			return
		}
	}
}

func (op *tokenOp) doInQueue(d uintptr) { op.n, op.err = fd.InQueue(int(d), false) }

// maxGive is the most bytes one write gives back (the tokens of one
// dropped packet). Keeping writes this small is what lets maxPipeTokens
// promise that a give never finds the pipe full.
const maxGive = maxFrames

// maxPipeTokens returns how many tokens a pipe of size bytes can hold with
// the guarantee that giving back up to maxGive tokens never fails while
// the pipe holds at most maxsize-maxGive of them.
//
// A pipe is a ring of size/4096 pages; a write that does not fit in the
// last page's free room starts a new page. A small write can therefore
// fail (EAGAIN) only when every page is in use and the last one is too
// full: then each page but the first (which the readers may have nearly
// emptied) holds more than 4096-maxGive bytes. Below that many tokens, a
// page is always free.
func maxPipeTokens(size int) int {
	pages := size / 4096
	if pages < 2 {
		return 0
	}
	return (pages - 1) * (4096 - maxGive + 1)
}

func newTokens(maxsize int) (*tokens, error) {
	r, w, err := fd.Pipe("mproc:queue-slots")
	if err != nil {
		return nil, err
	}
	t := &tokens{r: r, w: w, maxsize: maxsize}
	if err := t.size(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := t.init(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := t.fill(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return t, nil
}

func (t *tokens) init() error {
	var err error
	if t.rrc, err = t.r.SyscallConn(); err != nil {
		return err
	}
	if t.wrc, err = t.w.SyscallConn(); err != nil {
		return err
	}
	t.wop.write, t.wop.inq = t.wop.doWrite, t.wop.doInQueue
	return nil
}

// size grows the pipe until it can hold maxsize tokens, or reports why it
// cannot.
func (t *tokens) size() error {
	rc, err := t.w.SyscallConn()
	if err != nil {
		return err
	}
	var cur int
	var cerr error
	rc.Control(func(d uintptr) { cur, cerr = unix.FcntlInt(d, unix.F_GETPIPE_SZ, 0) })
	if cerr != nil {
		return os.NewSyscallError("fcntl F_GETPIPE_SZ", cerr)
	}
	if maxPipeTokens(cur) >= t.maxsize {
		return nil
	}
	limit := pipeMaxSize()
	want := cur
	for maxPipeTokens(want) < t.maxsize && want < limit {
		want *= 2
	}
	if maxPipeTokens(want) < t.maxsize {
		return fmt.Errorf("%w: maxsize %d is more than the %d slots a token pipe of %d bytes holds (fs.pipe-max-size); use a smaller maxsize or an unbounded queue",
			ErrMaxsize, t.maxsize, maxPipeTokens(limit), limit)
	}
	var got int
	rc.Control(func(d uintptr) { got, cerr = unix.FcntlInt(d, unix.F_SETPIPE_SZ, want) })
	if cerr != nil {
		return fmt.Errorf("%w: maxsize %d needs a token pipe of %d bytes and this process may not have one (%v: the user's pipe buffers are over fs.pipe-user-pages-soft?)",
			ErrMaxsize, t.maxsize, want, os.NewSyscallError("fcntl F_SETPIPE_SZ", cerr))
	}
	if maxPipeTokens(got) < t.maxsize {
		return fmt.Errorf("%w: maxsize %d: the token pipe got %d bytes, %d slots", ErrMaxsize, t.maxsize, got, maxPipeTokens(got))
	}
	return nil
}

// pipeMaxSize reads fs.pipe-max-size (1 MiB unless changed).
func pipeMaxSize() int {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return 1 << 20
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 4096 {
		return 1 << 20
	}
	return n
}

// fill puts maxsize tokens in the new pipe.
func (t *tokens) fill() error {
	buf := make([]byte, min(t.maxsize, 64<<10))
	for left := t.maxsize; left > 0; {
		n, err := t.write(buf[:min(left, len(buf))])
		if err != nil {
			return fmt.Errorf("fill the token pipe: %w", err)
		}
		left -= n
	}
	return nil
}

func (t *tokens) write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	op := &t.wop
	op.p = p
	err := t.wrc.Control(op.write)
	n, werr := op.n, op.err
	op.p, op.err = nil, nil
	if err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}

var tokenBytes [maxGive]byte

// give returns n slots to the queue. It never waits: a full pipe means
// more tokens than slots, which is reported.
func (t *tokens) give(n int) error {
	for n > 0 {
		k := min(n, maxGive)
		w, err := t.write(tokenBytes[:k])
		if err == unix.EAGAIN {
			return fmt.Errorf("token pipe full while giving back %d slot(s): more tokens than maxsize %d (a process wrote to it?)", n, t.maxsize)
		}
		if err == unix.EPIPE {
			// No process holds the read end any more: nobody can take a
			// slot again, so none needs giving back.
			return nil
		}
		if err != nil {
			return fmt.Errorf("give back a slot: %w", err)
		}
		n -= w
	}
	return nil
}

// tryTake takes one slot without waiting; it reports false when none is
// free.
func (t *tokens) tryTake() (bool, error) {
	var got bool
	var rerr error
	if err := t.rrc.Control(func(d uintptr) { got, rerr = takeOne(int(d)) }); err != nil {
		return false, closedErr(err)
	}
	return got, rerr
}

// take takes one slot, waiting while none is free. The caller holds the
// queue's tsem, so it alone waits on the pipe in this process and owns its
// read deadline.
func (t *tokens) take(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := fd.WatchDeadline(ctx, t.r.SetReadDeadline)
	var rerr error
	err := t.rrc.Read(func(d uintptr) bool {
		var got bool
		got, rerr = takeOne(int(d))
		return got || rerr != nil
	})
	if stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	if err != nil {
		return closedErr(err)
	}
	return rerr
}

func takeOne(d int) (bool, error) {
	var b [1]byte
	for {
		n, err := unix.Read(d, b[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		case err != nil:
			return false, fmt.Errorf("take a slot: %w", err)
		case n == 0:
			return false, fmt.Errorf("token pipe closed")
		}
		return true, nil
	}
}

// count returns the free slots.
func (t *tokens) count() (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	op := &t.wop
	err := t.wrc.Control(op.inq)
	n, ierr := op.n, op.err
	op.err = nil
	if err != nil {
		return 0, closedErr(err)
	}
	return n, ierr
}

// closedErr turns the poller's "file closed" into ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}
