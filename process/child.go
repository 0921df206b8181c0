package process

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/share"
)

// Exit statuses of a child, for observers other than Wait (which reads the
// child's report, not only its status).
const (
	exitOK    = 0 // the function returned nil and the flush succeeded
	exitError = 1 // the function returned an error, the flush failed, or the parent died
	exitPanic = 2 // the function panicked (Go's own status for a panic), or Main could not set up
)

var (
	mainCalled atomic.Bool
	reporting  atomic.Bool // the report is on its way: the parent may close its end
	childArgs  []string    // set by Main in a child, read-only afterwards
)

// Main runs the child side of a program that starts children with
// [Cmd.Start]. In a child it runs the registered function and ends the
// process: it never returns. Anywhere else (the parent, a program started
// another way) it returns at once, having done nothing. Call it first thing
// in main, before anything that should happen only in the parent:
//
//	func main() {
//		process.Main() // in a child: runs its function, then exits
//		// the parent's work
//	}
//
// In a test binary, call it at the top of TestMain.
//
// In a child, Main calls the function with a context that SIGTERM cancels,
// recovers a panic of the function, then runs the flush of every queue the
// child still has open (Go has no atexit; a queue registers its flush when
// created or inherited), bounded by [Cmd.FlushTimeout], also after an
// error or a panic. It then sends its report (success, the error's text,
// or the panic and its stack) to the parent over the control channel and
// exits with status 0, 1 (error) or 2 (panic): only an exit status tells
// observers other than Wait (a shell, a supervisor) that the child failed,
// and nothing of the parent's main may run in the child.
func Main() {
	mainCalled.Store(true)
	v, ok := os.LookupEnv(envName)
	if !ok {
		return
	}
	// Programs this child executes must not take themselves for children,
	// nor read descriptor numbers that describe this process.
	os.Unsetenv(envName)
	os.Unsetenv(share.EnvVar)
	childArgs = slices.Clone(os.Args[1:])
	os.Exit(runChild(v))
}

// Args returns the arguments the parent gave the child in [Cmd.Args]. It
// returns nil in a process that [Cmd.Start] did not start. It is safe for
// use by several goroutines.
func Args() []string { return slices.Clone(childArgs) }

func runChild(env string) int {
	opts, err := parseOptions(env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitPanic
	}
	name := opts.name
	ctl, err := conn.Inherit(ctlName)
	if err != nil {
		fmt.Fprintf(os.Stderr, "process: %s: control channel: %v\n", name, err)
		return exitPanic
	}
	// The handshake: Start returns once the parent has read this.
	if err := ctl.Send(report{Kind: kindReady}); err != nil {
		fmt.Fprintf(os.Stderr, "process: %s: control channel: %v\n", name, err)
		return exitError
	}
	ch := &child{name: name, ctl: ctl, flush: opts.flushTimeout}
	e, ok := lookup(name)
	if !ok {
		if !opts.outlive {
			go watchParent(ctl, name)
		}
		return ch.finishOnce(report{Kind: kindError, Msg: fmt.Sprintf(
			"process: no function registered as %q in the child (Register it in init, before process.Main runs)", name)})
	}
	fn := e.fn
	if e.typed != nil {
		// The parent sends the argument once it has read the handshake;
		// nothing else ever comes, so watchParent starts after.
		arg, err := ctl.RecvBytes()
		if err != nil {
			fmt.Fprintf(os.Stderr, "process: %s: receive the argument: %v\n", name, err)
			return exitError
		}
		fn = func(ctx context.Context) error {
			res, err := e.typed(ctx, arg)
			ch.result = res
			return err
		}
	}
	if !opts.outlive {
		go watchParent(ctl, name)
	}
	// SIGTERM, the parent's (or anyone's) request to stop, cancels the
	// function's context, and stays caught until the process exits so
	// that the flush can run. A function that has not returned after the
	// grace period is left behind: the child reports it, flushes and
	// exits all the same.
	fctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		time.Sleep(opts.grace)
		os.Exit(ch.finishOnce(report{Kind: kindError, Msg: fmt.Sprintf(
			"process: %s: the function did not return within its grace period (%v) after SIGTERM", name, opts.grace)}))
	}()
	return ch.finishOnce(ch.call(fctx, fn))
}

// watchParent exits the process when the control channel reports EOF: the
// parent, the only holder of the other end, is gone. The parent never
// sends anything, so any receive result means that, unless the parent has
// already read the report and closed its end, as it does at once.
func watchParent(ctl *conn.Conn, name string) {
	var v any
	err := ctl.Recv(&v)
	if reporting.Load() {
		return // Main is about to exit
	}
	fmt.Fprintf(os.Stderr, "process: %s: the parent process died (%v); exiting\n", name, err)
	os.Exit(exitError)
}

type child struct {
	name   string
	ctl    *conn.Conn
	flush  time.Duration
	result []byte // what a typed function returned, encoded
	// finishing is locked by the first caller of finishOnce and never
	// unlocked: the process exits after it.
	finishing sync.Mutex
}

// call runs fn on this goroutine and reports how it ended.
func (ch *child) call(ctx context.Context, fn func(context.Context) error) (rep report) {
	returned := false
	defer func() {
		if returned {
			return
		}
		r := recover()
		if r == nil {
			// runtime.Goexit: nothing stops it, so finish here.
			os.Exit(ch.finishOnce(report{Kind: kindError, Msg: "process: the function called runtime.Goexit"}))
		}
		rep = report{Kind: kindPanic, Msg: truncate(fmt.Sprint(r)), Stack: truncate(string(debug.Stack()))}
	}()
	err := fn(ctx)
	returned = true
	if err != nil {
		return report{Kind: kindError, Msg: truncate(err.Error()), Type: fmt.Sprintf("%T", err)}
	}
	return report{Kind: kindOK, Result: ch.result}
}

// finishOnce flushes the queues, sends the report and returns the exit
// status, for the first caller; a later one (the function returning while
// the grace period's end is being reported, or the other way round) waits
// for the exit.
func (ch *child) finishOnce(rep report) int {
	ch.finishing.Lock()
	// Tell the parent that the flush begins: it then gives the child its
	// flush timeout, even if its grace after SIGTERM runs out meanwhile.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	ch.ctl.SendContext(sctx, report{Kind: kindFlushing})
	cancel()
	ctx, cancel := context.WithTimeout(context.Background(), ch.flush)
	flushes, items, ferr := atexit.RunCounted(ctx)
	cancel()
	rep.Flushes, rep.Items = flushes, items
	if ferr != nil {
		msg := "flush before exit: " + ferr.Error()
		switch rep.Kind {
		case kindOK:
			rep.Kind, rep.Msg, rep.Type = kindError, msg, fmt.Sprintf("%T", ferr)
		case kindError:
			rep.Msg += "; " + msg
		case kindPanic:
			rep.Msg += " (then " + msg + ")"
		}
		rep.Flush = truncate(ferr.Error())
	}
	// A parent that is gone cannot read it; the exit status still tells.
	reporting.Store(true)
	sctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	ch.ctl.SendContext(sctx, rep)
	cancel()
	switch rep.Kind {
	case kindOK:
		return exitOK
	case kindPanic:
		return exitPanic
	}
	return exitError
}
