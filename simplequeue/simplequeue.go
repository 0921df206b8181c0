package simplequeue

import (
	"context"

	"github.com/mproc-go/mproc/internal/mq"
	"github.com/mproc-go/mproc/internal/share"
)

// errs are the package's errors, in place of the engine's.
var errs = mq.NewErrors("simplequeue")

// Errors of the queue. Test with errors.Is.
var (
	// ErrClosed is returned by every call after Close, and by a call
	// that Close interrupted.
	ErrClosed = errs.Closed
	// ErrTooLarge is returned by Put for an item that encodes to more
	// than MaxItemSize bytes.
	ErrTooLarge = errs.TooLarge
	// ErrCorrupt is returned by Get for a packet that no queue writes (a
	// foreign process wrote to the socket); the packet is discarded and
	// the queue remains usable.
	ErrCorrupt = errs.Corrupt
	// ErrTooDeep is returned by Get, with ErrCorrupt, for an item whose
	// msgpack arrays and maps nest more than 10,000 levels (deeper than
	// any real data, and deep enough to overflow the decoder's stack); the
	// item is discarded before decoding and the queue remains usable.
	ErrTooDeep = mq.ErrTooDeep
	// ErrDropped is returned by Close when it dropped items this process
	// had put and not sent, because a Flush had given up on them (its ctx
	// ended): see Close. The message says how many.
	ErrDropped = errs.Dropped
)

// MaxItemSize is the largest item a queue carries, encoded: 1 GiB.
const MaxItemSize = mq.MaxItemSize

// Queue is an unbounded FIFO queue of items of type T shared by any number
// of processes, like Python's multiprocessing.SimpleQueue: Put is
// synchronous, so when it returns the item is in the kernel, and nothing
// is buffered in the process or lost when it exits. Items are encoded with
// msgpack. Create one with New, hand it to a child with Share, open it
// there with Inherit.
//
// A Queue is safe for use by several goroutines and processes. Each
// producer's items arrive in the order it put them when there is one
// consumer; with several consumers every item is received exactly once.
type Queue[T any] struct {
	// notSendable makes msgpack refuse a Queue in a message: see ErrNotSendable.
	notSendable

	q *mq.Queue[T]
}

type notSendable = share.Inheritable[queueName]

// queueName names simplequeue.Queue in the errors of notSendable.
type queueName struct{}

func (queueName) String() string { return "simplequeue.Queue" }

// New creates a queue.
func New[T any]() (*Queue[T], error) {
	q, err := mq.NewSync[T](mq.Hooks{})
	if err != nil {
		return nil, errs.Public(err)
	}
	return &Queue[T]{q: q}, nil
}

// Put puts v at the end of the queue and returns once it is in the kernel,
// waiting while the queue's socket is full, until ctx ends (it returns
// ctx.Err() with nothing put) or until Close (ErrClosed). v is encoded by
// the caller, so an item that cannot be encoded fails here, with nothing
// put. An item larger than a packet (64 KiB) is streamed to its receiver
// once its stub is sent, regardless of ctx.
func (q *Queue[T]) Put(ctx context.Context, v T) error { return errs.Public(q.q.Put(ctx, v)) }

// Get removes and returns the oldest item, waiting until there is one,
// until ctx ends (it returns ctx.Err() and takes nothing) or until Close
// (ErrClosed). An item that does not decode into T is consumed and its
// error returned; the queue remains usable.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	v, err := q.q.Get(ctx)
	return v, errs.Public(err)
}

// Empty reports whether no item is waiting in the queue.
func (q *Queue[T]) Empty() bool { return q.q.Empty() }

// Close releases this process's descriptors. It wakes every call of this
// process blocked on the queue with ErrClosed; later calls return
// ErrClosed, as do calls racing Close when this process holds the queue's
// last descriptors. Other processes are not affected. There is nothing to
// flush: every Put that returned nil is in the kernel. Items this process
// received and no Get took go back to the queue (when no other process
// holds it, they go with it, and are not reported). Close is idempotent
// and safe to call concurrently.
func (q *Queue[T]) Close() error { return errs.Public(q.q.Close()) }
