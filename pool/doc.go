// Package pool runs registered functions in a set of worker processes:
// the Go counterpart of Python's multiprocessing.Pool and of
// concurrent.futures.ProcessPoolExecutor, built on package process; unlike
// Python's, it never hangs when a worker dies.
//
// A task function is registered where both the parent and the workers
// (the same program, executed again) run it, and main starts with
// process.Main:
//
//	var square = pool.Register("square", func(ctx context.Context, x int) (int, error) {
//		return x * x, nil
//	})
//
//	func main() {
//		process.Main() // in a worker: serves tasks, then exits
//		p, err := pool.New(ctx, square, pool.Config{})
//		if err != nil { ... }
//		defer p.Terminate()
//		out, err := p.Map(ctx, []int{1, 2, 3}) // [1 4 9]
//	}
//
// Inputs and outputs travel as msgpack (github.com/vmihailenco/msgpack/v5),
// so they are values, as with Python's pickling: a task sees a copy of its
// input, and the caller a copy of its output.
//
// # One executor, any function
//
// The workers belong to an [Executor], which serves every registered
// function: each chunk of inputs names its function, and a worker runs
// whichever it is given. A [Pool] is one function on an executor; [New]
// starts an executor for it, and [Bind] gives the Pool of another function
// on an executor already running, so that one set of workers runs a whole
// program's tasks:
//
//	ex, err := pool.NewExecutor(ctx, pool.Config{Init: setup})
//	defer ex.Terminate()
//	t := pool.Bind(ex, square).Submit(ctx, 7)        // a future
//	out, err := pool.Bind(ex, resize).Map(ctx, jobs)
//	for t := range pool.AsCompleted(ctx, tasks...) { ... }
//
// [Pool.Imap] and [Pool.ImapUnordered] take an iter.Seq and hold at most
// [Pool.WithInFlight] inputs taken from it and not yet yielded, so that an
// input of ten million items, or an endless one, runs in constant memory.
// [Pool.WithChunkSize] sets the chunk size of one call.
//
// # From Python
//
//	Pool(processes=n)                  New(ctx, fn, Config{Workers: n})
//	ProcessPoolExecutor(max_workers=n) NewExecutor(ctx, Config{Workers: n})
//	Pool(initializer=f, initargs=a)    Config{Init: RegisterInit("f", f), Shares: {"name": obj}}
//	Pool(maxtasksperchild=m)           Config{MaxTasksPerChild: m}
//	p.map(f, xs, chunksize=c)          p.WithChunkSize(c).Map(ctx, xs)
//	p.imap(f, it, chunksize=c)         for out, err := range p.WithChunkSize(c).Imap(ctx, seq)
//	p.imap_unordered(f, it)            for out, err := range p.ImapUnordered(ctx, seq)
//	p.apply(f, (x,))                   p.Apply(ctx, x)
//	r = p.apply_async(f, (x,))         t := p.Submit(ctx, x)
//	fut = ex.submit(f, x)              t := Bind(ex, f).Submit(ctx, x)
//	r.get(timeout=s), fut.result()     t.Wait(ctx) with a deadline
//	fut.done(), add_done_callback      t.Done() (a channel, for select)
//	as_completed(futs)                 for t := range AsCompleted(ctx, tasks...)
//	p.map_async(f, xs)                 go func() { out, err := p.Map(ctx, xs) ... }()
//	p.starmap(f, [(a, b), ...])        a struct input type
//	p.close(); p.join()                p.Close(); p.Join(ctx)
//	ex.shutdown(wait=True)             ex.Close(); ex.Join(ctx)
//	p.terminate()                      p.Terminate()
//	with Pool() as p:                  p, err := New(...); defer p.Terminate()
//	log_to_stderr(logging.DEBUG)       MPROC_DEBUG=1, or Config.Logger
//
// A function is a registered handle, not a value sent per call: Go cannot
// send code. Its name, not its code, reaches the workers.
//
// # Sharing objects with the workers
//
// Python hands each worker a lock or a queue through initargs. Here the
// pool shares the objects of [Config.Shares] with every worker it starts,
// and the initializer picks them up by name with their package's Inherit
// and keeps them in package variables for the tasks (see
// Example_initializer):
//
//	var openLock = pool.RegisterInit("open-lock", func(ctx context.Context) error {
//		var err error
//		counterLock, err = lock.Inherit("counter")
//		return err
//	})
//
//	l, _ := lock.New()
//	p, err := pool.New(ctx, fn, pool.Config{Init: openLock, Shares: map[string]process.Sharer{"counter": l}})
//
// # Errors
//
// A task whose function returns an error or panics fails alone: the worker
// reports it and goes on with the next input, and the caller gets a
// [TaskError] naming the input's index and carrying the worker's text (and
// type, or the panic's stack). [Pool.Map] returns every output (the zero
// value at the failed inputs) together with a [MapError] that lists the
// failed inputs in order and that errors.Is and errors.As look through: a
// few bad inputs in a million do not cost the other results, and the
// caller who wants all-or-nothing checks err. Python's map raises the
// first exception and loses every result. [Pool.Imap] and
// [Pool.ImapUnordered] yield each error with its input.
//
// # When a worker dies
//
// Each worker has its own connection to the pool (a pipe.Duplex: a
// socketpair), over which the pool sends it chunks of inputs and it
// answers with each chunk's outputs, in order. A worker holds one chunk,
// or two when chunks are quick (under a millisecond): the pool then sends
// the next one before the result of the current one has come back, so
// that the worker never waits for it. The pool therefore knows, at every
// moment, exactly which inputs each worker holds. A worker that
// dies (killed, crashed, exited, a panic in a goroutine of its own) closes
// its end of the connection as it goes, so the pool sees it at once and
// gives its chunks to a fresh worker. The chunk it was running is charged
// a try; after [Config.MaxTries] tries its inputs fail with
// [ErrWorkerLost], whose error says how the last worker ended. An idle worker that dies is noticed at once too
// (process.Cmd.Done) and replaced when there is work. Nothing is
// duplicated: each input yields one result, whatever the retries; but a
// task of a lost chunk may have run before, in the worker that died, so
// tasks with side effects should be idempotent (at least once, as with
// any work queue that survives crashes).
//
// Python's Pool feeds all workers from one shared task queue, and cannot
// tell which task a dead worker had taken: the result never comes, and
// map waits forever (cpython#96062, bpo-22393). A shared queue would have
// the same blind spot here. The
// price of the per-worker channel is that a chunk sent ahead to a worker
// cannot be taken by another that falls idle; only quick chunks are sent
// ahead, which bounds that cost to about a millisecond.
//
// # Chunks
//
// Map, Imap and ImapUnordered cut their inputs in chunks of
// consecutive inputs: [Pool.WithChunkSize], else [Config.ChunkSize], else
// Python's rules: for Map ceil(len(inputs) / (4 * Workers)), about four
// chunks per worker; for Imap and ImapUnordered, whose input is a
// sequence of unknown length, one input per chunk. Small tasks want big
// chunks, since each chunk costs a round trip to a worker (a few tens of
// microseconds); unequal tasks want small ones, so that no worker is left
// with a long tail. A worker runs the inputs of a chunk one after the
// other; results come back per chunk, so progress and Imap advance a
// chunk at a time. Slices of the basic types (ints, uints, floats,
// strings, bools) are encoded and decoded by hand, a few nanoseconds a
// value; other types go through the msgpack library's reflection.
//
// # Stopping
//
// No call waits forever. The ctx given to a call bounds it: when it ends,
// the call returns ctx.Err() at once, drops its chunks not yet sent, and
// stops the workers busy with its chunks (their tasks' ctx is canceled,
// and each is killed if it has not exited after [Config.Grace]); fresh
// workers replace them on demand. Breaking out of a range over Imap only
// stops sending chunks: those already running finish and their results
// are dropped.
//
// The ctx given to [NewExecutor] (or [New]) bounds the executor: when it ends, it
// terminates. [Executor.Terminate] stops every worker the same way and waits
// until none is left. [Executor.Close] is Python's close: no new calls, the
// calls already made run to their end, then the workers exit; [Executor.Join]
// waits for that. That Close interrupts nobody, unlike the Close of a
// connection or queue, is Python's meaning of close for a pool; Terminate
// is the one that wakes every caller. Workers, like every process child
// not started with process.Cmd.OutliveParent, die with the program, even
// if it is killed. A pool left running holds its processes and goroutines:
// always Terminate it, or Close and Join it.
//
// A worker that leaves (the executor closed or terminated, or the worker
// retired after MaxTasksPerChild) first flushes the queues of
// [Config.Shares] it put items on, and is not stopped while it does,
// however long the consumer takes, up to [Config.FlushTimeout]; a flush
// that does not complete makes [Executor.Join] return an error wrapping
// [ErrFlush], never a silent loss.
//
// # Progress and logging
//
// [Config.Progress] is called with (done, total) counted in inputs as
// chunks finish; examples/pool-progress draws a progress bar with it.
// [Config.Logger] receives Debug records of the machinery: each worker
// started and exited (with its pid), a worker replaced and why, a chunk
// given to a fresh worker after its worker died. MPROC_DEBUG=1 in the
// environment writes them to stderr without a Logger (Python's
// log_to_stderr).
package pool
