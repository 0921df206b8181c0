package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mproc-go/mproc/internal/share"
)

// maxHandshakes bounds the clients a Listener holds at once between
// accepting their socket and Accept returning their Conn; past it the
// Listener stops accepting and new clients wait in the kernel's backlog.
const maxHandshakes = 128

type listenerNotSendable = share.Local[listenerName]

// listenerName names conn.Listener in the errors of listenerNotSendable.
type listenerName struct{}

func (listenerName) String() string { return "conn.Listener" }

// Listener accepts connections from processes that dial its address, the
// Go counterpart of Python's multiprocessing.connection.Listener.
//
// A Listener runs each client's handshake (TLS, then the authkey
// challenge) in its own goroutine as soon as the client connects, bounded
// by the handshake timeout, so a slow or silent client never delays
// another; Accept returns the clients that passed, in the order they
// passed. A client that fails is closed, reported to the WithLogger
// logger, and forgotten: Accept never returns its error.
//
// A Listener is safe for use by several goroutines.
type Listener struct {
	// listenerNotSendable makes msgpack refuse a Listener in a message:
	// see ErrNotSendable.
	listenerNotSendable

	ln      net.Listener
	s       settings
	network string

	ready   chan *Conn    // authenticated clients, handed to Accept
	pending chan struct{} // one per client between accept and Accept
	done    chan struct{} // closed by Close

	cancel context.CancelFunc // ends the ctx of the accept loop and the handshakes (Close)
	wg     sync.WaitGroup     // the accept loop and the handshakes

	closeOnce sync.Once
	closeErr  error
}

// Listen listens on address: a socket file path (or "@name" for Linux's
// abstract namespace) for network "unix", a host:port for "tcp" ("tcp4",
// "tcp6"). On "tcp" it needs WithAuthKey or WithTLS, or WithInsecure to
// say that anyone who can reach the port may connect (ErrInsecure
// otherwise). Close removes a socket file that Listen created.
//
// With WithAuthKey, a Python client connects with
// multiprocessing.connection.Client(address, authkey=key) and exchanges
// messages with the Conns that Accept returns (send_bytes(msgpack.packb(v))
// and msgpack.unpackb(recv_bytes())).
func Listen(network, address string, opts ...Option) (*Listener, error) {
	s, err := newSettings("Listen", network, opts)
	if err != nil {
		return nil, err
	}
	if s.tls != nil && len(s.tls.Certificates) == 0 && s.tls.GetCertificate == nil && s.tls.GetConfigForClient == nil {
		return nil, fmt.Errorf("conn: Listen: the TLS config has no certificate")
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	l := &Listener{
		ln:      ln,
		s:       s,
		network: network,
		ready:   make(chan *Conn),
		pending: make(chan struct{}, maxHandshakes),
		done:    make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(1)
	go l.acceptLoop(ctx)
	return l, nil
}

// Addr returns the address the Listener listens on; for "tcp" with port 0
// it has the port the system chose.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept waits for the next client that has passed the handshake and
// returns its Conn, which the caller owns. It returns ErrClosed once the
// Listener is closed (Close wakes a blocked Accept) and ctx.Err() when
// ctx ends first. Accept may be called by several goroutines at once;
// each client goes to one of them.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case <-l.done:
		return nil, ErrClosed
	default:
	}
	if testHookAccept != nil {
		testHookAccept()
	}
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening, wakes every blocked Accept with ErrClosed, drops
// the clients still in their handshake or not yet accepted, and waits for
// the Listener's goroutines to end. Conns that Accept returned stay open.
// Close is idempotent and safe to call concurrently; every call returns
// the result of the first.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
		l.closeErr = l.ln.Close()
		l.wg.Wait()
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("conn: %w", l.closeErr)
		}
	})
	return l.closeErr
}

func (l *Listener) acceptLoop(ctx context.Context) {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		select {
		case l.pending <- struct{}{}:
		case <-l.done:
			return
		}
		nc, err := l.ln.Accept()
		if err != nil {
			<-l.pending
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: retry, as net/http does,
			// after a pause that grows to a second.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.warn("accept failed", nil, err)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			continue
		}
		backoff = 0
		l.wg.Add(1)
		go l.serve(ctx, nc)
	}
}

// serve runs nc's handshake and hands the Conn to Accept.
func (l *Listener) serve(ctx context.Context, nc net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.pending }()
	hctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	c, err := upgrade(hctx, nc, l.network, l.s, true)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			l.warn("client dropped", nc.RemoteAddr(), err)
		}
		return
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *Listener) warn(msg string, addr net.Addr, err error) {
	if l.s.log == nil {
		return
	}
	if addr != nil {
		l.s.log.Warn("conn: Listener: "+msg, "listen", l.ln.Addr().String(), "client", addr.String(), "err", err)
	} else {
		l.s.log.Warn("conn: Listener: "+msg, "listen", l.ln.Addr().String(), "err", err)
	}
}

// upgrade runs the handshakes on nc (TLS, then the authkey) within ctx and
// returns a Conn over it. It owns nc: on error nc is closed.
func upgrade(ctx context.Context, nc net.Conn, network string, s settings, server bool) (*Conn, error) {
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	rw := net.Conn(nc)
	var tc *tls.Conn
	err := func() error {
		if s.tls != nil {
			if server {
				tc = tls.Server(nc, s.tls)
			} else {
				tc = tls.Client(nc, s.tls)
			}
			if err := tc.HandshakeContext(ctx); err != nil {
				return fmt.Errorf("conn: TLS handshake: %w", err)
			}
			rw = tc
		}
		if s.key == nil {
			return nil
		}
		h := handshake{rw: rw, key: s.key}
		if server {
			return h.server()
		}
		return h.client()
	}()
	if !stop() && err == nil {
		err = ctx.Err() // the deadline was set: the connection is unusable
	}
	if err != nil {
		nc.Close()
		switch {
		case errors.Is(err, ErrAuth):
		case ctx.Err() != nil:
			err = fmt.Errorf("conn: handshake with %s: %w", nc.RemoteAddr(), ctx.Err())
		default:
			err = fmt.Errorf("conn: handshake with %s: %w", nc.RemoteAddr(), err)
		}
		return nil, err
	}
	p := &peer{network: network, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	if tc != nil {
		return newTLSConn(tc, p)
	}
	return fromNetConn(nc, p)
}

var aLongTimeAgo = time.Unix(1, 0)

// testHookAccept, when set by a test, is called when Accept is about to
// block.
var testHookAccept func()
