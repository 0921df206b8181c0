package pool

import (
	"context"
	"iter"
	"sync"
)

// Pool is one task function on an [Executor]: the typed calls of Python's
// multiprocessing.Pool (map, imap, imap_unordered, apply, apply_async) and
// of concurrent.futures (submit, map). [New] starts a Pool with its own
// executor, as Python's Pool(); [Bind] gives a Pool of another function on
// an executor that already runs, so that one set of workers serves every
// function. A Pool holds no processes of its own: Close, Terminate and
// Join are its executor's.
//
// A Pool is a value the caller may copy; [Pool.WithChunkSize] and
// [Pool.WithInFlight] return changed copies. All methods are safe for use
// by several goroutines.
type Pool[In, Out any] struct {
	// notSendable makes msgpack refuse a Pool in a message: see ErrNotSendable.
	notSendable
	*Executor

	fn        *Func[In, Out]
	chunkSize int // 0: the Config's, then the call's default
	inFlight  int // 0: the default
}

// New starts an executor of cfg.Workers processes (see [NewExecutor]) and
// returns the Pool of fn on it; the Pool's Close, Terminate and Join end
// that executor. New panics if fn is nil.
func New[In, Out any](ctx context.Context, fn *Func[In, Out], cfg Config) (*Pool[In, Out], error) {
	if fn == nil {
		panic("pool: New with a nil Func")
	}
	ex, err := NewExecutor(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return Bind(ex, fn), nil
}

// Bind returns the Pool of fn on ex: its calls run on ex's workers, beside
// the calls of every other function bound to ex. Go methods cannot have
// type parameters, so concurrent.futures' ex.submit(fn, x) is spelled
// Bind(ex, fn).Submit(ctx, x). Bind starts nothing and may be called for
// each call; it panics if ex or fn is nil.
func Bind[In, Out any](ex *Executor, fn *Func[In, Out]) *Pool[In, Out] {
	if ex == nil || fn == nil {
		panic("pool: Bind with a nil Executor or Func")
	}
	return &Pool[In, Out]{Executor: ex, fn: fn}
}

// WithChunkSize returns a copy of p whose calls send n inputs to a worker
// at a time (Python's chunksize argument of map and imap); n <= 0 means
// [Config.ChunkSize], then the default of each call.
func (p *Pool[In, Out]) WithChunkSize(n int) *Pool[In, Out] {
	q := *p
	q.chunkSize = max(n, 0)
	return &q
}

// WithInFlight returns a copy of p whose [Pool.Imap] and
// [Pool.ImapUnordered] hold at most n inputs taken from their sequence and
// not yet yielded; n <= 0 means the default, four chunks per worker.
func (p *Pool[In, Out]) WithInFlight(n int) *Pool[In, Out] {
	q := *p
	q.inFlight = max(n, 0)
	return &q
}

// Func returns the task function of the Pool.
func (p *Pool[In, Out]) Func() *Func[In, Out] { return p.fn }

// mapChunk is the chunk size of a Map of n inputs.
func (p *Pool[In, Out]) mapChunk(n int) int {
	switch {
	case p.chunkSize > 0:
		return p.chunkSize
	case p.cfg.ChunkSize > 0:
		return p.cfg.ChunkSize
	}
	per := 4 * p.cfg.Workers
	return max(1, (n+per-1)/per)
}

// Map runs the function on every input and returns the outputs in input
// order, as Python's Pool.map. The inputs go to the workers in chunks (see
// [Config.ChunkSize]).
//
// When some tasks fail, Map still returns every output (the zero value for
// the failed ones) together with a *[MapError] listing a [TaskError] per
// failed input. When ctx ends first, Map returns nil and ctx.Err() at once:
// the chunks not yet sent are dropped, and the workers busy with the
// call's chunks are stopped (their tasks' context is canceled; they exit
// and are replaced). After [Executor.Close] it returns [ErrClosed]; when
// the executor terminates, an error wrapping [ErrTerminated].
//
// Map reads inputs until it returns, however it returns, and not after:
// the caller may reuse the slice then.
func (p *Pool[In, Out]) Map(ctx context.Context, inputs []In) ([]Out, error) {
	out := make([]Out, len(inputs))
	c, err := p.newCall(ctx, p.fn.name, p.mapChunk(len(inputs)))
	if err != nil {
		return nil, err
	}
	err = p.submitSlice(c, len(inputs), func(start, end int) chunk {
		return &tchunk[In, Out]{chunkState: chunkState{c: c, start: start, n: end - start}, in: inputs[start:end], out: out[start:end]}
	})
	if err != nil {
		return nil, err
	}
	defer c.end()
	var errs []*TaskError
	for range c.made {
		ch, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		errs = append(errs, ch.state().errs...)
	}
	if len(errs) == 0 {
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sortTaskErrors(errs)
	return out, &MapError{Tasks: errs, Total: len(inputs)}
}

// Apply runs the function on one input and returns its output (Python's
// Pool.apply). A failed task returns a *[TaskError] with Index 0; the
// other errors are those of [Pool.Map].
func (p *Pool[In, Out]) Apply(ctx context.Context, in In) (Out, error) {
	return p.Submit(ctx, in).Wait(ctx)
}

// Submit submits the function on one input and returns its [Task] at
// once: Python's Pool.apply_async and concurrent.futures'
// Executor.submit. ctx governs the task: when it ends before the task is
// done, the task is dropped, or its worker stopped as in [Pool.Map], and
// the task ends with ctx.Err(). The input is encoded when a worker is
// free for it; Submit does not read it after the Task is done.
func (p *Pool[In, Out]) Submit(ctx context.Context, in In) *Task[Out] {
	t := &Task[Out]{done: make(chan struct{})}
	c, err := p.newCall(ctx, p.fn.name, 1)
	if err != nil {
		t.complete(*new(Out), err)
		return t
	}
	c.onFinish = func(ch chunk) {
		tc := ch.(*tchunk[In, Out])
		var err error
		if len(tc.errs) > 0 {
			err = tc.errs[0]
		}
		t.complete(tc.out[0], err)
	}
	err = p.submitSlice(c, 1, func(start, end int) chunk {
		return &tchunk[In, Out]{chunkState: chunkState{c: c, n: 1}, in: []In{in}, out: make([]Out, 1)}
	})
	if err != nil {
		t.complete(*new(Out), err)
		return t
	}
	t.watch(ctx, p.Executor)
	return t
}

// Future is what [AsCompleted] waits for: a [*Task] of any output type.
type Future interface {
	// Done returns a channel that is closed when the result is ready.
	Done() <-chan struct{}
}

// Task is a task submitted with [Pool.Submit]: Python's AsyncResult and
// concurrent.futures' Future. Its methods are safe for use by several
// goroutines.
type Task[Out any] struct {
	done  chan struct{} // closed when out and err are set
	out   Out
	err   error
	mu    sync.Mutex
	over  bool
	stops []func() bool // the context.AfterFuncs of watch
}

// Done returns a channel that is closed once the task is done: its
// result is there, or it failed, or the ctx given to Submit ended, or
// the executor terminated. Use it in a select; Wait then returns at once.
func (t *Task[Out]) Done() <-chan struct{} { return t.done }

// Wait waits for the task and returns its output, or its *[TaskError],
// or the error that ended it (the ctx given to Submit, [ErrClosed],
// [ErrTerminated]). When ctx ends first, Wait returns ctx.Err(); the task
// goes on and a later Wait can still get its result. Wait may be called
// any number of times.
func (t *Task[Out]) Wait(ctx context.Context) (Out, error) {
	select {
	case <-t.done:
		return t.out, t.err
	default:
	}
	select {
	case <-t.done:
		return t.out, t.err
	case <-ctx.Done():
		return *new(Out), ctx.Err()
	}
}

// complete sets the result, once.
func (t *Task[Out]) complete(out Out, err error) {
	t.mu.Lock()
	if t.over {
		t.mu.Unlock()
		return
	}
	t.over = true
	t.out, t.err = out, err
	stops := t.stops
	t.stops = nil
	t.mu.Unlock()
	close(t.done)
	for _, stop := range stops {
		stop()
	}
}

// watch ends the task when ctx ends or the executor terminates, whichever
// comes first, unless it is done by then.
func (t *Task[Out]) watch(ctx context.Context, ex *Executor) {
	var zero Out
	s1 := context.AfterFunc(ctx, func() { t.complete(zero, ctx.Err()) })
	s2 := context.AfterFunc(ex.ctx, func() { t.complete(zero, ex.stopErr()) })
	t.mu.Lock()
	over := t.over
	if !over {
		t.stops = []func() bool{s1, s2}
	}
	t.mu.Unlock()
	if over {
		s1()
		s2()
	}
}

// AsCompleted yields the futures as they complete, whatever the order in
// which they were submitted (concurrent.futures.as_completed). It ends
// when every future has been yielded, when the range stops, or when ctx
// ends (then without a word: check ctx.Err()). Each future is yielded
// once; a future given twice is yielded twice.
//
// Tasks of one output type range as themselves; for tasks of several
// types, pass them as Futures and Wait on each through its own variable.
func AsCompleted[F Future](ctx context.Context, futures ...F) iter.Seq[F] {
	return func(yield func(F) bool) {
		if len(futures) == 0 {
			return
		}
		ready := make(chan int, len(futures)) // never blocks a sender
		quit := make(chan struct{})
		var wg sync.WaitGroup
		defer wg.Wait()
		defer close(quit)
		for i, f := range futures {
			wg.Go(func() {
				select {
				case <-f.Done():
					ready <- i
				case <-quit:
				}
			})
		}
		for range futures {
			select {
			case i := <-ready:
				if !yield(futures[i]) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
