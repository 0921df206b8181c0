package pool

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/mproc-go/mproc/internal/debuglog"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/process"
)

// DefaultMaxTries is how many times a chunk is given to a worker, unless
// [Config.MaxTries] says otherwise, before its inputs fail with
// [ErrWorkerLost].
const DefaultMaxTries = 3

// Config is the configuration of a [Pool]. The zero value is a pool with
// one worker per CPU it may use and the defaults below.
type Config struct {
	// Workers is the number of worker processes; 0 means
	// runtime.GOMAXPROCS(0), which follows a container's CPU quota.
	Workers int
	// ChunkSize is the number of inputs sent to a worker at a time by
	// Map, Imap and ImapUnordered. 0 means Python's rule for map: about
	// four chunks per worker, ceil(len(inputs) / (4 * Workers)).
	ChunkSize int
	// MaxTasksPerChild, when positive, replaces a worker by a fresh one
	// once it has run that many inputs (Python's maxtasksperchild). A
	// chunk is never split: the worker retires after the chunk in which
	// it reaches the number.
	MaxTasksPerChild int
	// MaxTries is how many times a chunk is given to a worker when
	// workers die running it (killed, crashed, exited); after that, its
	// inputs fail with ErrWorkerLost. 0 means DefaultMaxTries; 1 means
	// no second try.
	MaxTries int
	// Init, if not nil, runs in each worker before its first task; see
	// RegisterInit.
	Init *Init
	// Shares are objects every worker inherits under their names (a
	// lock.Lock, a queue, a conn.Conn), typically picked up by Init. The
	// pool shares them with each worker it starts (as with process.Keep:
	// it closes none of them), so keep them open for as long as the pool
	// runs. The name "mproc_pool" is the pool's own.
	Shares map[string]process.Sharer
	// Progress, if not nil, is called with the number of inputs finished
	// (successfully or not) and the number submitted, counted over the
	// pool's life: for a single Map, its progress. It is called when a
	// call submits its inputs, each time a chunk finishes, and when a call
	// ends early (its unfinished inputs then leave the total). Calls are
	// serialized and done never decreases; keep the function quick (it
	// runs on the pool's goroutines) and do not call the pool from it.
	Progress func(done, total int)
	// Grace is how long a worker's task has to return once the worker is
	// told to stop (its tasks' context is canceled); see
	// process.Cmd.Grace. 0 means process.DefaultGrace.
	Grace time.Duration
	// FlushTimeout bounds the flush, when a worker exits, of the queues
	// it still has open (those of Shares it put items on): the worker is
	// not stopped while it flushes, and a flush that does not complete
	// makes Join return an error wrapping [ErrFlush]. 0 means
	// process.DefaultFlushTimeout.
	FlushTimeout time.Duration
	// Logger receives the Debug records of the pool's machinery: each
	// worker's start and exit (those of process.Cmd), a worker replaced
	// and why, a chunk given to a fresh worker after its worker died. nil
	// means silent, unless the environment variable MPROC_DEBUG is set to
	// 1: then a text logger writes them to stderr.
	Logger *slog.Logger
}

type notSendable = share.Local[poolName]

// poolName names pool.Pool in the errors of notSendable.
type poolName struct{}

func (poolName) String() string { return "pool.Pool" }

// Pool is a pool of worker processes running one registered function,
// the Go counterpart of Python's multiprocessing.Pool. Create it with
// [New]; end it with [Pool.Terminate], or [Pool.Close] then [Pool.Join].
//
// All methods are safe for use by several goroutines; calls made
// concurrently share the workers, first come, first served.
type Pool[In, Out any] struct {
	// notSendable makes msgpack refuse a Pool in a message: see ErrNotSendable.
	notSendable

	fn     *Func[In, Out]
	cfg    Config
	log    *slog.Logger    // never nil
	ctx    context.Context // the workers' life: New's ctx, canceled by Terminate
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	queue  []*call[In, Out] // calls with chunks not yet handed out, oldest first
	kick   chan struct{}    // closed and replaced when work arrives or the pool closes
	closed bool

	wg   sync.WaitGroup // drivers, and the reaping of retired workers
	done chan struct{}  // closed once wg is done: every worker reaped

	progMu              sync.Mutex
	progDone, progTotal int

	exitMu   sync.Mutex
	exitErrs []error // workers whose flush at exit did not complete
}

// New starts a pool of cfg.Workers processes running fn and returns once
// every worker is ready (its initializer has run). ctx governs the
// workers' life: when it ends, the pool terminates as with
// [Pool.Terminate], and calls return an error wrapping [ErrTerminated] and
// the context's error; when it ends while New waits for the workers, New
// fails with such an error.
//
// The program's main must call process.Main first (a test binary's
// TestMain), since workers are this program executed again. New fails
// with the error of the first worker that could not start, wrapping
// [ErrInit] when its initializer failed; it then leaves no process behind.
// New panics if fn is nil.
func New[In, Out any](ctx context.Context, fn *Func[In, Out], cfg Config) (*Pool[In, Out], error) {
	if fn == nil {
		panic("pool: New with a nil Func")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = DefaultMaxTries
	}
	if cfg.Grace == 0 {
		cfg.Grace = process.DefaultGrace
	}
	if _, ok := cfg.Shares[connName]; ok {
		return nil, fmt.Errorf("pool: the share name %q is the pool's own", connName)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancelCause(ctx)
	p := &Pool[In, Out]{
		fn:     fn,
		cfg:    cfg,
		log:    debuglog.Resolve(cfg.Logger),
		ctx:    pctx,
		cancel: cancel,
		kick:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	workers := make([]*worker, cfg.Workers)
	errs := make([]error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { workers[i], errs[i] = p.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cancel(err)
		for _, w := range workers {
			if w != nil {
				p.reap(w, true)
			}
		}
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	for _, w := range workers {
		p.wg.Add(1)
		go p.drive(w)
	}
	go func() {
		p.wg.Wait()
		close(p.done)
	}()
	return p, nil
}

// Map runs the function on every input and returns the outputs in input
// order, as Python's Pool.map. The inputs go to the workers in chunks of
// [Config.ChunkSize].
//
// When some tasks fail, Map still returns every output (the zero value for
// the failed ones) together with a *[MapError] listing a [TaskError] per
// failed input. When ctx ends first, Map returns nil and ctx.Err() at once:
// the chunks not yet sent are dropped, and the workers busy with the
// call's chunks are stopped (their tasks' context is canceled; they exit
// and are replaced). After [Pool.Close] it returns [ErrClosed]; when the
// pool terminates, an error wrapping [ErrTerminated].
//
// Map reads inputs until it returns, however it returns, and not after:
// the caller may reuse the slice then. The same holds for Imap and
// ImapUnordered when the range over them ends.
func (p *Pool[In, Out]) Map(ctx context.Context, inputs []In) ([]Out, error) {
	out := make([]Out, len(inputs))
	c, err := p.submit(ctx, inputs, out, nil)
	if err != nil {
		return nil, err
	}
	defer c.end()
	var errs []*TaskError
	for range c.nchunks {
		ch, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		errs = append(errs, ch.errs...)
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

// Imap runs the function on every input and yields the outputs in input
// order, each as soon as it and those before it are there (Python's
// Pool.imap). The error that comes with an output is nil, or the
// *[TaskError] of that input (the output is then the zero value), and
// iteration goes on; or it is the error that ended the call (ctx.Err(),
// [ErrClosed], [ErrTerminated]), yielded once, last.
//
// Each range over the sequence runs the inputs anew. Stopping the range
// early sends no more chunks; the ones workers are running finish and
// their results are dropped. ctx ending stops the call as in [Pool.Map].
func (p *Pool[In, Out]) Imap(ctx context.Context, inputs []In) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var zero Out
		c, err := p.submit(ctx, inputs, nil, nil)
		if err != nil {
			yield(zero, err)
			return
		}
		defer c.end()
		early := make(map[int]*chunk[In, Out]) // finished before their turn, by start
		next := 0
		for range c.nchunks {
			ch, err := c.next(ctx)
			if err != nil {
				yield(zero, err)
				return
			}
			early[ch.start] = ch
			for ch := early[next]; ch != nil; ch = early[next] {
				delete(early, next)
				if !ch.yield(yield) {
					return
				}
				next += len(ch.in)
			}
		}
	}
}

// ImapUnordered is [Pool.Imap] yielding the outputs in the order in which
// they arrive (Python's Pool.imap_unordered). Put the input's index in
// the output if you need it: a *[TaskError] carries it for a failure.
func (p *Pool[In, Out]) ImapUnordered(ctx context.Context, inputs []In) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var zero Out
		c, err := p.submit(ctx, inputs, nil, nil)
		if err != nil {
			yield(zero, err)
			return
		}
		defer c.end()
		for range c.nchunks {
			ch, err := c.next(ctx)
			if err != nil {
				yield(zero, err)
				return
			}
			if !ch.yield(yield) {
				return
			}
		}
	}
}

// Apply runs the function on one input and returns its output (Python's
// Pool.apply). A failed task returns a *[TaskError] with Index 0; the
// other errors are those of [Pool.Map].
func (p *Pool[In, Out]) Apply(ctx context.Context, in In) (Out, error) {
	return p.Go(ctx, in).Wait(ctx)
}

// Go submits the function on one input and returns at once (Python's
// Pool.apply_async); [Task.Wait] gives the result. ctx governs the task:
// when it ends before the task is done, the task is dropped, or its
// worker stopped as in [Pool.Map], and Wait returns ctx.Err().
func (p *Pool[In, Out]) Go(ctx context.Context, in In) *Task[Out] {
	t := &Task[Out]{done: make(chan struct{}), ctx: ctx, pool: p.ctx.Done(), stopErr: p.stopErr}
	_, err := p.submit(ctx, []In{in}, nil, func(ch *chunk[In, Out]) {
		t.out = ch.out[0]
		if len(ch.errs) > 0 {
			t.err = ch.errs[0]
		}
		close(t.done)
	})
	if err != nil {
		t.err = err
		close(t.done)
	}
	return t
}

// Task is a task submitted with [Pool.Go], Python's AsyncResult. Its
// methods are safe for use by several goroutines.
type Task[Out any] struct {
	done    chan struct{} // closed when out and err are set
	out     Out
	err     error
	ctx     context.Context // the task's, from Go
	pool    <-chan struct{}
	stopErr func() error
}

// Wait waits for the task and returns its output, or its *[TaskError],
// or the error that ended it (the ctx given to Go, [ErrClosed],
// [ErrTerminated]). When ctx ends first, Wait returns ctx.Err(); the task
// goes on and a later Wait can still get its result. Wait may be called
// any number of times.
func (t *Task[Out]) Wait(ctx context.Context) (Out, error) {
	var zero Out
	select {
	case <-t.done:
		return t.out, t.err
	default:
	}
	select {
	case <-t.done:
		return t.out, t.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-t.ctx.Done():
		return zero, t.ctx.Err()
	case <-t.pool:
		return zero, t.stopErr()
	}
}

// Close stops the pool from taking new calls (they return [ErrClosed]);
// the calls already made run to their end, then each worker exits.
// [Pool.Join] waits for that. Close does not wait, and, unlike the Close
// of a connection, interrupts nobody: that is [Pool.Terminate]. It is
// Python's Pool.close, idempotent and safe to call concurrently.
func (p *Pool[In, Out]) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.wake()
	}
}

// Terminate stops every worker now and waits until each one has exited
// and every goroutine of the pool has ended. Calls in progress and later
// calls return [ErrTerminated]. A worker's task has [Config.Grace] to
// return once its context is canceled; then the worker flushes the queues
// it put items on (within [Config.FlushTimeout]) and exits, so Terminate
// returns within about Grace, plus the time those flushes take. Call
// [Pool.Join] afterwards to learn whether they all completed. Terminate
// is idempotent and safe to call concurrently; `defer p.Terminate()` is
// the counterpart of Python's `with Pool() as p:`.
func (p *Pool[In, Out]) Terminate() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.wake()
	}
	p.mu.Unlock()
	p.cancel(ErrTerminated)
	<-p.done
}

// Join waits until every worker has exited, after [Pool.Close] (once the
// calls made before it have ended) or [Pool.Terminate], and every
// goroutine of the pool has ended. A worker that exits flushes the queues
// it put items on first, and is not stopped meanwhile: Join returns nil
// once every such flush has completed, and an error wrapping [ErrFlush]
// when one did not (its FlushTimeout ran out, or the queue failed), since
// items may then be lost. It returns [ErrRunning] at once for a pool that
// is neither closed nor terminated, and ctx.Err() when ctx ends first. It
// is safe to call concurrently, and returns the same once the workers
// are gone.
func (p *Pool[In, Out]) Join(ctx context.Context) error {
	p.mu.Lock()
	running := !p.closed && p.ctx.Err() == nil
	p.mu.Unlock()
	if running {
		return ErrRunning
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.exitMu.Lock()
	defer p.exitMu.Unlock()
	if len(p.exitErrs) == 0 {
		return nil
	}
	return fmt.Errorf("pool: %d worker(s) did not complete their flush at exit (items they put may be lost): %w",
		len(p.exitErrs), errors.Join(p.exitErrs...))
}

// exited notes how a worker that was told to leave (closed, retired or
// terminated) ended: a flush at exit that did not complete is for Join.
func (p *Pool[In, Out]) exited(err error) {
	if errors.Is(err, ErrFlush) {
		p.exitMu.Lock()
		p.exitErrs = append(p.exitErrs, err)
		p.exitMu.Unlock()
	}
}

// wake wakes the idle drivers. The caller holds p.mu.
func (p *Pool[In, Out]) wake() {
	close(p.kick)
	p.kick = make(chan struct{})
}

// stopErr is the error of calls the pool's end interrupted.
func (p *Pool[In, Out]) stopErr() error {
	cause := context.Cause(p.ctx)
	if errors.Is(cause, ErrTerminated) {
		return ErrTerminated
	}
	return fmt.Errorf("%w: %w", ErrTerminated, cause)
}

// chunkSize is the chunk size of a call of n inputs.
func (p *Pool[In, Out]) chunkSize(n int) int {
	if p.cfg.ChunkSize > 0 {
		return p.cfg.ChunkSize
	}
	per := 4 * p.cfg.Workers
	return max(1, (n+per-1)/per)
}
