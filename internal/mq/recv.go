package mq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/codec"
	"github.com/mproc-go/mproc/internal/fd"
)

// The receiving side. A Get receives whole packets, one recvmsg each, or
// several with one recvmmsg when this process handles items quickly (see
// below). When a packet carries several frames, or several packets came
// at once, the process has taken them all: Get returns the first item and
// keeps the others, in order, for the next Gets of this process (Close
// hands back those no Get took). Gets of one process are serialized by
// rsem, so that only one goroutine waits in the poller on the socket and
// owns its read deadline; across processes they race freely, and the
// kernel gives each packet to exactly one of them.
//
// Several packets per receive matter for a synchronous queue, whose
// packets carry one item each (a buffered queue's producers pack several
// items per packet instead). How many is the consumer's side of the pacer
// of send.go: about strandBudget of this process's own work, measured as
// the time between receives, less the time spent waiting, per item
// returned. A process that spends a millisecond on each item takes one
// packet at a time, so that it never sits on items another consumer could
// be handling.

// maxRecvBatch is the most packets one receive takes.
const maxRecvBatch = 8

// packetBuf is a buffer for one received packet.
type packetBuf struct {
	buf, oob       []byte
	n, oobn, flags int
	items          int // the items it carries, for pending
}

type receiver struct {
	bufs      []packetBuf // bufs[0] always; up to maxRecvBatch when batching
	cur       int         // the buffer whose frames are being taken
	next, got int         // bufs[next:got] are received and not yet unpacked
	off, end  int         // bufs[cur].buf[off:end] holds frames not yet taken
	left      atomic.Int32
	queued    atomic.Int32 // items in bufs[next:got]
	held      []byte       // the large item's payload take returned, recycled by untake

	// receive's system call, run by RawConn with functions bound once (a
	// closure per receive, capturing its results, cost allocations per
	// packet): k is how many packets to take, rerr the call's error.
	k           int
	rerr        error
	tryCtl      func(uintptr)
	tryWait     func(uintptr) bool
	setDeadline func(time.Time) error
	bodyBuf     []byte       // reused for large items' payloads (decoding copies out)
	big         *bigItem     // a large item being read
	bigWaiting  atomic.Int32 // 1 while big is set, for pending
	hdrs        []unix.Mmsghdr
	iovs        []unix.Iovec

	// The consumer's pacer.
	batch    int           // packets per receive
	lastRecv time.Time     // when the last receive began
	waited   time.Duration // of which waiting for a packet
	taken    int           // items returned since
	work     time.Duration // per item, smoothed
	frames   float64       // items per packet, smoothed

	receiverState
}

// receiverState is the part of a receiver a large item's bodyReader uses.
type receiverState struct {
	bodyMu sync.Mutex
	body   *os.File // the pipe of a large item a Get is reading
}

// maxRights is how many descriptors a received packet may carry before
// the kernel discards the rest (and closes them): ours carry one.
const maxRights = 8

func (r *receiver) pending() int {
	return int(r.left.Load() + r.queued.Load() + r.bigWaiting.Load())
}

func (r *receiver) ensure() {
	if r.bufs == nil {
		r.bufs = []packetBuf{newPacketBuf()}
		r.batch, r.frames = 1, 1
	}
}

func newPacketBuf() packetBuf {
	return packetBuf{buf: make([]byte, maxPacket), oob: make([]byte, unix.CmsgSpace(4*maxRights))}
}

// pace sets how many packets the coming receive takes, from the work
// per item since the last one.
func (r *receiver) pace(now time.Time) {
	if r.taken > 0 && !r.lastRecv.IsZero() {
		w := (now.Sub(r.lastRecv) - r.waited) / time.Duration(r.taken)
		r.work = (3*r.work + w) / 4
		k := maxRecvBatch
		if per := float64(r.work) * r.frames; per > 0 {
			k = int(float64(strandBudget) / per)
		}
		r.batch = max(1, min(k, maxRecvBatch))
	}
	r.lastRecv, r.waited, r.taken = now, 0, 0
}

// take returns the payload of the next item, for its caller (Queue.get)
// to decode: checked (codec.Check), its slot given back. On success the
// caller holds rsem, and p stays valid, until it calls untake; on error it
// holds nothing. The caller is inside a call (enter).
func (q *engine) take(ctx context.Context, wait bool) (p []byte, err error) {
	select {
	case q.rsem <- struct{}{}:
	default:
		if !wait {
			return nil, ErrEmpty
		}
		if q.hooks.BeforeBlock != nil {
			q.hooks.BeforeBlock()
		}
		if err := q.acquire(ctx, q.rsem); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			q.untake()
		}
	}()
	r := &q.recv
	r.ensure()
	for {
		if r.big != nil {
			p, ok, err := q.readBig(ctx, wait)
			if ok || err != nil {
				return p, err
			}
			continue
		}
		if r.left.Load() > 0 {
			return q.takeLocal()
		}
		if r.next == r.got {
			if err := q.receive(ctx, wait); err != nil {
				return nil, err
			}
		}
		r.cur = r.next
		r.next++
		s := &r.bufs[r.cur]
		r.queued.Add(-int32(s.items))
		p, ok, err := q.unpack(ctx, wait, s.n, s.oobn, s.flags)
		if ok || err != nil {
			return p, err
		}
	}
}

// untake ends what take began: it recycles a large item's payload buffer
// and frees rsem.
func (q *engine) untake() {
	r := &q.recv
	if p := r.held; p != nil {
		r.held = nil
		if cap(p) <= maxBodyBuf {
			r.bodyBuf = p[:0]
		}
	}
	<-q.rsem
}

// receive receives one packet, or up to r.batch of them, into r.bufs;
// the caller has unpacked every earlier one.
func (q *engine) receive(ctx context.Context, wait bool) error {
	r := &q.recv
	k := 1
	if q.sync {
		r.pace(time.Now())
		k = r.batch
	}
	for len(r.bufs) < k {
		r.bufs = append(r.bufs, newPacketBuf())
	}
	if r.tryCtl == nil {
		r.tryCtl = func(d uintptr) { r.try(d) }
		r.tryWait = func(d uintptr) bool {
			if r.try(d) {
				return true
			}
			if q.hooks.BeforeBlock != nil {
				q.hooks.BeforeBlock()
			}
			return false
		}
		r.setDeadline = q.rcv.SetReadDeadline
	}
	r.k, r.rerr = k, nil
	r.next, r.got = 0, 0
	if !wait || ctx.Done() != nil {
		if err := q.rcvRC.Control(r.tryCtl); err != nil {
			return q.recvErr(err)
		}
		if r.rerr != unix.EAGAIN {
			return q.received(r.rerr)
		}
		if !wait {
			return ErrEmpty
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	start := time.Now()
	stop := fd.WatchDeadline(ctx, r.setDeadline)
	err := q.rcvRC.Read(r.tryWait)
	r.waited = time.Since(start)
	if stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	if err != nil {
		return q.recvErr(err)
	}
	return q.received(r.rerr)
}

// try receives r.k packets at most, without waiting; false means none was
// waiting (EAGAIN). The caller holds rsem.
func (r *receiver) try(d uintptr) bool {
	if r.k == 1 {
		s := &r.bufs[0]
		s.n, s.oobn, s.flags, r.rerr = recvPacket(int(d), s.buf, s.oob, 0)
		if r.rerr == nil {
			r.got = 1
		}
	} else {
		r.got, r.rerr = r.recvBatch(int(d), r.k)
	}
	return r.rerr != unix.EAGAIN
}

// received completes a receive: it counts the items of the packets kept
// for later.
func (q *engine) received(err error) error {
	r := &q.recv
	if err != nil {
		r.got = 0
		return q.recvErr(err)
	}
	n := 0
	for i := 0; i < r.got; i++ {
		s := &r.bufs[i]
		s.items = 1
		if s.oobn == 0 && !isBig(s.buf[:s.n]) {
			s.items = max(1, countFrames(s.buf[:s.n]))
		}
		n += s.items
	}
	r.frames = (3*r.frames + float64(n)/float64(r.got)) / 4
	r.queued.Add(int32(n))
	return nil
}

// recvBatch receives up to k packets with one recvmmsg.
func (r *receiver) recvBatch(sfd, k int) (int, error) {
	if len(r.hdrs) < k {
		r.hdrs = make([]unix.Mmsghdr, maxRecvBatch)
		r.iovs = make([]unix.Iovec, maxRecvBatch)
	}
	for i := 0; i < k; i++ {
		s := &r.bufs[i]
		r.iovs[i].Base = &s.buf[0]
		r.iovs[i].SetLen(len(s.buf))
		h := &r.hdrs[i].Hdr
		*h = unix.Msghdr{Iov: &r.iovs[i], Control: &s.oob[0]}
		h.SetIovlen(1)
		h.SetControllen(len(s.oob))
	}
	n, err := recvPackets(sfd, r.hdrs[:k])
	for i := 0; i < n; i++ {
		s, h := &r.bufs[i], &r.hdrs[i]
		s.n, s.oobn, s.flags = int(h.Len), int(h.Hdr.Controllen), int(h.Hdr.Flags)
	}
	return n, err
}

func (q *engine) recvErr(err error) error {
	switch {
	case err == nil:
		return nil
	case q.closed.Load() || errors.Is(err, os.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("receive: %w", err)
}

// unpack handles the packet in r.buf: it keeps its frames for takeLocal
// (ok false), or returns the large item it announces (ok true). A large
// item that is dropped also gives ok false.
func (q *engine) unpack(ctx context.Context, wait bool, n, oobn, flags int) (p []byte, ok bool, err error) {
	r := &q.recv
	cur := &r.bufs[r.cur]
	var fds []int
	if oobn > 0 {
		fds, err = rightsOf(cur.oob[:oobn])
		if err != nil {
			closeFDs(fds)
			return nil, false, fmt.Errorf("%w: ancillary data: %v", ErrCorrupt, err)
		}
	}
	p = cur.buf[:n]
	switch {
	case flags&unix.MSG_TRUNC != 0:
		closeFDs(fds)
		return nil, false, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxPacket)
	case len(fds) == 0 && isBig(p) && flags&unix.MSG_CTRUNC != 0:
		// The stub came with its pipe, and the kernel could not install
		// it: this process is at its descriptor limit (or the system at
		// its). The item is lost here, by this process's fault: give its
		// slot back, and tell the layer above.
		q.giveSlot()
		q.hooks.dropped(ctx, 1)
		return nil, false, fmt.Errorf("a large item was lost: this process could not receive its pipe (descriptor limit reached): %w", syscall.EMFILE)
	case len(fds) > 0 || isBig(p):
		if len(fds) != 1 || !isBig(p) || flags&unix.MSG_CTRUNC != 0 {
			closeFDs(fds)
			return nil, false, fmt.Errorf("%w: %d descriptor(s) with %d bytes", ErrCorrupt, len(fds), n)
		}
		return q.takeBig(ctx, wait, p, fds[0])
	}
	k := countFrames(p)
	if k <= 0 {
		return nil, false, fmt.Errorf("%w: %d bytes that are not whole frames", ErrCorrupt, n)
	}
	r.off, r.end = 0, n
	r.left.Store(int32(k))
	return nil, false, nil
}

// takeLocal returns the next frame kept from the last packet. A frame
// whose payload is not one well-formed msgpack value is no item a queue
// writes (a foreign process sent it): it is consumed and reported, and
// gives back no slot, since it took none.
func (q *engine) takeLocal() ([]byte, error) {
	r := &q.recv
	buf := r.bufs[r.cur].buf
	start, end, _ := nextFrame(buf[:r.end], r.off)
	r.off = end
	r.left.Add(-1)
	p := buf[start:end]
	if err := codec.Check(p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	q.giveSlot()
	r.taken++
	return p, nil
}

// giveSlot gives back the slot of an item a Get returns. It never fails
// the Get: a token pipe that is full already holds every free slot, and
// one that nobody reads any more (this process is the queue's last
// holder, closing) needs none. A pipe that holds maxsize tokens gets none:
// a genuine item holds a slot until this give, so that is an item a
// foreign process sent without taking one (well-formed, so indistinguishable
// from a genuine one otherwise), which must not raise the queue's capacity.
func (q *engine) giveSlot() {
	if q.tok != nil {
		if n, err := q.tok.count(); err == nil && n >= q.maxsize {
			return
		}
		q.tok.give(1)
	}
}

// maxBodyBuf is the largest payload buffer a receiver keeps between Gets.
const maxBodyBuf = 16 << 20

// bigItem is a large item whose body a Get is reading. A Get whose ctx
// ends while the body is still coming (its sender is slow, stopped, or
// keeps the pipe open without writing) leaves it here, and the next Get of
// this process goes on reading it; Close drops it.
type bigItem struct {
	br   bodyReader
	buf  []byte
	size int
}

// takeBig starts reading the large item announced by the stub p, whose
// pipe is bodyFD, and returns it if it arrives in time. The payload is
// read whole before it is decoded, so that it can be checked (see decode).
//
// Accounting: the slot of a large item (and joinable's count) is given
// back when the whole item arrived and goes to the caller, or when the
// item is lost by this process's fault (the kernel could not give it the
// pipe, see unpack). A body that ends early is dropped without giving
// anything back: a stub whose body ends early is what a foreign process
// forging packets sends, and it took no slot; a genuine producer killed
// mid-body loses its item with its slot (see the package documentation).
func (q *engine) takeBig(ctx context.Context, wait bool, p []byte, bodyFD int) (_ []byte, ok bool, err error) {
	size := binary.BigEndian.Uint64(p[4:bigHeader])
	inline := p[bigHeader:]
	if size > uint64(q.maxItem) || size < uint64(len(inline)) {
		unix.Close(bodyFD)
		return nil, false, fmt.Errorf("%w: large item of %d bytes", ErrCorrupt, size)
	}
	// The body must be a pipe, read without blocking: a foreign sender
	// may have passed a blocking one, whose read Close could not
	// interrupt, or anything else.
	var st unix.Stat_t
	if err := unix.Fstat(bodyFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(bodyFD)
		return nil, false, fmt.Errorf("%w: a large item's descriptor is not a pipe", ErrCorrupt)
	}
	if err := unix.SetNonblock(bodyFD, true); err != nil {
		unix.Close(bodyFD)
		return nil, false, fmt.Errorf("large item: %w", os.NewSyscallError("fcntl", err))
	}
	r := &q.recv
	buf := r.bodyBuf[:0]
	r.bodyBuf = nil
	if cap(buf) < int(size) {
		// Past 1 MiB the buffer grows with the data, whatever the stub
		// announced: a forged stub costs no more memory than the bytes
		// its sender actually writes.
		buf = make([]byte, 0, min(int(size), 1<<20))
	}
	// The stub's bytes are copied now: its buffer takes the next packet.
	buf = append(buf, inline...)
	r.big = &bigItem{
		br:   bodyReader{r: &r.receiverState, closed: &q.closed, fd: bodyFD, left: int(size) - len(inline)},
		buf:  buf,
		size: int(size),
	}
	r.bigWaiting.Store(1)
	return q.readBig(ctx, wait)
}

// readBig goes on reading r.big. It returns ok false and a nil error when
// the item was dropped (its body ended early), and leaves r.big in place
// when ctx ended first, or when wait is false and the body would block
// (ErrEmpty).
func (q *engine) readBig(ctx context.Context, wait bool) (p []byte, ok bool, err error) {
	r := &q.recv
	b := r.big
	if err := b.read(ctx, wait); err != nil {
		return nil, false, err
	}
	r.big = nil
	r.bigWaiting.Store(0)
	b.br.close()
	if b.br.err != nil || b.br.short {
		// Its sender died, or gave up, before writing all of it (or sent
		// a forged stub), or Close interrupted the read: the item is gone.
		return nil, false, b.br.err
	}
	payload := b.buf
	q.giveSlot()
	r.taken++
	r.held = payload // untake recycles it
	if cerr := codec.Check(payload); cerr != nil {
		return nil, true, fmt.Errorf("%w: %w", ErrCorrupt, cerr)
	}
	return payload, true, nil
}

// read reads the rest of the body into b.buf. It returns nil when the body
// is complete or ended (b.br.short, b.br.err), ctx.Err() when ctx ends
// first, and ErrEmpty when wait is false and the pipe has nothing.
func (b *bigItem) read(ctx context.Context, wait bool) error {
	br := &b.br
	for len(b.buf) < b.size && br.err == nil && !br.short {
		if len(b.buf) == cap(b.buf) {
			b.buf = append(b.buf, 0)[:len(b.buf)] // grow
		}
		n, err := br.read(ctx, wait, b.buf[len(b.buf):min(cap(b.buf), b.size)])
		b.buf = b.buf[:len(b.buf)+n]
		if err != nil {
			return err
		}
	}
	return nil
}

// bodyReader reads the pipe of a large item, without waiting while the
// pipe has data, in the poller (where ctx and Close interrupt it) when it
// has none.
type bodyReader struct {
	r      *receiverState
	closed *atomic.Bool
	fd     int      // the pipe, until close
	f      *os.File // the pipe, once waiting in the poller
	left   int      // bytes still to come through the pipe
	short  bool     // the pipe ended early: the sender died or gave up
	err    error    // Close interrupted the read, or another error
}

// read reads into p. It sets short or err when the body is over, and
// returns ctx.Err() or ErrEmpty (nothing read, body still coming) when it
// gives up waiting.
func (b *bodyReader) read(ctx context.Context, wait bool, p []byte) (int, error) {
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
		switch {
		case err == unix.EAGAIN && !wait:
			return 0, ErrEmpty
		case err == unix.EAGAIN:
			if err := b.wait(); err != nil {
				return 0, nil
			}
		case err != nil:
			err = os.NewSyscallError("read", err)
		}
	}
	if b.f != nil {
		if !wait {
			// One attempt, outside the poller.
			var rerr error
			rc, cerr := b.f.SyscallConn()
			if cerr == nil {
				cerr = rc.Control(func(d uintptr) {
					for {
						if n, rerr = unix.Read(int(d), p); rerr != unix.EINTR {
							return
						}
					}
				})
			}
			switch {
			case cerr != nil:
				err = cerr
			case rerr == unix.EAGAIN:
				return 0, ErrEmpty
			case rerr != nil:
				err = os.NewSyscallError("read", rerr)
			case n == 0:
				err = io.EOF
			}
		} else {
			stop := fd.WatchDeadline(ctx, b.f.SetReadDeadline)
			n, err = b.f.Read(p)
			if stop() && errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, ctx.Err()
			}
		}
	}
	n = max(n, 0)
	b.left -= n
	switch {
	case err == nil && n == 0, err == io.EOF:
		b.short = true
	case err != nil && (b.closed.Load() || errors.Is(err, os.ErrClosed)):
		b.err = ErrClosed
	case err != nil:
		b.err = fmt.Errorf("read large item: %w", err)
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

// dropBig drops the large item a Get left half read (Close).
func (r *receiver) dropBig() {
	if r.big != nil {
		r.big.br.close()
		r.big = nil
		r.bigWaiting.Store(0)
	}
}

// interrupt wakes a Get reading a large item's body.
func (r *receiver) interrupt() {
	r.bodyMu.Lock()
	defer r.bodyMu.Unlock()
	if r.body != nil {
		r.body.Close()
	}
}

// handBack gives back to the queue the items this process received and
// no Get took (Close): the frames left of the current packet and the
// packets received with it. They keep their slots, and skip the hooks:
// they were counted when first sent.
func (q *engine) handBack() error {
	r := &q.recv
	r.dropBig()
	var parcels []*parcel
	if k := int(r.left.Load()); k > 0 {
		c := getParcel()
		c.b = append(c.b[:0], r.bufs[r.cur].buf[r.off:r.end]...)
		c.n = k
		parcels = append(parcels, c)
		r.left.Store(0)
	}
	for ; r.next < r.got; r.next++ {
		s := &r.bufs[r.next]
		c := getParcel()
		c.b = append(c.b[:0], s.buf[:s.n]...)
		c.n = s.items
		if s.oobn > 0 {
			fds, err := rightsOf(s.oob[:s.oobn])
			if err != nil || len(fds) != 1 || !isBig(c.b) {
				// Not a packet of ours: drop it, as Get would have.
				closeFDs(fds)
				putParcel(c)
				continue
			}
			c.rights = fds[0]
		}
		parcels = append(parcels, c)
	}
	r.queued.Store(0)
	if len(parcels) == 0 {
		return nil
	}
	s := &q.send
	s.mu.Lock()
	for _, c := range parcels {
		c.handback, c.counted = true, true // counted when first sent: BeforeSend must not count them again
		s.backlog = append(s.backlog, c)
		s.queued += c.n
	}
	s.wake(q)
	s.mu.Unlock()
	return nil
}

var peekPool = sync.Pool{New: func() any { b := make([]byte, maxPacket); return &b }}

// estimateWaiting estimates the items waiting in the socket: its bytes
// (SIOCINQ) divided by the bytes per item of the first packet.
func (q *engine) estimateWaiting() int {
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
