package mq

import (
	"bytes"
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Queue is a multi-process FIFO queue of items of type T. See the package
// documentation for the transport and the guarantees.
//
// Queue is the thin typed layer over the engine, which moves encoded
// frames: Put encodes its item in the caller, Get decodes the payload the
// engine returns. Every other method is the engine's.
//
// A Queue is safe for use by several goroutines and, through Files and
// FromFiles, by several processes. Close may be called at any time.
type Queue[T any] struct {
	*engine

	// The decode's state, created by the first Get and used under rsem
	// (take to untake).
	dec     *msgpack.Decoder
	rd      bytes.Reader
	scratch *T // decode's target, allocated once: decoding into a local would box it on the heap per item
}

// typed wraps a new engine in a Queue[T].
func typed[T any](e *engine, err error) (*Queue[T], error) {
	if err != nil {
		return nil, err
	}
	return &Queue[T]{engine: e}, nil
}

// Put puts v in the queue. v is encoded in the caller: an item that cannot
// be encoded fails here. A bounded queue waits while it is full, until ctx
// ends (ctx.Err(), queue unchanged) or Close (ErrClosed). An unbounded Put
// never waits: when the socket is full the item is buffered in this
// process and sent, in order, by a goroutine; Flush and Close wait for it.
// A synchronous queue (NewSync) sends in the caller and waits while the
// socket is full.
//
// Put returns the error of an earlier buffered send, if there was one, and
// does not put v then.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	return q.put(ctx, v, true)
}

// TryPut is Put that never waits: it returns ErrFull instead.
func (q *Queue[T]) TryPut(v T) error {
	return q.put(tryCtx, v, false)
}

func (q *Queue[T]) put(ctx context.Context, v T, wait bool) error {
	if !q.enter() {
		return ErrClosed
	}
	defer q.exit()
	e, err := encode(&v, q.maxItem)
	if err != nil {
		return err
	}
	defer e.release()
	return q.engine.put(ctx, e, wait)
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
	p, err := q.take(ctx, wait)
	if err != nil {
		return v, err
	}
	v, err = q.decode(p)
	q.untake()
	return v, err
}

// decode decodes the payload p, which came from another process and which
// take checked (codec.Check: msgpack headers that lie cannot make the
// decoder allocate more than p's size, nor nest deeper than
// codec.MaxDepth). The caller holds rsem.
func (q *Queue[T]) decode(p []byte) (v T, err error) {
	if q.scratch == nil {
		// Not UsePreallocateValues: it starts a goroutine per pointer type
		// that never ends, allocating values ahead.
		q.dec = msgpack.NewDecoder(nil)
		q.scratch = new(T)
	}
	q.rd.Reset(p)
	q.dec.ResetReader(&q.rd)
	var zero T
	err = q.dec.Decode(q.scratch)
	v, *q.scratch = *q.scratch, zero // a fresh value each time, and none kept
	if err != nil {
		return zero, fmt.Errorf("decode into %T: %w", v, err)
	}
	return v, nil
}
