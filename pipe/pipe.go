// Package pipe creates connected pairs of [conn.Conn], the Go counterpart of
// Python's multiprocessing.Pipe.
//
// Every descriptor is created nonblocking and close-on-exec, so an end
// reaches a child only when it is shared explicitly ([conn.Conn.Share]),
// and Close interrupts a blocked call at once.
package pipe

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/fd"
)

// Duplex returns the two ends of a bidirectional connection over an
// AF_UNIX stream socketpair, like Python's Pipe(duplex=True). Each end can
// both send and receive.
func Duplex() (a, b *conn.Conn, err error) {
	fa, fb, err := fd.Socketpair(unix.SOCK_STREAM, "mproc-duplex")
	if err != nil {
		return nil, nil, err
	}
	return wrap(fa, fb)
}

// Simplex returns the read and write ends of a one-way connection over a
// pipe, like Python's Pipe(duplex=False). Send on r fails with
// conn.ErrReadOnly, Recv on w with conn.ErrWriteOnly.
func Simplex() (r, w *conn.Conn, err error) {
	fr, fw, err := fd.Pipe("mproc-simplex")
	if err != nil {
		return nil, nil, err
	}
	return wrap(fr, fw)
}

// wrap hands the two new descriptors over to Conns, which own them.
func wrap(fa, fb *os.File) (a, b *conn.Conn, err error) {
	if a, err = conn.Own(fa); err != nil {
		fb.Close()
		return nil, nil, err
	}
	if b, err = conn.Own(fb); err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}
