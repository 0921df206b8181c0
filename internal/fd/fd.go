// Package fd creates the descriptors mproc shares with children, following
// the rules in docs/ARCHITECTURE.md ("Descriptors"): every descriptor is
// created nonblocking and close-on-exec, and wrapped exactly once with
// os.NewFile, so that the Go runtime polls it and exec.Cmd's call to Fd
// leaves O_NONBLOCK alone.
package fd

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Pipe returns the read and write ends of a new pipe.
func Pipe(name string) (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	return os.NewFile(uintptr(p[0]), name+":r"), os.NewFile(uintptr(p[1]), name+":w"), nil
}

// Socketpair returns the two ends of a new AF_UNIX socketpair of type typ
// (unix.SOCK_STREAM or unix.SOCK_SEQPACKET).
func Socketpair(typ int, name string) (a, b *os.File, err error) {
	p, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(p[0]), name+":a"), os.NewFile(uintptr(p[1]), name+":b"), nil
}

// Dup returns a new *os.File for its own nonblocking, close-on-exec
// duplicate of f's descriptor. f stays open and the caller's. Like
// net.FileConn, it puts the shared open file description in nonblocking
// mode.
func Dup(f *os.File, name string) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// Info describes a descriptor: its access mode and whether it is a socket.
type Info struct {
	Readable, Writable bool
	Socket             bool
	SockType           int // unix.SOCK_STREAM, unix.SOCK_SEQPACKET, ... when Socket
	Domain             int // unix.AF_UNIX, unix.AF_INET, ... when Socket
}

// Stat describes the descriptor fd. Only pipes (FIFOs) and sockets are
// accepted.
func Stat(fd int) (Info, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Info{}, os.NewSyscallError("fstat", err)
	}
	var in Info
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
	case unix.S_IFSOCK:
		in.Socket = true
		t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			return Info{}, os.NewSyscallError("getsockopt", err)
		}
		in.SockType = t
		d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return Info{}, os.NewSyscallError("getsockopt", err)
		}
		in.Domain = d
	default:
		return Info{}, fmt.Errorf("descriptor %d is neither a pipe nor a socket (mode %#o)", fd, st.Mode&unix.S_IFMT)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return Info{}, os.NewSyscallError("fcntl", err)
	}
	switch fl & unix.O_ACCMODE {
	case unix.O_RDONLY:
		in.Readable = true
	case unix.O_WRONLY:
		in.Writable = true
	default:
		in.Readable, in.Writable = true, true
	}
	if in.Socket {
		in.Readable, in.Writable = true, true
	}
	return in, nil
}

// FileStat is Stat for an *os.File.
func FileStat(f *os.File) (Info, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return Info{}, err
	}
	var in Info
	var serr error
	if err := rc.Control(func(fd uintptr) { in, serr = Stat(int(fd)) }); err != nil {
		return Info{}, err
	}
	return in, serr
}

// InQueue returns the number of bytes waiting to be read on fd.
func InQueue(fd int, socket bool) (int, error) {
	req := unix.TIOCINQ
	if socket {
		req = unix.SIOCINQ
	}
	n, err := unix.IoctlGetInt(fd, uint(req))
	if err != nil {
		return 0, os.NewSyscallError("ioctl", err)
	}
	return n, nil
}

// IsPeerClosed reports whether err means the other side of a pipe or
// socket has gone (EPIPE, ECONNRESET).
func IsPeerClosed(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// GetFlags returns the file status flags of fd (F_GETFL).
func GetFlags(fd int) (int, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return 0, os.NewSyscallError("fcntl", err)
	}
	return fl, nil
}

// Nonblocking reports whether the F_GETFL flags fl include O_NONBLOCK.
func Nonblocking(fl int) bool { return fl&unix.O_NONBLOCK != 0 }

// Pollable returns f itself when its descriptor is nonblocking, or else a
// nonblocking duplicate: os.NewFile does not register a blocking descriptor
// with the runtime poller, so neither a deadline (ctx) nor Close could
// interrupt a wait on it, and a parent in another language may leave an
// inherited descriptor blocking. Pollable owns f: f is closed unless
// returned, also on error.
func Pollable(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	blocking := false
	rc.Control(func(d uintptr) {
		fl, err := GetFlags(int(d))
		blocking = err == nil && !Nonblocking(fl)
	})
	if !blocking {
		return f, nil
	}
	d, err := Dup(f, f.Name())
	f.Close()
	return d, err
}
