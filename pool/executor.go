package pool

// The executor: one set of worker processes serving every registered task
// function, and the queue of calls they take chunks from.

import (
	"context"
	"errors"
	"fmt"
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

// Config is the configuration of an [Executor] (and of the one [New]
// starts for a [Pool]). The zero value is an executor with one worker per
// CPU it may use and the defaults below.
type Config struct {
	// Workers is the number of worker processes; 0 means
	// runtime.GOMAXPROCS(0), which follows a container's CPU quota.
	Workers int
	// ChunkSize is the number of inputs sent to a worker at a time by
	// Map, Imap and ImapUnordered, unless the call's [Pool.WithChunkSize]
	// says otherwise. 0 means Python's rules: for Map, about four chunks
	// per worker, ceil(len(inputs) / (4 * Workers)); for Imap and
	// ImapUnordered, whose input is a sequence of unknown length, 1.
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
	// LogStderr sends each worker's stderr, line by line, to Logger at
	// level Info, with the worker's pid (see process.Cmd.LogStderr),
	// instead of to this process's stderr.
	LogStderr bool
}

type notSendable = share.Local[poolName]

// poolName names pool.Pool in the errors of notSendable.
type poolName struct{}

func (poolName) String() string { return "pool.Pool" }

// Executor is a set of worker processes that serve every task function
// registered with [Register], the Go counterpart of Python's
// concurrent.futures.ProcessPoolExecutor (and of the processes behind a
// multiprocessing.Pool). Create it with [NewExecutor]; call functions on
// it through [Bind], which gives a typed [Pool] view of one function; end
// it with [Executor.Terminate], or [Executor.Close] then [Executor.Join].
//
// All methods are safe for use by several goroutines; calls made
// concurrently, of any functions, share the workers, first come, first
// served.
type Executor struct {
	// notSendable makes msgpack refuse an Executor in a message: see ErrNotSendable.
	notSendable

	cfg    Config
	log    *slog.Logger    // never nil
	ctx    context.Context // the workers' life: NewExecutor's ctx, canceled by Terminate
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	queue  []*call       // calls with chunks not yet handed out, oldest first
	kick   chan struct{} // closed and replaced when work arrives or the executor closes
	closed bool
	feeds  int // stream calls whose feeder runs: the drivers stay for them after Close

	wg   sync.WaitGroup // drivers, and the reaping of retired workers
	done chan struct{}  // closed once wg is done: every worker reaped

	progMu              sync.Mutex
	progDone, progTotal int

	exitMu   sync.Mutex
	exitErrs []error // workers whose flush at exit did not complete
}

// NewExecutor starts cfg.Workers worker processes and returns once every
// worker is ready (its initializer has run). ctx governs the workers'
// life: when it ends, the executor terminates as with
// [Executor.Terminate], and calls return an error wrapping
// [ErrTerminated] and the context's error; when it ends while NewExecutor
// waits for the workers, NewExecutor fails with such an error.
//
// The program's main must call process.Main first (a test binary's
// TestMain), since workers are this program executed again. NewExecutor
// fails with the error of the first worker that could not start, wrapping
// [ErrInit] when its initializer failed; it then leaves no process behind.
func NewExecutor(ctx context.Context, cfg Config) (*Executor, error) {
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
	ex := &Executor{
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
		wg.Go(func() { workers[i], errs[i] = ex.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cancel(err)
		for _, w := range workers {
			if w != nil {
				ex.reap(w, true)
			}
		}
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	for _, w := range workers {
		ex.wg.Add(1)
		go ex.drive(w)
	}
	go func() {
		ex.wg.Wait()
		close(ex.done)
	}()
	return ex, nil
}

// Workers returns the number of worker processes.
func (ex *Executor) Workers() int { return ex.cfg.Workers }

// Close stops the executor from taking new calls (they return
// [ErrClosed]); the calls already made run to their end, then each worker
// exits. [Executor.Join] waits for that. Close does not wait, and, unlike
// the Close of a connection, interrupts nobody: that is
// [Executor.Terminate]. It is Python's Pool.close (and
// Executor.shutdown(wait=False)), idempotent and safe to call
// concurrently.
func (ex *Executor) Close() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if !ex.closed {
		ex.closed = true
		ex.wake()
	}
}

// Terminate stops every worker now and waits until each one has exited
// and every goroutine of the executor has ended. Calls in progress and
// later calls return [ErrTerminated]. A worker's task has [Config.Grace]
// to return once its context is canceled; then the worker flushes the
// queues it put items on (within [Config.FlushTimeout]) and exits, so
// Terminate returns within about Grace, plus the time those flushes take.
// Call [Executor.Join] afterwards to learn whether they all completed.
// Terminate is idempotent and safe to call concurrently; `defer
// ex.Terminate()` is the counterpart of Python's `with Pool() as p:` (and
// of `with ProcessPoolExecutor() as ex:`, which waits for the tasks:
// Close and Join do that).
func (ex *Executor) Terminate() {
	ex.mu.Lock()
	if !ex.closed {
		ex.closed = true
		ex.wake()
	}
	ex.mu.Unlock()
	ex.cancel(ErrTerminated)
	<-ex.done
}

// Join waits until every worker has exited, after [Executor.Close] (once
// the calls made before it have ended) or [Executor.Terminate], and every
// goroutine of the executor has ended. A worker that exits flushes the
// queues it put items on first, and is not stopped meanwhile: Join returns
// nil once every such flush has completed, and an error wrapping
// [ErrFlush] when one did not (its FlushTimeout ran out, or the queue
// failed), since items may then be lost. It returns [ErrRunning] at once
// for an executor that is neither closed nor terminated, and ctx.Err()
// when ctx ends first. It is safe to call concurrently, and returns the
// same once the workers are gone.
func (ex *Executor) Join(ctx context.Context) error {
	ex.mu.Lock()
	running := !ex.closed && ex.ctx.Err() == nil
	ex.mu.Unlock()
	if running {
		return ErrRunning
	}
	select {
	case <-ex.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	ex.exitMu.Lock()
	defer ex.exitMu.Unlock()
	if len(ex.exitErrs) == 0 {
		return nil
	}
	return fmt.Errorf("pool: %d worker(s) did not complete their flush at exit (items they put may be lost): %w",
		len(ex.exitErrs), errors.Join(ex.exitErrs...))
}

// exited notes how a worker that was told to leave (closed, retired or
// terminated) ended: a flush at exit that did not complete is for Join.
func (ex *Executor) exited(err error) {
	if errors.Is(err, ErrFlush) {
		ex.exitMu.Lock()
		ex.exitErrs = append(ex.exitErrs, err)
		ex.exitMu.Unlock()
	}
}

// wake wakes the idle drivers. The caller holds ex.mu.
func (ex *Executor) wake() {
	close(ex.kick)
	ex.kick = make(chan struct{})
}

// stopErr is the error of calls the executor's end interrupted.
func (ex *Executor) stopErr() error {
	cause := context.Cause(ex.ctx)
	if errors.Is(cause, ErrTerminated) {
		return ErrTerminated
	}
	return fmt.Errorf("%w: %w", ErrTerminated, cause)
}
