// Package pool is a pool of worker processes running one registered
// function, the Go counterpart of Python's multiprocessing.Pool, built on
// package process; unlike Python's, it never hangs when a worker dies.
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
// # From Python
//
//	Pool(processes=n)                  New(ctx, fn, Config{Workers: n})
//	Pool(initializer=f, initargs=a)    Config{Init: RegisterInit("f", f), Shares: {"name": obj}}
//	Pool(maxtasksperchild=m)           Config{MaxTasksPerChild: m}
//	p.map(f, xs, chunksize=c)          p.Map(ctx, xs) with Config{ChunkSize: c}
//	p.imap(f, xs)                      for out, err := range p.Imap(ctx, xs)
//	p.imap_unordered(f, xs)            for out, err := range p.ImapUnordered(ctx, xs)
//	p.apply(f, (x,))                   p.Apply(ctx, x)
//	r = p.apply_async(f, (x,))         t := p.Go(ctx, x)
//	r.get(timeout=s)                   t.Wait(ctx) with a deadline
//	p.map_async(f, xs)                 go func() { out, err := p.Map(ctx, xs) ... }()
//	p.starmap(f, [(a, b), ...])        a struct input type
//	p.close(); p.join()                p.Close(); p.Join(ctx)
//	p.terminate()                      p.Terminate()
//	with Pool() as p:                  p, err := New(...); defer p.Terminate()
//
// The function is given to New once, not to each call: a pool runs one
// function (Python's pools take any picklable function per call, which Go
// cannot send). Its name, not its code, reaches the workers.
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
// [Config.ChunkSize] consecutive inputs, by default Python's rule for
// map: ceil(len(inputs) / (4 * Workers)), about four chunks per worker.
// (Python's imap defaults to one input per chunk because its input is an
// iterator of unknown length; ours is a slice.) Small tasks want big
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
// The ctx given to [New] bounds the pool: when it ends, the pool
// terminates. [Pool.Terminate] stops every worker the same way and waits
// until none is left. [Pool.Close] is Python's close: no new calls, the
// calls already made run to their end, then the workers exit; [Pool.Join]
// waits for that. That Close interrupts nobody, unlike the Close of a
// connection or queue, is Python's meaning of close for a pool; Terminate
// is the one that wakes every caller. Workers, like every process child
// not started with process.Cmd.OutliveParent, die with the program, even
// if it is killed. A pool left running holds its processes and goroutines:
// always Terminate it, or Close and Join it.
//
// A worker that leaves (the pool closed or terminated, or the worker
// retired after MaxTasksPerChild) first flushes the queues of
// [Config.Shares] it put items on, and is not stopped while it does,
// however long the consumer takes, up to [Config.FlushTimeout]; a flush
// that does not complete makes [Pool.Join] return an error wrapping
// [ErrFlush], never a silent loss.
//
// # Progress
//
// [Config.Progress] is called with (done, total) counted in inputs as
// chunks finish; examples/pool-progress draws a progress bar with it.
package pool
