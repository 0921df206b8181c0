package pool

// Imap and ImapUnordered: a call whose inputs come from an iter.Seq, which
// a feeder goroutine reads, cuts into chunks and pushes to the executor's
// queue, never holding more than the call's bound of inputs taken from the
// sequence and not yet yielded: an endless stream runs in constant memory.

import (
	"context"
	"fmt"
	"iter"
	"sync"
)

// Imap runs the function on every input the sequence yields and yields
// the outputs in input order, each as soon as it and those before it are
// there (Python's Pool.imap). The error that comes with an output is nil,
// or the *[TaskError] of that input (the output is then the zero value;
// its Index counts the inputs from 0), and iteration goes on; or it is the
// error that ended the call (ctx.Err(), [ErrClosed], [ErrTerminated]),
// yielded once, last.
//
// The inputs go to the workers in chunks (see [Pool.WithChunkSize]; the
// default is 1, Python's, since the sequence's length is unknown). A chunk
// goes when it is full, when the sequence ends, or when the bound of
// inputs in flight ([Pool.WithInFlight]) is reached: at most that many
// inputs have been taken from the sequence and not yet yielded, whatever
// the sequence's length and however slow the range. (CPython's imap has
// no such bound: its task handler feeds the workers as fast as they take
// tasks, and when the consumer is slower the results pile up in the
// parent; gh-64192.)
//
// The sequence is read by a goroutine of the call, one input after the
// other, while the range goes on; when the range stops or ctx ends, the
// call stops reading it at its next input and waits for that before it
// returns: the sequence is not used after the range. A sequence that
// blocks should therefore end with ctx too. Each range over the result
// runs the sequence anew. Stopping the range early sends no more chunks;
// the ones workers are running finish and their results are dropped. ctx
// ending stops the call as in [Pool.Map]. A panic of the sequence is
// raised again in the range's goroutine.
func (p *Pool[In, Out]) Imap(ctx context.Context, inputs iter.Seq[In]) iter.Seq2[Out, error] {
	return p.stream(ctx, inputs, true)
}

// ImapUnordered is [Pool.Imap] yielding the outputs in the order in which
// they arrive (Python's Pool.imap_unordered). Put the input's index in
// the output if you need it: a *[TaskError] carries it for a failure.
func (p *Pool[In, Out]) ImapUnordered(ctx context.Context, inputs iter.Seq[In]) iter.Seq2[Out, error] {
	return p.stream(ctx, inputs, false)
}

// streamChunk is the chunk size of Imap and ImapUnordered.
func (p *Pool[In, Out]) streamChunk() int {
	switch {
	case p.chunkSize > 0:
		return p.chunkSize
	case p.cfg.ChunkSize > 0:
		return p.cfg.ChunkSize
	}
	return 1
}

// bound is the most inputs in flight of a stream of chunks of size.
func (p *Pool[In, Out]) bound(size int) int {
	if p.inFlight > 0 {
		return p.inFlight
	}
	return 4 * p.cfg.Workers * size
}

// credit counts a stream call's inputs in flight against its bound.
type credit struct {
	mu    sync.Mutex
	used  int
	bound int
	room  chan struct{} // a token when used went down
}

// take waits until some inputs may be taken, at most want, and returns
// how many; 0 when quit closes first.
func (cr *credit) take(want int, quit <-chan struct{}) int {
	for {
		cr.mu.Lock()
		if n := min(want, cr.bound-cr.used); n > 0 {
			cr.used += n
			cr.mu.Unlock()
			return n
		}
		cr.mu.Unlock()
		select {
		case <-cr.room:
		case <-quit:
			return 0
		}
	}
}

// give returns n inputs' worth of credit: they were yielded.
func (cr *credit) give(n int) {
	cr.mu.Lock()
	cr.used -= n
	cr.mu.Unlock()
	select {
	case cr.room <- struct{}{}:
	default:
	}
}

func (p *Pool[In, Out]) stream(ctx context.Context, inputs iter.Seq[In], ordered bool) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var zero Out
		size := p.streamChunk()
		c, err := p.newCall(ctx, p.fn.name, size)
		if err == nil {
			err = p.openStream(c)
		}
		if err != nil {
			yield(zero, err)
			return
		}
		cr := &credit{bound: max(p.bound(size), 1), room: make(chan struct{}, 1)}
		fed := make(chan any, 1) // the feeder's end: nil, or the sequence's panic
		go p.feed(c, inputs, cr, fed)
		var panicked any
		defer func() {
			c.end() // the feeder stops at its next input
			if v := <-fed; v != nil && panicked == nil {
				panic(v)
			}
		}()

		early := make(map[int]*tchunk[In, Out]) // finished before their turn, by start
		next := 0
		for {
			ch, err := c.next(ctx)
			if err == errStreamEnd {
				// The feeder also ends early when ctx ends or the
				// executor terminates: the caller hears of it.
				switch {
				case c.exhausted():
				case ctx.Err() != nil:
					yield(zero, ctx.Err())
				case p.ctx.Err() != nil:
					yield(zero, p.stopErr())
				}
				return // (or the sequence panicked: see the deferred call)
			}
			if err != nil {
				yield(zero, err)
				return
			}
			tc := ch.(*tchunk[In, Out])
			if !ordered {
				if !tc.yield(yield) {
					return
				}
				cr.give(tc.n)
				continue
			}
			early[tc.start] = tc
			for tc := early[next]; tc != nil; tc = early[next] {
				delete(early, next)
				if !tc.yield(yield) {
					return
				}
				cr.give(tc.n)
				next += tc.n
			}
		}
	}
}

// feed reads the sequence into chunks of c and pushes them, within the
// credit; it sends on fed when it is done (a panic of the sequence's, or
// nil).
func (p *Pool[In, Out]) feed(c *call, inputs iter.Seq[In], cr *credit, fed chan<- any) {
	var (
		cur   *tchunk[In, Out] // the chunk being filled
		start int              // index of the next input
		have  int              // credit taken and not yet used
	)
	defer func() {
		v := recover()
		c.fedAll()
		if v != nil {
			fed <- fmt.Sprintf("pool: the input sequence panicked: %v", v)
			return
		}
		fed <- nil
	}()
	// seal pushes the chunk being filled; false when the call is over.
	seal := func() bool {
		if cur == nil {
			return true
		}
		ch := cur
		cur = nil
		ch.out = make([]Out, ch.n)
		return p.push(ch)
	}
	// reserve gets credit for the next input; when the bound is reached,
	// it pushes the partial chunk first (only its results can bring credit
	// back). It reports false when the call is over.
	reserve := func() bool {
		if have > 0 {
			return true
		}
		cr.mu.Lock()
		full := cr.used >= cr.bound
		cr.mu.Unlock()
		if full && !seal() {
			return false
		}
		want := c.size
		if cur != nil {
			want -= cur.n
		}
		have = cr.take(want, c.quit)
		return have > 0
	}
	if !reserve() {
		return
	}
	for in := range inputs {
		if c.gone() {
			return
		}
		if cur == nil {
			cur = &tchunk[In, Out]{chunkState: chunkState{c: c, start: start}, in: make([]In, 0, c.size)}
		}
		cur.in = append(cur.in, in)
		cur.n++
		start++
		have--
		if cur.n == c.size && !seal() {
			return
		}
		if !reserve() {
			return
		}
	}
	if seal() {
		c.mu.Lock()
		c.whole = true
		c.mu.Unlock()
	}
}
