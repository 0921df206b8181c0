package conn

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dial connects to the Listener at address on network ("unix" with a
// socket file path or "@name", "tcp" with host:port) and runs the
// handshakes its options ask for, the Go counterpart of Python's
// multiprocessing.connection.Client. The server may be a Go Listener or a
// Python multiprocessing.connection.Listener (with the same authkey, and
// without TLS). ctx bounds connecting and the handshakes, which
// WithHandshakeTimeout bounds too.
//
// A failed authentication is ErrAuth. On "tcp", Dial needs WithAuthKey or
// WithTLS, or WithInsecure (ErrInsecure otherwise), as Listen does. Dial
// is safe for use by several goroutines; the Conn is the caller's.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Conn, error) {
	s, err := newSettings("Dial", network, opts)
	if err != nil {
		return nil, err
	}
	if s.tls != nil && s.tls.ServerName == "" && !s.tls.InsecureSkipVerify && network != "unix" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("conn: Dial: %w", err)
		}
		s.tls = s.tls.Clone()
		s.tls.ServerName = host
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return upgrade(hctx, nc, network, s, false)
}

// peer describes the other end of a Conn made by Dial or Accept.
type peer struct {
	network       string
	local, remote net.Addr
	tls           *tlsPump // nil without TLS
}

func (p *peer) close() {
	if p != nil && p.tls != nil {
		p.tls.close()
	}
}

// RemoteAddr returns the address of the other end of a Conn made by Dial
// or Accept, and nil for other Conns. For a unix socket it is the
// address the client bound, often empty.
func (c *Conn) RemoteAddr() net.Addr {
	if c.peer == nil {
		return nil
	}
	return c.peer.remote
}

// LocalAddr returns this end's address for a Conn made by Dial or Accept,
// and nil for other Conns.
func (c *Conn) LocalAddr() net.Addr {
	if c.peer == nil {
		return nil
	}
	return c.peer.local
}

// fromNetConn returns a Conn over its own duplicate of nc's socket and
// closes nc.
func fromNetConn(nc net.Conn, p *peer) (*Conn, error) {
	defer nc.Close()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("conn: a %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(d uintptr) { nfd, derr = unix.FcntlInt(d, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("conn: %w", os.NewSyscallError("fcntl", derr))
	}
	// The open file description is nonblocking (the net package made it
	// so): os.NewFile registers the duplicate with the poller.
	f := os.NewFile(uintptr(nfd), p.network+":"+p.remote.String())
	c, err := newConn(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.peer = p
	return c, nil
}
