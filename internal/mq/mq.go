package mq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/codec"
	"github.com/mproc-go/mproc/internal/fd"
)

var (
	// ErrClosed is returned by every call on a Queue after Close, and by a
	// call that Close interrupted. Test with errors.Is.
	ErrClosed = errors.New("closed")
	// ErrItemType is returned by FromFiles for a queue whose items have
	// another msgpack shape than T (see shape.go). Test with errors.Is.
	ErrItemType = errors.New("another item type")
	// ErrDropped is returned by Close when it dropped items this process
	// put and had not sent, because an earlier Flush gave up on them (its
	// ctx ended); the message says how many. Test with errors.Is.
	ErrDropped = errors.New("items dropped")
	// ErrFull is returned by TryPut when the queue holds maxsize items (or,
	// for a synchronous queue, when the socket is full). Test with errors.Is.
	ErrFull = errors.New("full")
	// ErrEmpty is returned by TryGet when no item is waiting. Test with
	// errors.Is.
	ErrEmpty = errors.New("empty")
	// ErrTooLarge is returned by Put for an item whose encoding exceeds
	// MaxItemSize. Test with errors.Is.
	ErrTooLarge = errors.New("item too large")
	// ErrMaxsize is returned by New for a maxsize the system cannot
	// support. Test with errors.Is.
	ErrMaxsize = errors.New("maxsize not supported")
	// ErrCorrupt is returned by Get for a packet no mq writer produces; the
	// packet is discarded and the queue stays usable. Test with errors.Is.
	ErrCorrupt = errors.New("malformed packet")
	// ErrTooDeep is returned by Get, wrapped with ErrCorrupt, for an item
	// whose msgpack arrays and maps nest more than codec.MaxDepth (10,000)
	// levels; the item is discarded before decoding. Test with errors.Is.
	ErrTooDeep = codec.ErrTooDeep
)

// Hooks let a layer above (joinable) account for items as they cross
// process boundaries. Every field may be nil. Hooks run in the goroutine
// that sends or receives (a Put, the flusher, a Get); they must not call
// the Queue. The engine holds no lock of its own while a hook runs, so a
// hook may wait (for another process) as long as its ctx allows.
//
// The ctx a hook gets is its caller's: a Put's own ctx; for TryPut, one
// that Origin reports as OriginTry; for the flusher, one that Origin
// reports as OriginFlusher and that ends when Close gives up on the
// backlog (see Close). A hook that waits must return when ctx ends; it may
// bound the wait further (joinable ends a Put's wait when it is closed).
type Hooks struct {
	// BeforeSend runs before a packet carrying n items is handed to the
	// kernel, i.e. before any of them can be received by any process. If it
	// returns an error, that packet is not sent and the error goes to the
	// Put that produced it (for items sent later by the flusher: to the
	// next Put/Flush/Close of this process). Items that Close hands back to
	// the queue (received here, never taken) are sent again without
	// BeforeSend: they were counted when first sent.
	BeforeSend func(ctx context.Context, n int) error
	// SendFailed runs when a packet for which BeforeSend returned nil was
	// not delivered.
	SendFailed func(ctx context.Context, n int)
	// BeforeBlock runs in Get, in the calling goroutine, right before it
	// would block waiting for an item.
	BeforeBlock func()
	// Dropped runs when n items that were sent (and counted by BeforeSend)
	// are lost without reaching a Get caller by this process's doing: a
	// large item whose pipe the kernel could not give this process
	// (descriptor limit), items Close hands back and could not send. It
	// does not run for packets no mq writer produces, nor for a large item
	// whose body ended early (a forged stub looks the same as the item of
	// a producer killed mid-body), nor for one whose body Close
	// interrupted: those took nothing that can be told apart from a
	// forgery, and they give nothing back.
	Dropped func(ctx context.Context, n int)
}

// Origin tells a hook which call of the engine runs it.
type Origin int

const (
	// OriginCall: a Put (the ctx is the Put's), or a Get.
	OriginCall Origin = iota
	// OriginTry: TryPut, which has no ctx of its own.
	OriginTry
	// OriginFlusher: the goroutine that sends the backlog, also while
	// Close flushes it.
	OriginFlusher
)

type originKey struct{}

// OriginOf returns the Origin of a hook's ctx.
func OriginOf(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

// tryCtx is the ctx of TryPut's hooks.
var tryCtx = context.WithValue(context.Background(), originKey{}, OriginTry)

func (h *Hooks) beforeSend(ctx context.Context, n int) error {
	if h.BeforeSend == nil {
		return nil
	}
	return h.BeforeSend(ctx, n)
}

func (h *Hooks) sendFailed(ctx context.Context, n int) {
	if h.SendFailed != nil && n > 0 {
		h.SendFailed(ctx, n)
	}
}

func (h *Hooks) dropped(ctx context.Context, n int) {
	if h.Dropped != nil && n > 0 {
		h.Dropped(ctx, n)
	}
}

// engine is the queue without its item type: it moves encoded frames
// (encBuf in, checked payloads out) and holds everything but the decode
// of one item (see Queue, typed.go). Its methods are safe for use by
// several goroutines, as Queue's.
type engine struct {
	snd, rcv   *os.File // the socketpair: items are sent on snd, received on rcv
	sndFD      int      // snd's descriptor, open until Close has waited for every call
	sndRC      syscall.RawConn
	rcvRC      syscall.RawConn
	tok        *tokens // nil when unbounded
	maxsize    int
	sync       bool // Put sends in the caller and waits for room
	hooks      Hooks
	files      []*os.File
	atexit     atexit.Handle
	maxItem    int64
	ssem, rsem chan struct{} // one sender waiting for room, one receiver

	send sender
	recv receiver

	// flushCtx is the ctx of the flusher's hooks; cancelFlush ends it when
	// Close drops the backlog. gaveUp: a Flush returned on its ctx.
	flushCtx    context.Context
	cancelFlush context.CancelFunc
	gaveUp      atomic.Bool

	life      sync.RWMutex // calls hold it for reading; Close waits for them
	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// MaxItemSize is the largest encoded item a queue carries: 1 GiB, the
// default maximum of conn.
const MaxItemSize = 1 << 30

// New creates a queue. maxsize <= 0 makes it unbounded; otherwise Put
// blocks while maxsize items are in the queue, and New fails with
// ErrMaxsize when the token pipe cannot hold maxsize tokens.
func New[T any](maxsize int, h Hooks) (*Queue[T], error) {
	return typed[T](newQueue(maxsize, false, h, typeOf[T]()))
}

// NewSync creates an unbounded queue whose Put is synchronous in every
// process that opens it: when Put returns, the item is in the kernel, and
// Put waits while the socket is full. Nothing is ever buffered in the
// process, so Flush has nothing to do. This is SimpleQueue.
func NewSync[T any](h Hooks) (*Queue[T], error) {
	return typed[T](newQueue(0, true, h, typeOf[T]()))
}

func newQueue(maxsize int, sync bool, h Hooks, typ typeInfo) (*engine, error) {
	if maxsize < 0 {
		maxsize = 0
	}
	snd, rcv, err := fd.Socketpair(unix.SOCK_SEQPACKET, "mproc:queue")
	if err != nil {
		return nil, err
	}
	files := []*os.File{snd, rcv}
	var tok *tokens
	if maxsize > 0 {
		tok, err = newTokens(maxsize)
		if err != nil {
			snd.Close()
			rcv.Close()
			return nil, err
		}
		files = append(files, tok.r, tok.w)
	}
	if err := writeMeta(rcv, meta{maxsize: maxsize, sync: sync, typ: typ}); err != nil {
		closeAll(files)
		return nil, err
	}
	q, err := open(files, meta{maxsize: maxsize, sync: sync}, tok, h)
	if err != nil {
		closeAll(files)
		return nil, err
	}
	return q, nil
}

// FromFiles opens, in a child process, the queue whose Files a parent
// shared, in the same order. It takes ownership of files: they are closed
// on error and by Close.
func FromFiles[T any](files []*os.File, h Hooks) (*Queue[T], error) {
	q, err := fromFiles(files, h, typeOf[T]())
	if err != nil {
		closeAll(files)
		return nil, err
	}
	return typed[T](q, nil)
}

func fromFiles(files []*os.File, h Hooks, want typeInfo) (*engine, error) {
	if len(files) != 2 && len(files) != 4 {
		return nil, fmt.Errorf("a queue has 2 or 4 descriptors, got %d", len(files))
	}
	for i, f := range files {
		// A parent in another language may have left them blocking.
		f, err := fd.Pollable(f)
		if err != nil {
			files[i] = nil
			return nil, fmt.Errorf("descriptor %d: %w", i, err)
		}
		files[i] = f
		in, err := fd.FileStat(f)
		if err != nil {
			return nil, fmt.Errorf("descriptor %d: %w", i, err)
		}
		if i < 2 && (!in.Socket || in.SockType != unix.SOCK_SEQPACKET) {
			return nil, fmt.Errorf("descriptor %d is not a SOCK_SEQPACKET socket", i)
		}
		if i >= 2 && in.Socket {
			return nil, fmt.Errorf("descriptor %d is not a pipe", i)
		}
	}
	m, err := readMeta(files[0])
	if err != nil {
		return nil, err
	}
	if m.typed && !m.typ.compatible(want) {
		return nil, fmt.Errorf("%w: the queue's items are %s, not %s: their msgpack shapes differ (see Inherit)", ErrItemType, m.typ.name, want.name)
	}
	if (m.maxsize > 0) != (len(files) == 4) {
		return nil, fmt.Errorf("queue with maxsize %d shared with %d descriptors", m.maxsize, len(files))
	}
	var tok *tokens
	if m.maxsize > 0 {
		tok = &tokens{r: files[2], w: files[3], maxsize: m.maxsize}
	}
	return open(files, m, tok, h)
}

func open(files []*os.File, m meta, tok *tokens, h Hooks) (*engine, error) {
	q := &engine{
		snd: files[0], rcv: files[1], tok: tok,
		maxsize: m.maxsize, sync: m.sync, hooks: h,
		files: files, maxItem: MaxItemSize,
		ssem: make(chan struct{}, 1), rsem: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	var err error
	if q.sndRC, err = q.snd.SyscallConn(); err != nil {
		return nil, err
	}
	q.sndRC.Control(func(d uintptr) { q.sndFD = int(d) })
	if q.rcvRC, err = q.rcv.SyscallConn(); err != nil {
		return nil, err
	}
	if tok != nil {
		if err := tok.init(); err != nil {
			return nil, err
		}
	}
	q.flushCtx, q.cancelFlush = context.WithCancel(context.WithValue(context.Background(), originKey{}, OriginFlusher))
	q.send.init()
	q.atexit = atexit.RegisterCounted(q.Flush, q.send.pending)
	return q, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// Files returns the descriptors that make up the queue, in the order
// FromFiles expects: the two ends of the socketpair, then, for a bounded
// queue, the two ends of the token pipe. They remain the Queue's: do not
// close them.
func (q *engine) Files() []*os.File { return q.files }

// Maxsize returns the queue's maxsize, 0 when unbounded.
func (q *engine) Maxsize() int { return q.maxsize }

// Sync reports whether Put is synchronous (NewSync).
func (q *engine) Sync() bool { return q.sync }

// enter starts a call; it returns false once Close has begun.
func (q *engine) enter() bool {
	if q.closed.Load() {
		return false
	}
	q.life.RLock()
	if q.closed.Load() {
		q.life.RUnlock()
		return false
	}
	return true
}

func (q *engine) exit() { q.life.RUnlock() }

// acquire takes a one-slot semaphore, giving up on ctx or Close.
func (q *engine) acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-q.done:
		return ErrClosed
	}
}

// Qsize returns the number of items in the queue.
//
// For a bounded queue it is exact when no call is under way in any
// process: every item put and not yet returned by a Get holds one of the
// maxsize slots, wherever it is (in the socket, in a producer's buffer, in
// a consumer's local batch). For an unbounded queue no count is kept,
// because keeping one costs a system call per item in every process: Qsize
// adds the items buffered in this process to an estimate of the items in
// the socket, made from the bytes waiting there (SIOCINQ) and the size of
// the first waiting packet. It is exact when the waiting items all encode
// to the same size, as they usually do.
//
// After Close, Qsize returns 0.
func (q *engine) Qsize() int {
	if !q.enter() {
		return 0
	}
	defer q.exit()
	if q.tok != nil {
		n, err := q.tok.count()
		if err != nil {
			return 0
		}
		return max(0, q.maxsize-n)
	}
	return q.send.pending() + q.recv.pending() + q.estimateWaiting()
}

// Empty reports whether the queue holds no item. For a bounded queue it is
// exact when no call is under way; for an unbounded one it reports that
// neither this process's buffers nor the socket hold anything (items
// buffered in other processes are not seen). After Close it returns true.
func (q *engine) Empty() bool {
	if !q.enter() {
		return true
	}
	defer q.exit()
	if q.tok != nil {
		n, err := q.tok.count()
		return err != nil || n >= q.maxsize
	}
	if q.send.pending() > 0 || q.recv.pending() > 0 {
		return false
	}
	n, err := q.inQueue()
	return err != nil || n == 0
}

// Full reports whether a bounded queue holds maxsize items (exact when no
// call is under way). It is always false for an unbounded queue and after
// Close.
func (q *engine) Full() bool {
	if q.tok == nil || !q.enter() {
		return false
	}
	defer q.exit()
	n, err := q.tok.count()
	return err == nil && n == 0
}

func (q *engine) inQueue() (int, error) {
	var n int
	var err error
	if cerr := q.rcvRC.Control(func(d uintptr) { n, err = fd.InQueue(int(d), true) }); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// Close flushes what this process put, hands back to the queue the items
// this process received and no Get took, and releases this process's
// descriptors. It wakes, with ErrClosed, every call of this process
// blocked on the queue, and joins the goroutines the Queue started. Other
// processes keep their own descriptors and go on.
//
// The flush waits as long as it takes (while the queue is full and nobody
// gets), unless a Flush of this process returned on its ctx before: then
// Close does not wait again. It sends what the socket takes at once, drops
// the rest (the backlog, the packet being sent, the large items whose
// bodies are still being written), gives their slots back, and returns an
// error wrapping ErrDropped that says how many items it dropped. So
// Flush(ctx) then Close bounds Close.
//
// Close is idempotent and safe to call concurrently; every call returns
// the result of the first: an error of an earlier buffered send, of the
// flush, or ErrDropped.
func (q *engine) Close() error {
	q.closeOnce.Do(func() {
		q.closed.Store(true)
		close(q.done)
		atexit.Unregister(q.atexit)
		drop := q.gaveUp.Load()
		// Wake the blocked callers: Gets wait on rcv (and perhaps an item's
		// body), Puts on the token pipe or, when synchronous, on snd.
		q.rcv.Close()
		q.recv.interrupt()
		if q.tok != nil {
			q.tok.r.Close()
		}
		if drop {
			// Dropping first: a send that the deadline below interrupts
			// must count its items as dropped, not as failed.
			q.send.drop(q)
		}
		if q.sync || drop {
			q.snd.SetWriteDeadline(aLongTimeAgo)
			q.send.interrupt()
		}
		// Wait until every call has returned.
		q.life.Lock()
		//lint:ignore SA2001 taking life exclusively waits for every call that holds it shared to return
		q.life.Unlock()
		if q.sync && !drop {
			q.snd.SetWriteDeadline(time.Time{})
		}
		errs := []error{q.handBack()}
		errs = append(errs, q.send.stop())
		q.cancelFlush()
		q.snd.Close()
		if q.tok != nil {
			q.tok.w.Close()
		}
		q.closeErr = errors.Join(errs...)
	})
	return q.closeErr
}

var aLongTimeAgo = time.Unix(1, 0)

// Closed reports whether Close has been called.
func (q *engine) Closed() bool { return q.closed.Load() }
