package mq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/codec"
	"github.com/mproc-go/mproc/internal/fd"
)

// The receiving side. A Get receives one whole packet with one recvmsg.
// When the packet carries several frames, the process has taken them all:
// Get returns the first and keeps the others, in order, for the next Gets
// of this process (Close hands back those no Get took). Gets of one
// process are serialized by rsem, so that only one goroutine waits in the
// poller on the socket and owns its read deadline; across processes they
// race freely, and the kernel gives each packet to exactly one of them.

type receiver[T any] struct {
	buf      []byte // the last packet received
	oob      []byte
	off, end int          // buf[off:end] holds the frames not yet taken
	left     atomic.Int32 // how many
	dec      *msgpack.Decoder
	rd       bytes.Reader
	bodyBuf  []byte // reused for large items' payloads (decoding copies out)

	receiverState
}

// receiverState is the part of a receiver that does not depend on T.
type receiverState struct {
	bodyMu sync.Mutex
	body   *os.File // the pipe of a large item a Get is reading
}

// maxRights is how many descriptors a received packet may carry before
// the kernel discards the rest (and closes them): ours carry one.
const maxRights = 8

func (r *receiver[T]) pending() int { return int(r.left.Load()) }

func (r *receiver[T]) ensure() {
	if r.buf == nil {
		r.buf = make([]byte, maxPacket)
		r.oob = make([]byte, unix.CmsgSpace(4*maxRights))
		r.dec = msgpack.NewDecoder(nil)
		r.dec.UsePreallocateValues(true)
	}
}

// Get removes and returns the oldest item, waiting until there is one,
// until ctx ends (ctx.Err(), nothing taken) or until Close (ErrClosed).
// An item that does not decode into T is consumed and reported.
func (q *Queue[T]) Get(ctx context.Context) (T, error) { return q.get(ctx, true) }

// TryGet is Get that does not wait for an item: it returns ErrEmpty when
// none is waiting in the socket or in this process, or when another
// goroutine of this process is already receiving. An item larger than a
// packet is read whole, which may wait for its sender.
func (q *Queue[T]) TryGet() (T, error) { return q.get(context.Background(), false) }

func (q *Queue[T]) get(ctx context.Context, wait bool) (v T, err error) {
	if !q.enter() {
		return v, ErrClosed
	}
	defer q.exit()
	select {
	case q.rsem <- struct{}{}:
	default:
		if !wait {
			return v, ErrEmpty
		}
		if q.hooks.BeforeBlock != nil {
			q.hooks.BeforeBlock()
		}
		if err := q.acquire(ctx, q.rsem); err != nil {
			return v, err
		}
	}
	defer func() { <-q.rsem }()
	r := &q.recv
	r.ensure()
	for {
		if r.left.Load() > 0 {
			return q.takeLocal()
		}
		n, oobn, flags, err := q.receive(ctx, wait)
		if err != nil {
			return v, err
		}
		v, ok, err := q.unpack(n, oobn, flags)
		if ok || err != nil {
			return v, err
		}
	}
}

// receive receives one packet into r.buf.
func (q *Queue[T]) receive(ctx context.Context, wait bool) (n, oobn, flags int, err error) {
	r := &q.recv
	var rerr error
	try := func(d uintptr) bool {
		n, oobn, flags, rerr = recvPacket(int(d), r.buf, r.oob, 0)
		return rerr != unix.EAGAIN
	}
	if !wait || ctx.Done() != nil {
		if err := q.rcvRC.Control(func(d uintptr) { try(d) }); err != nil {
			return 0, 0, 0, q.recvErr(err)
		}
		if rerr != unix.EAGAIN {
			return n, oobn, flags, q.recvErr(rerr)
		}
		if !wait {
			return 0, 0, 0, ErrEmpty
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
	}
	stop := fd.WatchDeadline(ctx, q.rcv.SetReadDeadline)
	err = q.rcvRC.Read(func(d uintptr) bool {
		if try(d) {
			return true
		}
		if q.hooks.BeforeBlock != nil {
			q.hooks.BeforeBlock()
		}
		return false
	})
	if stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, 0, 0, ctx.Err()
	}
	if err == nil {
		err = rerr
	}
	return n, oobn, flags, q.recvErr(err)
}

func (q *Queue[T]) recvErr(err error) error {
	switch {
	case err == nil:
		return nil
	case q.closed.Load() || errors.Is(err, os.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("queue: receive: %w", err)
}

// unpack handles the packet in r.buf: it keeps its frames for takeLocal
// (ok false), or returns the large item it announces (ok true). A large
// item that is dropped also gives ok false.
func (q *Queue[T]) unpack(n, oobn, flags int) (v T, ok bool, err error) {
	r := &q.recv
	var fds []int
	if oobn > 0 {
		fds, err = rightsOf(r.oob[:oobn])
		if err != nil {
			closeFDs(fds)
			return v, false, fmt.Errorf("%w: ancillary data: %v", ErrCorrupt, err)
		}
	}
	p := r.buf[:n]
	switch {
	case flags&unix.MSG_TRUNC != 0:
		closeFDs(fds)
		return v, false, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxPacket)
	case len(fds) > 0 || isBig(p):
		if len(fds) != 1 || !isBig(p) || flags&unix.MSG_CTRUNC != 0 {
			closeFDs(fds)
			return v, false, fmt.Errorf("%w: %d descriptor(s) with %d bytes", ErrCorrupt, len(fds), n)
		}
		return q.takeBig(p, fds[0])
	}
	k := countFrames(p)
	if k <= 0 {
		return v, false, fmt.Errorf("%w: %d bytes that are not whole frames", ErrCorrupt, n)
	}
	r.off, r.end = 0, n
	r.left.Store(int32(k))
	return v, false, nil
}

// takeLocal returns the next frame kept from the last packet.
func (q *Queue[T]) takeLocal() (v T, err error) {
	r := &q.recv
	start, end, _ := nextFrame(r.buf[:r.end], r.off)
	if q.tok != nil {
		if err := q.tok.give(1); err != nil {
			return v, err // the item stays, first in line
		}
	}
	r.off = end
	r.left.Add(-1)
	return r.decode(r.buf[start:end])
}

// decode decodes the payload p, which came from another process: it is
// checked first (codec.Check), so that msgpack headers that lie cannot make
// the decoder allocate more than p's size.
func (r *receiver[T]) decode(p []byte) (v T, err error) {
	if err := codec.Check(p); err != nil {
		return v, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	r.rd.Reset(p)
	r.dec.ResetReader(&r.rd)
	if err := r.dec.Decode(&v); err != nil {
		var zero T
		return zero, fmt.Errorf("queue: decode into %T: %w", v, err)
	}
	return v, nil
}

// maxBodyBuf is the largest payload buffer a receiver keeps between Gets.
const maxBodyBuf = 16 << 20

// takeBig reads the large item announced by the stub p, whose pipe is
// bodyFD, and decodes it. The payload is read whole before it is decoded,
// so that it can be checked (see decode).
func (q *Queue[T]) takeBig(p []byte, bodyFD int) (v T, ok bool, err error) {
	size := binary.BigEndian.Uint64(p[4:bigHeader])
	inline := p[bigHeader:]
	if size > uint64(q.maxItem) || size < uint64(len(inline)) {
		unix.Close(bodyFD)
		return v, false, fmt.Errorf("%w: large item of %d bytes", ErrCorrupt, size)
	}
	r := &q.recv
	br := &bodyReader{r: &r.receiverState, closed: &q.closed, inline: inline, fd: bodyFD, left: int(size) - len(inline)}
	payload := r.readBody(br, int(size))
	br.close()
	if br.err != nil || br.short {
		// The item was taken, and is gone: its sender died (or closed)
		// before writing all of it, or Close interrupted the read.
		q.hooks.dropped(1)
		err = br.err
		if q.tok != nil {
			err = errors.Join(err, q.tok.give(1))
		}
		return v, false, err
	}
	if q.tok != nil {
		if err := q.tok.give(1); err != nil {
			q.hooks.dropped(1)
			return v, false, err
		}
	}
	v, err = r.decode(payload)
	if cap(payload) <= maxBodyBuf {
		r.bodyBuf = payload[:0]
	}
	return v, true, err
}

// readBody reads size bytes from br into the receiver's body buffer. The
// buffer grows with the data past 64 MiB, whatever the stub announced.
func (r *receiver[T]) readBody(br *bodyReader, size int) []byte {
	buf := r.bodyBuf[:0]
	r.bodyBuf = nil
	if cap(buf) < size {
		buf = make([]byte, 0, min(size, 64<<20))
	}
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := br.Read(buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	return buf
}

// bodyReader reads the payload of a large item: the bytes of the stub,
// then those of the pipe, without waiting while the pipe has data, in the
// poller (where Close can interrupt) when it has none.
type bodyReader struct {
	r      *receiverState
	closed *atomic.Bool
	inline []byte
	fd     int      // the pipe, until close
	f      *os.File // the pipe, once waiting in the poller
	left   int      // bytes still to come through the pipe
	short  bool     // the pipe ended early: the sender died or gave up
	err    error    // Close interrupted the read, or another error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(b.inline) > 0 {
		n := copy(p, b.inline)
		b.inline = b.inline[n:]
		return n, nil
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.err != nil || b.short {
		return 0, io.ErrUnexpectedEOF
	}
	p = p[:min(len(p), b.left)]
	var n int
	var err error
	if b.f == nil {
		for {
			n, err = unix.Read(b.fd, p)
			if err != unix.EINTR {
				break
			}
		}
		if err == unix.EAGAIN {
			if err := b.wait(); err != nil {
				return 0, err
			}
		} else if err != nil {
			err = os.NewSyscallError("read", err)
		}
	}
	if b.f != nil {
		n, err = b.f.Read(p)
	}
	n = max(n, 0)
	b.left -= n
	switch {
	case err == nil && n == 0, err == io.EOF:
		b.short = true
		return n, io.ErrUnexpectedEOF
	case err != nil && (b.closed.Load() || errors.Is(err, os.ErrClosed)):
		b.err = ErrClosed
		return n, b.err
	case err != nil:
		b.err = fmt.Errorf("queue: read large item: %w", err)
		return n, b.err
	}
	return n, nil
}

// wait moves the pipe to the poller, registered for Close to interrupt.
func (b *bodyReader) wait() error {
	b.f = os.NewFile(uintptr(b.fd), "mproc:queue-item")
	b.fd = -1
	b.r.bodyMu.Lock()
	defer b.r.bodyMu.Unlock()
	if b.closed.Load() {
		b.err = ErrClosed
		return b.err
	}
	b.r.body = b.f
	return nil
}

func (b *bodyReader) close() {
	if b.f != nil {
		b.r.bodyMu.Lock()
		b.r.body = nil
		b.r.bodyMu.Unlock()
		b.f.Close()
		return
	}
	if b.fd >= 0 {
		unix.Close(b.fd)
	}
}

// interrupt wakes a Get reading a large item's body.
func (r *receiver[T]) interrupt() {
	r.bodyMu.Lock()
	defer r.bodyMu.Unlock()
	if r.body != nil {
		r.body.Close()
	}
}

// handBack gives back to the queue the frames this process received and
// no Get took (Close). They keep their slots, and skip the hooks: they
// were counted when first sent.
func (q *Queue[T]) handBack() error {
	r := &q.recv
	k := int(r.left.Load())
	if k == 0 {
		return nil
	}
	c := getChunk()
	c.b = append(c.b[:0], r.buf[r.off:r.end]...)
	c.n, c.handback = k, true
	r.left.Store(0)
	s := &q.send
	s.mu.Lock()
	s.backlog = append(s.backlog, c)
	s.queued += k
	s.wake(q)
	s.mu.Unlock()
	return nil
}

var peekPool = sync.Pool{New: func() any { b := make([]byte, maxPacket); return &b }}

// estimateWaiting estimates the items waiting in the socket: its bytes
// (SIOCINQ) divided by the bytes per item of the first packet.
func (q *Queue[T]) estimateWaiting() int {
	inq, err := q.inQueue()
	if err != nil || inq == 0 {
		return 0
	}
	bp := peekPool.Get().(*[]byte)
	defer peekPool.Put(bp)
	var oob [64]byte
	var n, oobn int
	var rerr error
	q.rcvRC.Control(func(d uintptr) { n, oobn, _, rerr = recvPacket(int(d), *bp, oob[:], unix.MSG_PEEK) })
	if oobn > 0 {
		fds, _ := rightsOf(oob[:oobn]) // a peek installs copies of them
		closeFDs(fds)
	}
	if rerr != nil || n == 0 {
		return 1
	}
	p := (*bp)[:n]
	frames := 1
	if !isBig(p) {
		frames = max(1, countFrames(p))
	}
	return max(1, (inq*frames+n/2)/n)
}
