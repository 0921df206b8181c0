package queue

import (
	"context"

	"github.com/mproc-go/mproc/internal/mq"
	"github.com/mproc-go/mproc/internal/share"
)

// errs are the package's errors, in place of the engine's.
var errs = mq.NewErrors("queue")

// Errors of the queue. Test with errors.Is.
var (
	// ErrClosed is returned by every call after Close, and by a call
	// that Close interrupted.
	ErrClosed = errs.Closed
	// ErrFull is returned by TryPut when the queue holds maxsize items.
	ErrFull = errs.Full
	// ErrEmpty is returned by TryGet when no item is waiting.
	ErrEmpty = errs.Empty
	// ErrTooLarge is returned by Put for an item that encodes to more
	// than MaxItemSize bytes.
	ErrTooLarge = errs.TooLarge
	// ErrMaxsize is returned by New for a maxsize this system cannot
	// support (see the package documentation).
	ErrMaxsize = errs.Maxsize
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

// Queue is a FIFO queue of items of type T shared by any number of
// processes, like Python's multiprocessing.Queue. Items are encoded with
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

// queueName names queue.Queue in the errors of notSendable.
type queueName struct{}

func (queueName) String() string { return "queue.Queue" }

// New creates a queue. maxsize <= 0 makes it unbounded: Put never waits.
// Otherwise Put waits while maxsize items are in the queue; New returns
// ErrMaxsize when maxsize is more than this system can hold (about one
// million with the default fs.pipe-max-size).
//
// The queue's flush is registered to run at a child's exit (see
// process.Main); Close removes it.
func New[T any](maxsize int) (*Queue[T], error) {
	q, err := mq.New[T](maxsize, mq.Hooks{})
	if err != nil {
		return nil, errs.Public(err)
	}
	return &Queue[T]{q: q}, nil
}

// Put puts v at the end of the queue. v is encoded by the caller, so an
// item that cannot be encoded fails here, with nothing put.
//
// An unbounded Put never waits. When the socket is full it keeps the item
// in this process, where a goroutine sends it in order as room appears:
// Flush or Close before the process exits, or the item is lost (Put has
// returned, but the item is not yet in the kernel). A bounded Put waits
// while the queue is full, until ctx ends (it returns ctx.Err() and the
// queue is unchanged) or until Close (ErrClosed).
//
// Put returns the error of an earlier buffered send if there was one (rare:
// see Flush), and then does not put v.
func (q *Queue[T]) Put(ctx context.Context, v T) error { return errs.Public(q.q.Put(ctx, v)) }

// TryPut is Put that never waits: a full bounded queue gives ErrFull.
func (q *Queue[T]) TryPut(v T) error { return errs.Public(q.q.TryPut(v)) }

// Get removes and returns the oldest item, waiting until there is one,
// until ctx ends (it returns ctx.Err() and takes nothing) or until Close
// (ErrClosed). An item that does not decode into T is consumed and its
// error returned; the queue remains usable.
//
// When items are quick to handle, a producer packs several into one
// packet; the Get that receives it returns the first and this process
// keeps the others for its next Gets (Close gives back those no Get
// took). See the package documentation.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	v, err := q.q.Get(ctx)
	return v, errs.Public(err)
}

// TryGet is Get that does not wait for an item: it returns ErrEmpty when
// none is waiting, or when another goroutine of this process is already in
// Get.
func (q *Queue[T]) TryGet() (T, error) {
	v, err := q.q.TryGet()
	return v, errs.Public(err)
}

// Qsize returns the number of items in the queue. For a bounded queue it
// is exact when no Put or Get is under way in any process. For an
// unbounded queue it is an estimate, exact when the waiting items encode
// to the same size: no count is kept, since keeping one would cost a
// system call per item in every process (see the package documentation).
func (q *Queue[T]) Qsize() int { return q.q.Qsize() }

// Empty reports whether the queue holds no item: exact for a bounded queue
// when no call is under way; for an unbounded one, it sees this process's
// buffers and the socket, not the buffers of other processes.
func (q *Queue[T]) Empty() bool { return q.q.Empty() }

// Full reports whether a bounded queue holds maxsize items. It is always
// false for an unbounded queue.
func (q *Queue[T]) Full() bool { return q.q.Full() }

// Maxsize returns the maxsize the queue was created with, 0 if unbounded.
func (q *Queue[T]) Maxsize() int { return q.q.Maxsize() }

// Flush waits until every item this process put is in the kernel, where
// any process can get it and where it survives this process's exit. It
// returns ctx.Err() if ctx ends first (the items are still sent later),
// ErrClosed after Close, and otherwise the error of an earlier buffered
// send, if any.
func (q *Queue[T]) Flush(ctx context.Context) error { return errs.Public(q.q.Flush(ctx)) }

// Close flushes what this process put, gives back to the queue the items
// this process received and no Get took, and releases this process's
// descriptors. The flush waits as long as it takes (while the queue is
// full and nobody gets) unless a Flush of this process returned its ctx's
// error before: then Close does not wait again. It sends what the queue
// takes at once, drops the rest (giving back their slots), releases
// everything and returns an error wrapping ErrDropped that says how many
// items it dropped. So a Flush with a deadline, then Close, bounds Close
// even when a live consumer holds the queue and never gets.
//
// Close wakes every call of this process blocked on the queue with
// ErrClosed; later calls return ErrClosed, as do calls racing Close in the
// queue's last holder. Other processes are not affected. Close is
// idempotent and safe to call concurrently; it returns the error of the
// flush, of an earlier buffered send, or ErrDropped.
func (q *Queue[T]) Close() error { return errs.Public(q.q.Close()) }
