package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/codec"
	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
)

var (
	// ErrClosed is returned by every call on a Conn after Close, and by a
	// call that Close interrupted. Test with errors.Is.
	ErrClosed = errors.New("conn: use of closed connection")
	// ErrPeerClosed is returned by Send when the other end has been closed
	// (EPIPE or ECONNRESET). Test with errors.Is.
	ErrPeerClosed = errors.New("conn: peer closed")
	// ErrReadOnly is returned by Send on the read end of a Simplex pipe.
	ErrReadOnly = errors.New("conn: connection is read-only")
	// ErrWriteOnly is returned by Recv and Poll on the write end of a
	// Simplex pipe.
	ErrWriteOnly = errors.New("conn: connection is write-only")
	// ErrMalformed is returned by Recv for a payload that is not exactly
	// one well-formed msgpack value (bytes after the value included). The
	// message is consumed; the Conn remains usable. Test with errors.Is.
	ErrMalformed = codec.ErrMalformed
	// ErrTooDeep is returned by Recv for a payload whose arrays and maps
	// nest more than MaxDepth levels; the error also wraps ErrMalformed.
	// The message is consumed; the Conn remains usable. Test with
	// errors.Is.
	ErrTooDeep = codec.ErrTooDeep
)

// MaxDepth is the deepest nesting of msgpack arrays and maps that Recv
// decodes: 10,000 levels. Real data never comes near it (Python's msgpack
// packs at most 511 levels); deeper payloads, which could overflow the
// decoder's stack, are refused with ErrTooDeep before decoding.
const MaxDepth = codec.MaxDepth

// poolMax is the largest buffer kept for reuse between messages.
const poolMax = 64 << 10

type notSendable = share.Inheritable[connName]

// connName names conn.Conn in the errors of notSendable.
type connName struct{}

func (connName) String() string { return "conn.Conn" }

// Conn sends and receives whole messages over one pipe or socket
// descriptor. See the package documentation for the frame format.
//
// A Conn is safe for use by several goroutines. Send and SendBytes are
// serialized with each other: frames never interleave. Recv, RecvBytes and
// Poll are serialized with each other. A sender and a receiver never wait
// for each other, and Close may be called at any time.
//
// Several processes may share one end (through Share); each frame written
// with one write of at most PIPE_BUF (4096) bytes to a pipe stays whole
// against other writers, larger ones may interleave. Use the queue packages
// when many processes write or read one channel.
type Conn struct {
	// notSendable makes msgpack refuse a Conn in a message: see ErrNotSendable.
	notSendable

	f    *os.File
	rc   syscall.RawConn
	info fd.Info
	max  atomic.Int64
	// rd is where frames are read from: f, or, on an AF_UNIX socket, a
	// recvmsg reader that keeps the descriptors sent with the stream
	// (handle.go).
	rd io.Reader
	// peer describes the other end of a Conn made by Dial or Accept
	// (listen.go); nil for pipes and socketpairs.
	peer *peer
	// in holds the descriptors that arrived with the stream (handle.go).
	in inFDs

	rmu  sync.Mutex // serializes receiving
	rerr error      // sticky receive error; guarded by rmu
	// The read-ahead buffer (readahead.go): bytes read from the
	// descriptor and not yet returned are rbuf[rpos:rend]. Guarded by rmu.
	rbuf       []byte
	rpos, rend int
	buffered   atomic.Int64  // rend-rpos, for Share and hasBuffered, which do not take rmu
	exact      atomic.Bool   // set by Share: read no byte past the current frame
	rop        rawOp         // the read system call (sys.go); guarded by rmu
	dec        codec.Decoder // decodes frames in rbuf; guarded by rmu

	wmu sync.Mutex // serializes sending
	wop rawOp      // the write system call (sys.go); guarded by wmu

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New returns a Conn over its own duplicate of f's descriptor, which must be
// a pipe end or a socket. f stays open and remains the caller's to close,
// as with net.FileConn; like net.FileConn, New puts the open file
// description in nonblocking mode, so that Close can interrupt a blocked
// call. To hand f over instead of duplicating it, use Own.
func New(f *os.File) (*Conn, error) {
	if _, err := fd.FileStat(f); err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	d, err := fd.Dup(f, f.Name())
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	c, err := newConn(d)
	if err != nil {
		d.Close()
		return nil, err
	}
	return c, nil
}

// Own returns a Conn that takes ownership of f, which must be a pipe end or
// a socket: the Conn closes it, and the caller must neither use nor close f
// afterwards, also when Own fails (then f is closed). Use it for a
// descriptor made for the Conn alone, as package pipe does; New is for one
// the caller keeps. A blocking descriptor (a parent in another language
// may leave one) is replaced by a nonblocking duplicate, so that Close and
// ctx can interrupt a blocked call.
func Own(f *os.File) (*Conn, error) {
	if _, err := fd.FileStat(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("conn: %w", err)
	}
	// os.NewFile did not register a blocking descriptor with the poller;
	// a nonblocking duplicate is.
	f, err := fd.Pollable(f)
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	c, err := newConn(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// newConn takes ownership of f, whose descriptor must be nonblocking so
// that the runtime polls it.
func newConn(f *os.File) (*Conn, error) {
	info, err := fd.FileStat(f)
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("conn: %w", err)
	}
	c := &Conn{f: f, rc: rc, info: info}
	c.rd = c.reader()
	c.rop.init(syscall.SYS_READ)
	c.wop.init(syscall.SYS_WRITE)
	c.max.Store(DefaultMaxMessageSize)
	return c, nil
}

// SetMaxMessageSize sets the largest payload this Conn sends or receives;
// n <= 0 restores DefaultMaxMessageSize. A received frame whose header
// announces more fails with ErrMessageTooLarge and leaves the Conn broken
// for receiving (its stream position is lost); a Send of more fails with
// ErrMessageTooLarge before writing anything.
func (c *Conn) SetMaxMessageSize(n int64) {
	if n <= 0 {
		n = DefaultMaxMessageSize
	}
	c.max.Store(n)
}

// MaxMessageSize returns the largest payload this Conn sends or receives.
func (c *Conn) MaxMessageSize() int64 { return c.max.Load() }

// Readable reports whether the Conn can receive (false for the write end of
// a Simplex pipe).
func (c *Conn) Readable() bool { return c.info.Readable }

// Writable reports whether the Conn can send (false for the read end of a
// Simplex pipe).
func (c *Conn) Writable() bool { return c.info.Writable }

// Send encodes v with msgpack and sends it as one message. An error from
// the encoder is returned before anything is written.
func (c *Conn) Send(v any) error { return c.SendContext(context.Background(), v) }

// SendContext is Send that gives up when ctx ends before the message has
// begun to be written, returning ctx.Err() and writing nothing. Once the
// first byte is out, the rest follows regardless of ctx, so that the peer
// never sees half a frame; Close still interrupts it.
func (c *Conn) SendContext(ctx context.Context, v any) error {
	if err := c.canSend(); err != nil {
		return err
	}
	sb := getSendBuf()
	defer putSendBuf(sb)
	sb.buf.Write(make([]byte, headerSize))
	if err := sb.enc.Encode(v); err != nil {
		return fmt.Errorf("conn: encode %T: %w", v, err)
	}
	b := sb.buf.Bytes()
	n := len(b) - headerSize
	if int64(n) > c.max.Load() {
		return fmt.Errorf("%w: %d bytes (maximum %d)", ErrMessageTooLarge, n, c.max.Load())
	}
	if int64(n) > maxShortLen {
		return c.write(ctx, AppendHeader(nil, n), b[headerSize:])
	}
	putShortHeader(b, n)
	return c.write(ctx, b)
}

// SendBytes sends p, unencoded, as one message.
func (c *Conn) SendBytes(p []byte) error { return c.SendBytesContext(context.Background(), p) }

// SendBytesContext is SendBytes with the ctx rules of SendContext.
func (c *Conn) SendBytesContext(ctx context.Context, p []byte) error {
	if err := c.canSend(); err != nil {
		return err
	}
	if int64(len(p)) > c.max.Load() {
		return fmt.Errorf("%w: %d bytes (maximum %d)", ErrMessageTooLarge, len(p), c.max.Load())
	}
	if len(p) > poolMax {
		return c.write(ctx, AppendHeader(nil, len(p)), p)
	}
	sb := getSendBuf()
	defer putSendBuf(sb)
	sb.buf.Write(AppendHeader(sb.hdr[:0], len(p)))
	sb.buf.Write(p)
	return c.write(ctx, sb.buf.Bytes())
}

func (c *Conn) canSend() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.info.Writable {
		return ErrReadOnly
	}
	return nil
}

// write writes parts as one frame, holding the send lock. ctx is honoured
// only until the first byte is written.
func (c *Conn) write(ctx context.Context, parts ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	started := false
	for _, p := range parts {
		for len(p) > 0 {
			var n int
			var err error
			if !started && ctx.Done() != nil {
				if err := ctx.Err(); err != nil {
					return err
				}
				stop := fd.WatchDeadline(ctx, c.f.SetWriteDeadline)
				n, err = c.writeSome(p)
				if stop() && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
					return ctx.Err()
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = nil // a partial write; the rest follows without ctx
				}
			} else {
				n, err = c.writeSome(p)
			}
			if n > 0 {
				started = true
			}
			p = p[n:]
			if err != nil {
				return c.writeErr(err)
			}
		}
	}
	return nil
}

func (c *Conn) writeErr(err error) error {
	switch {
	case c.closed.Load() || errors.Is(err, os.ErrClosed):
		return ErrClosed
	case fd.IsPeerClosed(err):
		return fmt.Errorf("%w: %w", ErrPeerClosed, err)
	}
	return fmt.Errorf("conn: send: %w", err)
}

// Recv receives one message and decodes it with msgpack into v, which must
// be a pointer. A message that does not decode into v is consumed and
// reported; the Conn remains usable. A payload is checked before it is
// decoded: one whose msgpack containers announce more elements than it has
// bytes is refused, so that garbage never makes Recv allocate more than a
// small multiple of the payload's size, as is one that nests deeper than
// MaxDepth (ErrTooDeep) or has bytes after its value (ErrMalformed).
//
// Recv returns io.EOF when the peer has closed (or died) between messages,
// io.ErrUnexpectedEOF when it went inside one, ErrClosed after Close.
func (c *Conn) Recv(v any) error { return c.RecvContext(context.Background(), v) }

// RecvContext is Recv that gives up when ctx ends before a message has
// begun to arrive, returning ctx.Err() and consuming nothing. Once the
// first byte of a frame has arrived the whole frame is read regardless of
// ctx; Close still interrupts it.
func (c *Conn) RecvContext(ctx context.Context, v any) error {
	c.rmu.Lock()
	p, owned, err := c.recv(ctx)
	if err == nil {
		err = c.notShare(p)
	}
	if err == nil && !owned {
		// p is in the read-ahead buffer: decode it before another
		// receive reuses the buffer. The decoder copies what it keeps.
		if err = c.dec.Unmarshal(p, v); err != nil {
			err = fmt.Errorf("conn: decode into %T: %w", v, err)
		}
	}
	c.rmu.Unlock()
	if err == nil && owned {
		err = decode(p, v)
	}
	return err
}

func decode(p []byte, v any) error {
	if err := codec.Unmarshal(p, v); err != nil {
		return fmt.Errorf("conn: decode into %T: %w", v, err)
	}
	return nil
}

// RecvBytes receives one message and returns its payload, unencoded, in a
// new slice. Errors are those of Recv.
func (c *Conn) RecvBytes() ([]byte, error) { return c.RecvBytesContext(context.Background()) }

// RecvBytesContext is RecvBytes with the ctx rules of RecvContext.
func (c *Conn) RecvBytesContext(ctx context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	p, owned, err := c.recv(ctx)
	if err == nil {
		err = c.notShare(p)
	}
	if err != nil || owned {
		return p, err
	}
	return append([]byte(nil), p...), nil
}

func (c *Conn) canRecv() error {
	switch {
	case c.closed.Load():
		return ErrClosed
	case !c.info.Readable:
		return ErrWriteOnly
	}
	return c.rerr
}

// fail records err as the sticky receive error when the stream position
// has been lost, and returns it.
func (c *Conn) fail(err error) error {
	if !errors.Is(err, ErrClosed) {
		c.rerr = err
	}
	return err
}

// readFirst reads at least one byte into p, honouring ctx.
func (c *Conn) readFirst(ctx context.Context, p []byte) (int, error) {
	if ctx.Done() == nil {
		return c.readSome(p)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	stop := fd.WatchDeadline(ctx, c.f.SetReadDeadline)
	n, err := c.readSome(p)
	if stop() && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, ctx.Err()
	}
	return n, err
}

func (c *Conn) readErr(err error, inFrame bool) error {
	switch {
	case c.closed.Load() || errors.Is(err, os.ErrClosed):
		return ErrClosed
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
		if inFrame {
			return io.ErrUnexpectedEOF
		}
		return io.EOF
	case err == io.ErrUnexpectedEOF || errors.Is(err, ErrProtocol) || errors.Is(err, ErrMessageTooLarge):
		return err
	}
	return fmt.Errorf("conn: receive: %w", err)
}

// Poll reports whether a message is waiting, or the peer has closed, so
// that Recv would not block. A zero timeout does not wait; a negative one
// waits until either happens.
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	if timeout < 0 {
		return c.PollContext(context.Background())
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.canRecv(); err != nil {
		return c.rerr != nil && !c.closed.Load(), ignoreSticky(err, c.rerr)
	}
	if c.rpos < c.rend || timeout == 0 {
		return c.readyNow()
	}
	c.f.SetReadDeadline(time.Now().Add(timeout))
	defer c.f.SetReadDeadline(time.Time{})
	ok, err := c.waitReady()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	return ok, err
}

// PollContext waits until a message is waiting or the peer has closed and
// returns true; or until ctx ends, and returns false and ctx.Err().
func (c *Conn) PollContext(ctx context.Context) (bool, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.canRecv(); err != nil {
		return c.rerr != nil && !c.closed.Load(), ignoreSticky(err, c.rerr)
	}
	if c.rpos < c.rend {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ctx.Done() == nil {
		return c.waitReady()
	}
	stop := fd.WatchDeadline(ctx, c.f.SetReadDeadline)
	ok, err := c.waitReady()
	if stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		return false, ctx.Err()
	}
	return ok, err
}

// ignoreSticky: a Conn whose receive side is broken is "ready" (Recv
// returns at once), so Poll reports true without an error.
func ignoreSticky(err, sticky error) error {
	if sticky != nil && err == sticky {
		return nil
	}
	return err
}

// readyNow reports whether a message is waiting, without waiting. The
// caller holds rmu.
func (c *Conn) readyNow() (bool, error) {
	if c.rpos < c.rend {
		return true, nil
	}
	var ready bool
	err := c.rc.Control(func(fd uintptr) { ready = pollNow(fd) })
	if err != nil {
		return false, c.readErr(err, false)
	}
	return ready, nil
}

func (c *Conn) waitReady() (bool, error) {
	var ready bool
	err := c.rc.Read(func(fd uintptr) bool {
		ready = pollNow(fd)
		return ready
	})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, err
		}
		return false, c.readErr(err, false)
	}
	return ready, nil
}

func pollNow(fd uintptr) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && pfd[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0
	}
}

// Close closes the Conn. It wakes, with ErrClosed, every Send, Recv and
// Poll of this process blocked on it. Close is idempotent and safe to call
// concurrently; every call returns the result of the first. Other
// processes sharing the same end keep their own descriptors open.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.f.Close()
		c.in.close()
		c.peer.close()
	})
	return c.closeErr
}

type sendBuf struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	hdr [longHeaderSize]byte
}

var sendPool = sync.Pool{New: func() any {
	sb := new(sendBuf)
	sb.enc = msgpack.NewEncoder(&sb.buf)
	return sb
}}

func getSendBuf() *sendBuf {
	sb := sendPool.Get().(*sendBuf)
	sb.buf.Reset()
	return sb
}

func putSendBuf(sb *sendBuf) {
	if sb.buf.Cap() <= poolMax {
		sendPool.Put(sb)
	}
}
