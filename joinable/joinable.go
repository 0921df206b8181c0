package joinable

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/counter"
	"github.com/mproc-go/mproc/internal/mq"
	"github.com/mproc-go/mproc/internal/share"
)

// errs are the package's errors, in place of the engine's.
var errs = mq.NewErrors("joinable")

// Errors. Test with errors.Is.
var (
	// ErrTooManyTaskDone is returned by TaskDone when no task is
	// unfinished; the count is left unchanged.
	ErrTooManyTaskDone = errors.New("joinable: TaskDone called more times than items were put")

	// The errors of a queue, as in package queue.

	// ErrClosed is returned by every call after Close, and by a call that
	// Close interrupted.
	ErrClosed = errs.Closed
	// ErrFull is returned by TryPut when the queue holds maxsize items.
	ErrFull = errs.Full
	// ErrEmpty is returned by TryGet when no item is waiting.
	ErrEmpty = errs.Empty
	// ErrTooLarge is returned by Put for an item that encodes to more
	// than MaxItemSize bytes.
	ErrTooLarge = errs.TooLarge
	// ErrMaxsize is returned by New for a maxsize this system cannot
	// support.
	ErrMaxsize = errs.Maxsize
	// ErrCorrupt is returned by Get for a packet that no queue writes;
	// the packet is discarded and the queue remains usable.
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

	// The errors of Share and Inherit, shared by every mproc package.

	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive, or its
	// descriptors do not make a joinable queue.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters, digits,
	// '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Queue (or a value holding one) was given to Send,
	// Put, Map, Apply or Go, or met in a message being decoded; share it
	// through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

// MaxItemSize is the largest item a queue carries, encoded: 1 GiB.
const MaxItemSize = mq.MaxItemSize

// Kind is the kind recorded for a joinable queue in the environment
// variable that lists inherited descriptors: the four of the task count
// (baton pipe read and write ends, wake pipe read and write ends), then the
// queue's, as in package queue.
const Kind = "joinable"

// closeWait bounds how long Close waits for the shared count. The count's
// baton is held for a few microseconds at a time; waiting longer means a
// process died holding it, and then the count is lost anyway.
const closeWait = 10 * time.Second

type notSendable = share.Inheritable[queueName]

// queueName names joinable.Queue in the errors of notSendable.
type queueName struct{}

func (queueName) String() string { return "joinable.Queue" }

// Queue is a queue.Queue whose items are also counted until a TaskDone
// marks them done, so that Join can wait for all of them; see the package
// documentation. A Queue is safe for use by several goroutines, and by
// several processes through Share and Inherit.
type Queue[T any] struct {
	// notSendable makes msgpack refuse a Queue in a message: see ErrNotSendable.
	notSendable

	q *mq.Queue[T]
	c *counter.Counter
	tally

	// giveUp is closed when Close gives up on the shared count (after
	// closeWait): it bounds the count updates of calls that have no ctx of
	// their own (the engine's hooks, the tally flusher, Close), through
	// untilClosed. closing is closed when Close starts: it interrupts Join
	// and TaskDone of this process.
	giveUp, closing   chan struct{}
	giveUpOnce, cOnce sync.Once

	exit      atexit.Handle
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New returns a joinable queue holding at most maxsize items (maxsize <= 0:
// unbounded), like queue.New. It refuses a maxsize that the pipes cannot
// hold.
func New[T any](maxsize int) (*Queue[T], error) {
	c, err := counter.New()
	if err != nil {
		return nil, fmt.Errorf("joinable: task count: %w", err)
	}
	jq := newQueue[T](c)
	q, err := mq.New[T](maxsize, jq.hooks())
	if err != nil {
		jq.abandon()
		return nil, errs.Public(err)
	}
	jq.start(q)
	return jq, nil
}

func newQueue[T any](c *counter.Counter) *Queue[T] {
	jq := &Queue[T]{c: c, giveUp: make(chan struct{}), closing: make(chan struct{})}
	jq.tally.init()
	return jq
}

// start takes q and starts the flusher goroutine.
func (jq *Queue[T]) start(q *mq.Queue[T]) {
	jq.q = q
	go jq.flusher(untilClosed(jq.giveUp), jq.c)
	jq.exit = atexit.Register(func(ctx context.Context) error {
		// A process about to exit: hand on what it put and what it marked
		// done, as Close would.
		err := errs.Public(jq.q.Flush(ctx))
		return errors.Join(err, jq.flushTally(ctx, jq.c), jq.tally.takeErr())
	})
}

// abandon releases what newQueue made when the engine could not be built.
func (jq *Queue[T]) abandon() {
	jq.stopCalls()
	jq.stopHooks()
	jq.c.Close()
}

// stopCalls interrupts this process's Join and TaskDone calls.
func (jq *Queue[T]) stopCalls() { jq.cOnce.Do(func() { close(jq.closing) }) }

// stopHooks makes the count updates without a ctx of their own give up.
func (jq *Queue[T]) stopHooks() { jq.giveUpOnce.Do(func() { close(jq.giveUp) }) }

func (jq *Queue[T]) hooks() mq.Hooks {
	return mq.Hooks{
		BeforeSend: func(ctx context.Context, n int) error {
			// The items are counted before any process can receive them.
			return jq.update(ctx,
				func() (bool, error) { return jq.c.TryAdd(int64(n)) },
				func(ctx context.Context) error { return jq.c.Add(ctx, int64(n)) })
		},
		SendFailed: func(ctx context.Context, n int) {
			// Items counted and not delivered: uncount them.
			jq.uncount(ctx, n)
		},
		// Items counted and lost in this process (the kernel could not
		// give it a large item's pipe, Close could not hand them back):
		// nobody can get them, so nobody will mark them done.
		Dropped: func(ctx context.Context, n int) {
			jq.uncount(ctx, n)
		},
		BeforeBlock: jq.tally.kickNow,
	}
}

func (jq *Queue[T]) uncount(ctx context.Context, n int) {
	jq.update(ctx,
		func() (bool, error) { _, ok, err := jq.c.TryDoneUpTo(int64(n)); return ok, err },
		func(ctx context.Context) error { _, err := jq.c.DoneUpTo(ctx, int64(n)); return err })
}

// tryCountWait bounds how long TryPut, which has no ctx, waits for the
// shared count while another process updates it.
const tryCountWait = time.Second

// update runs a count update for the engine: at once when the count's
// baton is free (the usual case, no allocation), otherwise waiting for it
// with the caller's ctx, which also ends when Close begins (a Put's; the
// flusher's only when Close gives up on the count, after closeWait, so
// that Close can still flush) and, for TryPut, after tryCountWait. No lock
// of this process is held meanwhile: a process that holds the count, or
// died holding it, costs the caller its ctx, never a hang.
func (jq *Queue[T]) update(ctx context.Context, try func() (bool, error), wait func(context.Context) error) error {
	if ok, err := try(); ok || err != nil {
		return jq.countErr(err)
	}
	stopOn, why := jq.closing, ErrClosed
	switch mq.OriginOf(ctx) {
	case mq.OriginFlusher:
		stopOn = jq.giveUp
		why = fmt.Errorf("joinable: task count: Close gave up waiting for it after %v (a process died holding it?): %w", closeWait, context.DeadlineExceeded)
	case mq.OriginTry:
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tryCountWait)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(untilClosed(stopOn), cancel)
	defer stop()
	err := wait(ctx)
	select {
	case <-stopOn:
		if err != nil && errors.Is(err, context.Canceled) {
			return why
		}
	default:
	}
	if errors.Is(err, context.DeadlineExceeded) && mq.OriginOf(ctx) == mq.OriginTry {
		return fmt.Errorf("joinable: task count busy for %v (a process died holding it?): %w", tryCountWait, err)
	}
	return jq.countErr(err)
}

// Put adds v to the queue, blocking while a bounded queue is full; see
// queue.Queue.Put. The item counts as unfinished from the moment any
// process can get it (before Put returns, or, when Put has left it in this
// process's buffer, before it leaves the buffer: see the package
// documentation). Counting waits while another process updates the count
// (microseconds), and returns ctx.Err() if ctx ends first (a process that
// died holding the count), or ErrClosed when Close begins; no other call
// of this process waits behind it. Safe for concurrent use.
func (jq *Queue[T]) Put(ctx context.Context, v T) error { return errs.Public(jq.q.Put(ctx, v)) }

// TryPut adds v if that needs no waiting for room, or returns ErrFull. It
// waits for the shared count while another process updates it, at most
// 1 s (then an error wrapping context.DeadlineExceeded: a process died
// holding the count?). Safe for concurrent use.
func (jq *Queue[T]) TryPut(v T) error { return errs.Public(jq.q.TryPut(v)) }

// Get removes and returns the next item, waiting until there is one, ctx
// ends (ctx.Err()) or Close (ErrClosed). The item stays unfinished until
// some process calls TaskDone. Safe for concurrent use.
func (jq *Queue[T]) Get(ctx context.Context) (T, error) {
	v, err := jq.q.Get(ctx)
	if err == nil {
		jq.gotten.Add(1)
	}
	return v, errs.Public(err)
}

// TryGet removes and returns the next item if there is one, or returns
// ErrEmpty. Safe for concurrent use.
func (jq *Queue[T]) TryGet() (T, error) {
	v, err := jq.q.TryGet()
	if err == nil {
		jq.gotten.Add(1)
	}
	return v, errs.Public(err)
}

// Qsize returns the number of items in the queue; see queue.Queue.Qsize.
func (jq *Queue[T]) Qsize() int { return jq.q.Qsize() }

// Empty reports whether the queue holds no item; see queue.Queue.Empty.
func (jq *Queue[T]) Empty() bool { return jq.q.Empty() }

// Full reports whether a bounded queue holds maxsize items.
func (jq *Queue[T]) Full() bool { return jq.q.Full() }

// Maxsize returns the maxsize the queue was made with (0: unbounded).
func (jq *Queue[T]) Maxsize() int { return jq.q.Maxsize() }

// Flush waits until every item this process put has left its buffer for
// the queue, where every process can get it and where it is counted as
// unfinished. Safe for concurrent use.
func (jq *Queue[T]) Flush(ctx context.Context) error { return errs.Public(jq.q.Flush(ctx)) }

// TaskDone marks one task done: an item got by some process has been
// processed. It returns ErrTooManyTaskDone, and changes nothing, when no
// task is unfinished, and ErrClosed after Close.
//
// For an item this process got itself, TaskDone only lowers a count of
// this process, which reaches the shared count within about a millisecond
// (sooner when this process waits in Get), at no syscall cost. Otherwise it
// updates the shared count at once. Safe for concurrent use.
func (jq *Queue[T]) TaskDone() error {
	if jq.closed.Load() {
		return ErrClosed
	}
	if jq.tally.doneLocal() {
		return nil
	}
	// No item of ours is pending: the checked, shared path. Flush our own
	// tally first, so that an extra TaskDone of this process is refused
	// here and not later in a flush.
	ctx := untilClosed(jq.closing)
	if err := jq.flushTally(ctx, jq.c); err != nil {
		return jq.callErr(err)
	}
	return jq.callErr(jq.c.Done(ctx, 1))
}

// Join waits until every item put so far has had its TaskDone: items this
// process put (it flushes them first), and items other processes put that
// have left their buffers (see the package documentation). It returns
// within about a millisecond of the last TaskDone, ctx.Err() when ctx ends,
// and ErrClosed on Close. Safe for concurrent use.
func (jq *Queue[T]) Join(ctx context.Context) error {
	if jq.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(untilClosed(jq.closing), cancel)
	defer stop()
	if err := jq.q.Flush(ctx); err != nil {
		if jq.closed.Load() && errors.Is(err, context.Canceled) {
			return ErrClosed
		}
		return errs.Public(err)
	}
	if err := jq.flushTally(ctx, jq.c); err != nil {
		return jq.joinErr(ctx, err)
	}
	if err := jq.c.Join(ctx); err != nil {
		return jq.joinErr(ctx, err)
	}
	return jq.tally.takeErr()
}

func (jq *Queue[T]) joinErr(ctx context.Context, err error) error {
	if jq.closed.Load() && (errors.Is(err, context.Canceled) || errors.Is(err, counter.ErrClosed)) {
		return ErrClosed
	}
	return jq.countErr(err)
}

// callErr maps an error of a call interrupted by Close (closing).
func (jq *Queue[T]) callErr(err error) error {
	if err != nil && jq.closed.Load() && errors.Is(err, context.Canceled) {
		return ErrClosed
	}
	return jq.countErr(err)
}

// countErr maps the counter's errors to this package's.
func (jq *Queue[T]) countErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, counter.ErrTooManyTaskDone):
		return ErrTooManyTaskDone
	case errors.Is(err, counter.ErrClosed):
		return ErrClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("joinable: task count: %w", err)
}

// Close flushes what this process put (waiting as long as that takes:
// bound it with Flush first), hands back to the queue the items this
// process received and no Get took, takes this process's pending
// TaskDones to the shared count, and releases this process's descriptors;
// later calls return ErrClosed. It wakes every blocked call of this process
// (Get, Put, Join, TaskDone) and ends the goroutines the queue started.
// Other processes go on using the queue.
//
// As in package queue, a Flush (or Join) of this process that returned
// its ctx's error makes Close not wait for the flush again: it drops what
// is left, gives back its slots, and returns an error wrapping ErrDropped
// that says how many items it dropped (they were never counted).
//
// Close waits at most 10 s for the shared count, which is busy for
// microseconds at a time unless a process was killed while updating it
// (and then the count is lost anyway); a Put or TaskDone waiting for the
// count returns ErrClosed as soon as Close begins. It returns ErrTooManyTaskDone when
// this process's batched TaskDones found no unfinished task (see the
// package documentation). Close is idempotent and safe to call
// concurrently; every call returns the result of the first.
func (jq *Queue[T]) Close() error {
	jq.closeOnce.Do(func() {
		atexit.Unregister(jq.exit)
		jq.closed.Store(true)
		jq.stopCalls()
		giveUp := time.AfterFunc(closeWait, jq.stopHooks)
		defer giveUp.Stop()
		var all []error
		all = append(all, errs.Public(jq.q.Close()))
		jq.tally.stop()
		if err := jq.flushTally(untilClosed(jq.giveUp), jq.c); err != nil {
			all = append(all, jq.countErr(err))
		}
		all = append(all, jq.tally.takeErr())
		jq.stopHooks()
		all = append(all, jq.countErr(jq.c.Close()))
		jq.closeErr = errors.Join(all...)
	})
	return jq.closeErr
}

// files returns the descriptors that make up the queue, in the order
// Inherit expects: the task count's, then the queue engine's. They stay
// owned by jq.
func (jq *Queue[T]) files() []*os.File {
	return append(jq.c.Files(), jq.q.Files()...)
}
