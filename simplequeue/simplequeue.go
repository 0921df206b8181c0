package simplequeue

import (
	"context"

	"github.com/mproc-go/mproc/internal/mq"
	"github.com/mproc-go/mproc/internal/share"
)

// Errors of the queue. Test with errors.Is.
var (
	// ErrClosed is returned by every call after Close, and by a call
	// that Close interrupted. It is the same value as queue.ErrClosed.
	ErrClosed = mq.ErrClosed
	// ErrTooLarge is returned by Put for an item that encodes to more
	// than MaxItemSize bytes.
	ErrTooLarge = mq.ErrTooLarge
	// ErrCorrupt is returned by Get for a packet that no queue writes (a
	// foreign process wrote to the socket); the packet is discarded and
	// the queue remains usable.
	ErrCorrupt = mq.ErrCorrupt
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
		return nil, err
	}
	return &Queue[T]{q: q}, nil
}

// Put puts v at the end of the queue and returns once it is in the kernel,
// waiting while the queue's socket is full. v is encoded by the caller, so
// an item that cannot be encoded fails here, with nothing put. Close
// interrupts a waiting Put with ErrClosed.
func (q *Queue[T]) Put(v T) error { return q.q.Put(context.Background(), v) }

// PutContext is Put that gives up when ctx ends before the item could be
// sent, returning ctx.Err() with nothing put. An item larger than a packet
// (64 KiB) is then streamed to its receiver regardless of ctx.
func (q *Queue[T]) PutContext(ctx context.Context, v T) error { return q.q.Put(ctx, v) }

// Get removes and returns the oldest item, waiting until there is one or
// until Close (ErrClosed). An item that does not decode into T is consumed
// and its error returned; the queue remains usable.
func (q *Queue[T]) Get() (T, error) { return q.q.Get(context.Background()) }

// GetContext is Get that gives up when ctx ends, returning ctx.Err() and
// taking nothing.
func (q *Queue[T]) GetContext(ctx context.Context) (T, error) { return q.q.Get(ctx) }

// Empty reports whether no item is waiting in the queue.
func (q *Queue[T]) Empty() bool { return q.q.Empty() }

// Close releases this process's descriptors. It wakes every call of this
// process blocked on the queue with ErrClosed; later calls return
// ErrClosed. Other processes are not affected. There is nothing to flush:
// every Put that returned nil is in the kernel. Close is idempotent and
// safe to call concurrently.
func (q *Queue[T]) Close() error { return q.q.Close() }
