package conn

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// The descriptor's reads and writes. The descriptor is nonblocking and
// waits happen in the runtime poller (RawConn), so the calls themselves
// never block and are made with RawSyscall: the scheduler's bookkeeping
// around a system call that may block costs as much as the kernel's work
// for a small frame. RawConn holds the descriptor's lock during the call,
// so Close cannot reuse the descriptor under it, and honours the read and
// write deadlines that ctx sets.
//
// The function RawConn calls is made once per Conn and direction (a
// closure per call would cost three allocations): its arguments and
// results live in a rawOp, guarded by the direction's mutex.

// rawOp is one direction's system call as RawConn runs it.
type rawOp struct {
	trap  uintptr // SYS_READ or SYS_WRITE
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // op.call, bound once
}

func (op *rawOp) init(trap uintptr) {
	op.trap = trap
	op.fn = op.call
}

// call makes the system call; false (EAGAIN) makes RawConn wait in the
// poller and call again.
func (op *rawOp) call(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(op.trap, fd, uintptr(unsafe.Pointer(&op.p[0])), uintptr(len(op.p)))
		if e == syscall.EINTR {
			continue
		}
		op.n, op.errno = int(r), e
		return e != syscall.EAGAIN
	}
}

// readSome reads at least one byte into p (len(p) > 0), waiting in the
// poller while there is none. End of file is io.EOF. The caller holds rmu.
func (c *Conn) readSome(p []byte) (int, error) {
	if c.rd != io.Reader(c.f) {
		return c.rd.Read(p) // a unix socket: recvmsg, keeping descriptors (handle.go)
	}
	op := &c.rop
	op.p = p
	err := c.rc.Read(op.fn)
	op.p = nil
	switch {
	case err != nil:
		return 0, err
	case op.errno != 0:
		return 0, os.NewSyscallError("read", op.errno)
	case op.n == 0:
		return 0, io.EOF
	}
	return op.n, nil
}

// writeSome writes some of p (len(p) > 0), waiting in the poller while
// the descriptor is full. The caller holds wmu.
func (c *Conn) writeSome(p []byte) (int, error) {
	op := &c.wop
	op.p = p
	err := c.rc.Write(op.fn)
	op.p = nil
	switch {
	case err != nil:
		return 0, err
	case op.errno != 0:
		return 0, os.NewSyscallError("write", op.errno)
	}
	return op.n, nil
}
