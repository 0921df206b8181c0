package mq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// The sending side. A Put encodes its item in the caller, then, when
// nothing of this process waits to be sent, hands it to the kernel at
// once (one packet). When the socket is full it keeps the frame in the
// backlog, which one flusher goroutine drains in order; once a backlog
// exists, later Puts append to it, so that each producer's items stay in
// order. The flusher sends several frames per packet: how many is decided
// at send time by the pacer (see pacer).

// parcel is a run of frames of the backlog, or one large item.
type parcel struct {
	b        []byte  // frames
	n        int     // frames in b
	big      *encBuf // a large item
	prep     *bigSend
	handback bool // items Close gives back: they were counted when first sent
	counted  bool // BeforeSend already ran for these items (a Put's, or handback)
	rights   int  // a handed-back large item's pipe, sent with b; -1: none
}

var parcelPool = sync.Pool{New: func() any { return &parcel{b: make([]byte, 0, maxPacket), rights: -1} }}

func getParcel() *parcel { return parcelPool.Get().(*parcel) }

func putParcel(c *parcel) {
	if c.big != nil {
		return
	}
	c.b, c.n, c.handback, c.counted, c.rights = c.b[:0], 0, false, false, -1
	parcelPool.Put(c)
}

type sender struct {
	mu       sync.Mutex
	cond     sync.Cond // the flusher waits on it for work
	backlog  []*parcel
	queued   int  // items in backlog or being sent
	inFlight bool // the flusher is sending a parcel
	streams  int  // large items whose body is still being written
	started  bool // the flusher runs
	stopping bool
	dropping bool          // Close drops what is left (a Flush gave up)
	dropped  int           // items dropping cost
	room     chan struct{} // closed when queued falls to maxBuffered/2
	idle     chan struct{} // closed when nothing is left to send
	err      error         // first error of a buffered send, for the next call
	lost     int           // items that error cost
	wg       sync.WaitGroup

	batch atomic.Int32 // frames per packet, set by the pacer
	pace  pacer        // the flusher's

	bodyMu sync.Mutex
	bodies map[*os.File]bool // large items' bodies being written (a synchronous Put, a body writer)
}

// maxBuffered is the most items a producer of a bounded queue holds in
// its backlog (the packets being sent included). Each holds a slot from
// its Put on, so a producer killed with a backlog takes at most this many
// slots with it; a Put waits for room in the backlog before it takes a
// slot. A bound of one packet (64 items) was measured to double the CPU
// per item of a bounded queue whose consumers are the bottleneck (the
// flusher's packets shrink), 256 to add 40%; at 1024 it costs nothing
// measurable (BenchmarkStream/small-bounded1000).
const maxBuffered = 1024

func (s *sender) init() {
	s.cond.L = &s.mu
	s.batch.Store(1)
	s.bodies = make(map[*os.File]bool)
}

func (s *sender) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// takeErr returns, once, the error of an earlier buffered send.
func (s *sender) takeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	err := fmt.Errorf("%d item(s) put earlier were not sent: %w", s.lost, s.err)
	s.err, s.lost = nil, 0
	return err
}

// fail records that n buffered items were not sent because of err, and
// frees their slots. Items that Close dropped are counted apart (see
// Close).
func (s *sender) fail(q *engine, n int, err error) {
	if q.tok != nil {
		if gerr := q.tok.give(n); gerr != nil {
			err = errors.Join(err, gerr)
		}
	}
	s.mu.Lock()
	if s.dropping {
		s.dropped += n
	} else {
		if s.err == nil {
			s.err = err
		}
		s.lost += n
	}
	s.mu.Unlock()
}

func (s *sender) checkIdle() {
	if s.idle != nil && len(s.backlog) == 0 && !s.inFlight && s.streams == 0 {
		close(s.idle)
		s.idle = nil
	}
}

// put sends e, an item its caller (Queue.put) encoded; the caller is
// inside a call (enter) and releases e.
func (q *engine) put(ctx context.Context, e *encBuf, wait bool) error {
	if err := q.send.takeErr(); err != nil {
		return err
	}
	if q.sync {
		return q.putSync(ctx, e, wait)
	}
	if q.tok == nil {
		return q.closedOr(q.send.put(ctx, q, e))
	}
	for {
		// A bounded queue's producer buffers at most maxBuffered items:
		// wait for room in the backlog (holding no slot), then take a slot.
		if err := q.send.waitRoom(ctx, q, wait); err != nil {
			return err
		}
		if err := q.takeSlot(ctx, wait); err != nil {
			return err
		}
		err := q.send.put(ctx, q, e)
		if err == nil {
			return nil
		}
		q.tok.give(1)
		if err != errNoRoom {
			return q.closedOr(err)
		}
	}
}

// errNoRoom: a bounded queue's backlog filled up again meanwhile.
var errNoRoom = errors.New("backlog full")

// waitRoom waits while this process's backlog holds maxBuffered items.
func (s *sender) waitRoom(ctx context.Context, q *engine, wait bool) error {
	s.mu.Lock()
	for s.queued >= maxBuffered {
		if !wait {
			s.mu.Unlock()
			return ErrFull
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-q.done:
			return ErrClosed
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// closedOr returns ErrClosed for an error of a call that Close raced
// (a send that found this process's own ends closed, the last ones of the
// queue), and err otherwise.
func (q *engine) closedOr(err error) error {
	if err != nil && q.closed.Load() && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return ErrClosed
	}
	return err
}

// takeSlot takes a free slot of a bounded queue.
func (q *engine) takeSlot(ctx context.Context, wait bool) error {
	ok, err := q.tok.tryTake()
	if err != nil || ok {
		return q.slotErr(err)
	}
	if !wait {
		return ErrFull
	}
	if err := q.acquire(ctx, q.ssem); err != nil {
		return err
	}
	defer func() { <-q.ssem }()
	return q.slotErr(q.tok.take(ctx))
}

// slotErr reports ErrClosed for a token pipe that Close closed under a
// take: the poller then returns its own "use of closed file", which is
// not os.ErrClosed.
func (q *engine) slotErr(err error) error {
	if err != nil && q.closed.Load() {
		return ErrClosed
	}
	return err
}

// put sends e now if nothing of this process waits to be sent, and
// buffers it otherwise. BeforeSend runs without s.mu, with the caller's
// ctx: it may wait for another process (joinable's count), and nothing of
// this process may wait behind it.
func (s *sender) put(ctx context.Context, q *engine, e *encBuf) error {
	s.mu.Lock()
	direct := len(s.backlog) == 0 && !s.inFlight
	if !direct && q.tok != nil && s.queued >= maxBuffered {
		s.mu.Unlock()
		return errNoRoom
	}
	if !direct {
		s.enqueue(q, e, nil, false)
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if err := q.hooks.beforeSend(ctx, 1); err != nil {
		return err
	}
	s.mu.Lock()
	var prep *bigSend
	if len(s.backlog) == 0 && !s.inFlight {
		sent, p, err := q.sendNow(e)
		if sent {
			s.mu.Unlock()
			return nil
		}
		if err != nil {
			s.mu.Unlock()
			q.hooks.sendFailed(ctx, 1)
			return err
		}
		prep = p
	}
	// Counted already: the flusher sends it without BeforeSend.
	s.enqueue(q, e, prep, true)
	s.mu.Unlock()
	return nil
}

// sendNow tries to send e, which BeforeSend counted, without waiting. It
// returns sent false and no error when the socket is full; for a large
// item, prep is then the pipe already prepared. The caller holds s.mu
// (nothing here waits).
func (q *engine) sendNow(e *encBuf) (sent bool, prep *bigSend, err error) {
	if !e.big() {
		serr := sendPacket(q.sndFD, e.frame(), -1) // see putSync
		if serr == nil {
			return true, nil, nil
		}
		if serr == unix.EAGAIN {
			return false, nil, nil
		}
		return false, nil, q.sendError(serr)
	}
	bs, err := prepareBig(e.payload())
	if err != nil {
		return false, nil, err
	}
	var serr error
	if err := q.sndRC.Control(func(d uintptr) { serr = bs.sendStub(int(d)) }); err != nil {
		serr = err
	}
	if serr == nil {
		q.send.finishBigLocked(q, bs, e, false)
		return true, nil, nil
	}
	if serr == unix.EAGAIN {
		return false, bs, nil
	}
	bs.close()
	return false, nil, q.sendError(serr)
}

// enqueue appends e to the backlog. The caller holds s.mu.
func (s *sender) enqueue(q *engine, e *encBuf, prep *bigSend, counted bool) {
	if e.big() {
		s.backlog = append(s.backlog, &parcel{big: e.keep(), prep: prep, counted: counted, rights: -1})
	} else {
		f := e.frame()
		var last *parcel
		if k := len(s.backlog); k > 0 {
			last = s.backlog[k-1]
		}
		if last == nil || last.big != nil || last.handback || last.counted != counted || len(last.b)+len(f) > maxPacket {
			last = getParcel()
			last.counted = counted
			s.backlog = append(s.backlog, last)
		}
		last.b = append(last.b, f...)
		last.n++
	}
	s.queued++
	s.wake(q)
}

// wake starts the flusher or tells it there is work. The caller holds s.mu.
func (s *sender) wake(q *engine) {
	if !s.started {
		s.started = true
		s.wg.Add(1)
		go s.run(q)
		return
	}
	s.cond.Signal()
}

// run is the flusher: it sends the backlog in order until Close.
func (s *sender) run(q *engine) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		for len(s.backlog) == 0 {
			s.inFlight = false
			s.pace.active = false
			s.checkIdle()
			if s.stopping {
				s.mu.Unlock()
				return
			}
			s.cond.Wait()
		}
		c := s.backlog[0]
		s.backlog[0] = nil
		s.backlog = s.backlog[1:]
		if len(s.backlog) == 0 {
			s.backlog = s.backlog[:0:0] // let the array go
		}
		s.inFlight = true
		s.mu.Unlock()
		s.sendParcel(q, c)
	}
}

// sendParcel sends the frames of c in packets of at most s.batch frames, or
// its large item. While Close drops (dropping), it sends only what the
// socket takes at once, and only items already counted.
func (s *sender) sendParcel(q *engine, c *parcel) {
	ctx := q.flushCtx
	if c.big != nil {
		s.sendBig(q, c)
		return
	}
	if c.rights >= 0 {
		// A large item's stub handed back by Close, with its pipe.
		waited, err := q.flusherSend(nil, c.b, c.rights)
		unix.Close(c.rights)
		if err != nil {
			s.lose(q, c, 1, err)
		}
		s.sent(1, waited)
		putParcel(c)
		return
	}
	for off := 0; off < len(c.b); {
		k := int(s.batch.Load())
		end, n := off, 0
		for n < k && end < len(c.b) {
			_, end, _ = nextFrame(c.b, end)
			n++
		}
		if !c.counted {
			if s.isDropping() {
				s.fail(q, n, ErrDropped)
				s.sent(n, false)
				off = end
				continue
			}
			if err := q.hooks.beforeSend(ctx, n); err != nil {
				s.fail(q, n, err)
				s.sent(n, false)
				off = end
				continue
			}
		}
		waited, err := q.flusherSend(nil, c.b[off:end], -1)
		if err != nil {
			s.lose(q, c, n, err)
		}
		s.sent(n, waited)
		off = end
	}
	putParcel(c)
}

// lose accounts for n counted items of c that could not be sent.
func (s *sender) lose(q *engine, c *parcel, n int, err error) {
	if !c.handback {
		q.hooks.sendFailed(q.flushCtx, n)
		s.fail(q, n, err)
		return
	}
	// Items this process received and no Get took: not its puts, so no
	// error of its Puts; lost unless nobody holds the queue any more (then
	// nobody could have got them).
	q.hooks.dropped(q.flushCtx, n)
	if q.tok != nil {
		q.tok.give(n)
	}
	if !fd.IsPeerClosed(err) {
		s.mu.Lock()
		if s.dropping {
			s.dropped += n
		}
		s.mu.Unlock()
	}
}

func (s *sender) isDropping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropping
}

// flusherSend sends hdr+p as one packet, waiting for room unless Close
// drops the backlog: then it tries once.
func (q *engine) flusherSend(hdr, p []byte, rights int) (waited bool, err error) {
	if !q.send.isDropping() {
		return q.sendWait(hdr, p, rights)
	}
	var serr error
	if err := q.sndRC.Control(func(d uintptr) {
		if len(hdr) == 0 {
			serr = sendPacket(int(d), p, rights)
		} else {
			serr = sendGather(int(d), hdr, p, rights)
		}
	}); err != nil {
		return false, closedErr(err)
	}
	if serr == unix.EAGAIN {
		return false, ErrDropped
	}
	if serr != nil {
		return false, q.sendError(serr)
	}
	return false, nil
}

func (s *sender) sendBig(q *engine, c *parcel) {
	bs := c.prep
	if !c.counted {
		err := error(ErrDropped)
		if !s.isDropping() {
			err = q.hooks.beforeSend(q.flushCtx, 1)
		}
		if err != nil {
			if bs != nil {
				bs.close()
			}
			c.big.release()
			s.fail(q, 1, err)
			s.sent(1, false)
			return
		}
	}
	if bs == nil {
		var err error
		if bs, err = prepareBig(c.big.payload()); err != nil {
			c.big.release()
			q.hooks.sendFailed(q.flushCtx, 1)
			s.fail(q, 1, err)
			s.sent(1, false)
			return
		}
	}
	waited, err := q.flusherSend(bs.hdr[:], bs.inline, bs.r)
	if err != nil {
		bs.close()
		c.big.release()
		q.hooks.sendFailed(q.flushCtx, 1)
		s.fail(q, 1, err)
	} else {
		s.mu.Lock()
		s.finishBigLocked(q, bs, c.big, true)
		s.mu.Unlock()
	}
	s.sent(1, waited)
}

// sent accounts for n items that left the flusher's hands.
func (s *sender) sent(n int, waited bool) {
	s.pace.sent(n, waited, &s.batch)
	s.mu.Lock()
	s.queued -= n
	// Wake a Put waiting for room only once half the backlog is gone, so
	// that it and the flusher do not take turns item by item.
	if s.room != nil && s.queued <= maxBuffered/2 {
		close(s.room)
		s.room = nil
	}
	s.mu.Unlock()
}

// finishBigLocked completes a large item whose stub is sent: the rest of
// its body, if the pipe could not take all of it at once, is written by a
// goroutine that Flush and Close wait for, which then owns e (owned: e
// belongs to the backlog, not to a Put). The caller holds s.mu.
func (s *sender) finishBigLocked(q *engine, bs *bigSend, e *encBuf, owned bool) {
	unix.Close(bs.r)
	bs.r = -1
	if len(bs.rest) == 0 {
		unix.Close(bs.w)
		if owned {
			e.release()
		}
		return
	}
	if !owned {
		e.keep() // bs.rest points into it; owned: the backlog's hold passes on
	}
	f := os.NewFile(uintptr(bs.w), "mproc:queue-item")
	rest := bs.rest
	s.streams++
	s.bodyMu.Lock()
	s.bodies[f] = true
	s.bodyMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// An error means the receiver died or closed mid-item (the item
		// was its, and is lost with it), or that Close dropped it.
		_, err := f.Write(rest)
		s.bodyMu.Lock()
		delete(s.bodies, f)
		s.bodyMu.Unlock()
		f.Close()
		e.release()
		s.mu.Lock()
		if err != nil && s.dropping && errors.Is(err, os.ErrClosed) {
			s.dropped++
		}
		s.streams--
		s.checkIdle()
		s.mu.Unlock()
	}()
}

// sendWait sends hdr+p as one packet, waiting for room in the poller.
func (q *engine) sendWait(hdr, p []byte, rights int) (waited bool, err error) {
	var serr error
	err = q.sndRC.Write(func(d uintptr) bool {
		if len(hdr) == 0 {
			serr = sendPacket(int(d), p, rights)
		} else {
			serr = sendGather(int(d), hdr, p, rights)
		}
		if serr == unix.EAGAIN {
			waited = true
			return false
		}
		return true
	})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && q.send.isDropping() {
			return waited, ErrDropped
		}
		return waited, closedErr(err)
	}
	if serr != nil {
		return waited, q.sendError(serr)
	}
	return waited, nil
}

// sendError describes a failed send. When this process is closing and
// held the queue's last receiving end, the send failed because of that:
// ErrClosed.
func (q *engine) sendError(err error) error {
	if fd.IsPeerClosed(err) {
		if q.closed.Load() {
			return fmt.Errorf("%w (no other process has the queue open): %w", ErrClosed, err)
		}
		return fmt.Errorf("no process has the queue open any more: %w", err)
	}
	return fmt.Errorf("send: %w", err)
}

// Flush waits until every item this process put is in the kernel, where
// other processes can get it and where it survives this process's exit.
// It returns ctx.Err() when ctx ends first (the items stay buffered and
// are still sent), ErrClosed after Close, and otherwise the error of an
// earlier buffered send, if any.
func (q *engine) Flush(ctx context.Context) error {
	if !q.enter() {
		return ErrClosed
	}
	defer q.exit()
	s := &q.send
	s.mu.Lock()
	var ch chan struct{}
	if len(s.backlog) > 0 || s.inFlight || s.streams > 0 {
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		ch = s.idle
	}
	s.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			// Close will not wait for these items again: see Close.
			q.gaveUp.Store(true)
			return ctx.Err()
		case <-q.done:
			return ErrClosed
		}
	}
	return s.takeErr()
}

// drop makes the flusher drop what it cannot send at once, and interrupts
// its wait for room, its hooks and the body writers (Close, after a Flush
// gave up).
func (s *sender) drop(q *engine) {
	s.mu.Lock()
	s.dropping = true
	s.mu.Unlock()
	q.cancelFlush()
	s.interrupt()
}

// stop lets the flusher send what is left, and joins it and the body
// writers.
func (s *sender) stop() error {
	s.mu.Lock()
	s.stopping = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
	err := s.takeErr()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped > 0 {
		err = errors.Join(err, fmt.Errorf("%w: Close dropped %d item(s) this process had put and not sent (a Flush had given up on them)", ErrDropped, s.dropped))
		s.dropped = 0
	}
	return err
}

// interrupt closes the bodies being written (synchronous Puts, body
// writers).
func (s *sender) interrupt() {
	s.bodyMu.Lock()
	defer s.bodyMu.Unlock()
	for f := range s.bodies {
		f.Close()
	}
}

// putSync sends e in the caller (NewSync): when it returns nil, the item
// is in the kernel.
func (q *engine) putSync(ctx context.Context, e *encBuf, wait bool) error {
	if err := q.hooks.beforeSend(ctx, 1); err != nil {
		return err
	}
	if !e.big() {
		// The common case, without the poller's bookkeeping: snd stays
		// open while any call is under way (Close closes it last).
		serr := sendPacket(q.sndFD, e.frame(), -1)
		if serr == nil {
			return nil
		}
		if serr == unix.EAGAIN && wait {
			serr = q.waitSend(ctx, func(d uintptr) error { return sendPacket(int(d), e.frame(), -1) })
		} else if serr == unix.EAGAIN {
			serr = ErrFull
		} else {
			serr = q.sendError(serr)
		}
		if serr != nil {
			q.hooks.sendFailed(ctx, 1)
		}
		return serr
	}
	bs, err := prepareBig(e.payload())
	if err != nil {
		q.hooks.sendFailed(ctx, 1)
		return err
	}
	defer bs.close()
	send := func(d uintptr) error { return bs.sendStub(int(d)) }
	var serr error
	if err := q.sndRC.Control(func(d uintptr) { serr = send(d) }); err != nil {
		serr = closedErr(err)
	}
	if serr == unix.EAGAIN {
		if !wait {
			serr = ErrFull
		} else {
			serr = q.waitSend(ctx, send)
		}
	} else if serr != nil {
		serr = q.sendError(serr)
	}
	if serr != nil {
		q.hooks.sendFailed(ctx, 1)
		return serr
	}
	return q.streamBody(bs)
}

// waitSend waits for room and sends, honouring ctx and Close. The caller
// holds no lock; ssem makes it the only waiter on snd in this process, so
// it owns snd's write deadline.
func (q *engine) waitSend(ctx context.Context, send func(uintptr) error) error {
	if err := q.acquire(ctx, q.ssem); err != nil {
		return err
	}
	defer func() { <-q.ssem }()
	if q.closed.Load() {
		return ErrClosed
	}
	stop := fd.WatchDeadline(ctx, q.snd.SetWriteDeadline)
	var serr error
	err := q.sndRC.Write(func(d uintptr) bool {
		serr = send(d)
		return serr != unix.EAGAIN
	})
	fired := stop()
	switch {
	case err == nil && serr == nil:
		return nil
	case err == nil:
		return q.sendError(serr)
	case errors.Is(err, os.ErrDeadlineExceeded) && fired:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded) && q.closed.Load():
		return ErrClosed
	}
	return closedErr(err)
}

// streamBody writes the rest of a large item in the caller of a
// synchronous Put. Close interrupts it; the item is then lost (its
// receiver drops it).
func (q *engine) streamBody(bs *bigSend) error {
	unix.Close(bs.r)
	bs.r = -1
	if len(bs.rest) == 0 {
		return nil
	}
	f := os.NewFile(uintptr(bs.w), "mproc:queue-item")
	bs.w = -1
	s := &q.send
	s.bodyMu.Lock()
	if q.closed.Load() {
		s.bodyMu.Unlock()
		f.Close()
		return ErrClosed
	}
	s.bodies[f] = true
	s.bodyMu.Unlock()
	_, err := f.Write(bs.rest)
	s.bodyMu.Lock()
	delete(s.bodies, f)
	s.bodyMu.Unlock()
	f.Close()
	switch {
	case err == nil:
		return nil
	case q.closed.Load() || errors.Is(err, os.ErrClosed):
		return ErrClosed
	case fd.IsPeerClosed(err):
		return fmt.Errorf("item lost: the process that took it stopped reading it: %w", err)
	}
	return fmt.Errorf("send: %w", err)
}

// pacer sets how many frames the flusher puts in a packet. Several frames
// per packet save the consumers a system call each, which matters only
// when an item takes them little time; but the frames of a packet go to
// one consumer, which keeps the extras for its next Gets, while other
// consumers may be idle. So the pacer measures, while the consumers are
// the bottleneck (the socket is full), the rate at which they drain the
// queue, and sizes packets to about strandBudget of their work: many
// frames for fast consumers, one for slow ones.
//
// The rate is measured from one send that had to wait for room to a later
// one: in between, the flusher sent what the consumers had drained.
// Measuring a shorter span would time the flusher's own burst of sends.
type pacer struct {
	active bool
	start  time.Time
	items  int
}

const (
	strandBudget = 100 * time.Microsecond
	paceWindow   = 2 * time.Millisecond
)

func (p *pacer) sent(n int, waited bool, batch *atomic.Int32) {
	if waited {
		now := time.Now()
		switch el := now.Sub(p.start); {
		case !p.active:
			p.active, p.start, p.items = true, now, 0
		case el >= paceWindow:
			k := int(float64(p.items) / el.Seconds() * strandBudget.Seconds())
			batch.Store(int32(max(1, min(k, maxFrames))))
			p.start, p.items = now, 0
		}
	}
	if p.active {
		p.items += n
	}
}
