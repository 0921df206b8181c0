// Package process starts a function of this program in a child process, the
// Go counterpart of Python's multiprocessing.Process, and hands it shared
// objects (connections, locks, queues) by name.
//
// Go cannot fork a running program, so a child is this same program
// executed again (as moby/sys reexec does, through /proc/self/exe), told by
// its environment which registered function to run. Like Python's "spawn"
// start method, the child starts from a fresh state: it gets its arguments
// ([Cmd.Args], read with [Args]) and the objects shared with [Cmd.Share],
// nothing else of the parent's memory.
//
// A function with a typed argument and result is registered with
// [RegisterFunc], which returns its handle; the handle makes the commands,
// so a misspelled name does not compile:
//
//	var resize = process.RegisterFunc("resize", func(ctx context.Context, job Job) (Stats, error) {
//		... // runs in the child
//	})
//
//	func main() {
//		process.Main() // in a child: runs the function, then exits
//		stats, err := resize.Command(job).Run(ctx) // the child's result, or its error
//	}
//
// The argument is encoded with msgpack by Start, in the caller (a value
// that cannot be encoded fails there), and sent on the child's control
// channel; the result comes back in the child's report, to
// [TypedCmd.Wait].
//
// A function shaped like a command line program, or one that talks to its
// parent through shared queues and connections, is registered with
// [Register] and gets string arguments:
//
//	func init() {
//		process.Register("worker", worker) // both sides know the name
//	}
//
//	func main() {
//		process.Main() // in a child: runs worker, then exits
//		q, _ := queue.New[Job](0)
//		cmd := process.Command("worker", "--verbose")
//		cmd.Share(q, "jobs")
//		if err := cmd.Start(ctx); err != nil { ... }
//		...
//		err := cmd.Wait() // nil, or the child's own error
//	}
//
//	func worker(ctx context.Context) error {
//		q, err := queue.Inherit[Job]("jobs")
//		...
//	}
//
// # Logging
//
// [Cmd.Logger] receives Debug records of the child's life (started, with
// its pid and shares; exited, with its status and duration; killed when
// its grace ran out; its queues flushed at exit, with the item count).
// Setting MPROC_DEBUG=1 in the environment writes them to stderr for every
// Cmd without a Logger, as Python's log_to_stderr does. With
// [Cmd.LogStderr], the child's stderr lines go to the logger too, each with
// the child's name and pid.
//
// # From Python
//
//	Process(target=f, args=(x,))        h := RegisterFunc("f", f); h.Command(x).Start(ctx)
//	(a result, as concurrent.futures)   out, err := cmd.Wait()
//	Process(target=f, args=argv)        Register("f", f); Command("f", argv...).Start(ctx)
//	log_to_stderr(logging.DEBUG)        MPROC_DEBUG=1, or Cmd.Logger
//	p.join()                            Cmd.Wait (returns the child's error)
//	p.exitcode                          Cmd.ProcessState().ExitCode()
//	p.is_alive(), p.sentinel            Cmd.Done()
//	p.terminate(), p.kill()             Cmd.Signal(syscall.SIGTERM), Cmd.Kill
//	p.daemon = True                     the default: a child dies with its parent
//	a child that outlives a killed parent  Cmd.OutliveParent = true
//	p.pid                               Cmd.Pid
//
// # Who closes what
//
// [Cmd.Share] gives the child its own copy of an object's descriptors. A
// descriptor stays open as long as any process holds a copy, so while the
// parent holds a copy of the end of a pipe it gave a child, the other side
// never sees EOF when the child dies (docs/ARCHITECTURE.md, descriptor
// rule 3), and a Recv there waits forever for a dead child. So a
// successful Start closes this process's copy of every [conn.Conn] given
// with Share: the end belongs to the child now. [Keep] says otherwise, for an end the parent goes on using
// or gives to several children (the parent then closes it when done).
// Objects both sides use, such as a lock or a queue, stay open: the parent
// closes them when it is done with them. The package's own channel to the
// child is handled for you.
//
// # What Wait reports
//
// Each child has a control channel (a socketpair shared under the reserved
// name "mproc.process"; the parent holds the only other end). Just before
// it exits, the child sends its report there: success, the text and type
// of the error its function returned, or the value and stack of its panic.
// Wait turns that into nil, an [*Error] or a [*PanicError]. A child that
// ended without a report (killed by a signal, os.Exit in the function, a
// runtime crash) gives an [*ExitError] saying how it ended. The child's
// exit status agrees, for observers other than Wait: 0 success, 1 error,
// 2 panic.
//
// [Cmd.Done] is closed the moment the child has exited and been reaped, so
// a supervisor notices a dead child at once, in a select.
//
// # Starting
//
// [Cmd.Start] returns once the child has reached [Main], which says so on
// the control channel first thing. A program whose main forgot to call
// Main would otherwise run the parent's main again in the child, and the
// parent would wait for it forever: Start fails instead, with an error
// wrapping [ErrNoMain] that says what to add, at once when that child
// exits, after [Cmd.StartTimeout] when it does not (it is killed).
//
// # Stopping
//
// The context given to [Cmd.Start] governs the child's life. When it ends,
// the child is sent SIGTERM, which cancels the context its function runs
// with. The child bounds its own end: a function that has not returned
// [Cmd.Grace] after a SIGTERM (the parent's or anyone's) is left behind,
// and the child reports that, flushes its queues and exits with status 1;
// a child never survives a SIGTERM for long. Before it flushes, the child
// tells the parent, which then gives it [Cmd.FlushTimeout] rather than
// cutting the flush at Grace. The parent sends SIGKILL only to a child
// still there 5 s past those bounds (a stopped or wedged one). Wait's error
// then wraps the context's error. A child never outlives its Wait: once
// Wait returns it has been reaped.
//
// # Dying with the parent
//
// A child goes when the parent goes, however the parent goes, SIGKILL
// included, unless it was started with [Cmd.OutliveParent]. Two
// mechanisms, either one enough:
// the kernel's parent-death signal (Linux Pdeathsig, SIGKILL), sent when
// the thread that forked the child ends, which is why those children are
// forked from one goroutine locked to its thread for as long as any of them
// lives; and the control channel, which the child then watches: EOF on it
// means that no process holds the parent's end any more, and the child
// exits with status 1.
//
// # Flushing before exit
//
// Go has no atexit, and a queue may still buffer items its process has
// put. After the function returns (or fails, or panics), Main flushes every
// queue the child still has open, within [Cmd.FlushTimeout], before it
// reports; a flush that fails, times out or is cut short (the child
// killed meanwhile) is reported as an error that wraps [ErrFlush]. A
// parent that waits for a child before draining what the child put can
// therefore block until the flush gives up, as in Python (see "Joining
// processes that use queues" in Python's documentation): drain first.
//
// # Environment
//
// The child finds the name of its function in MPROC_PROCESS and its shared
// descriptors in MPROC_FDS (see the share protocol); Main removes both from
// its environment at once, so that programs the child executes do not take
// themselves for children. A process that was started as a child but did
// not call Main refuses to start children ([ErrNoMain]): they would run its
// main again, and so on.
package process
