package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/debuglog"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/pipe"
)

const (
	// envName names, in a child's environment, the function it runs and
	// its options (see env.go). Main removes it at once, so that programs
	// the child executes do not take themselves for children.
	envName = "MPROC_PROCESS"
	// ctlName is the share name of the control channel: a socketpair whose
	// parent end only the parent holds. The child writes its report to it,
	// and may watch it for EOF (the parent died).
	ctlName = reservedPrefix + "process"
	// reservedPrefix starts the share names this package keeps.
	reservedPrefix = "mproc."
	// self is the running program: exec'ing it works even when the file has
	// been replaced or deleted since this process started.
	self = "/proc/self/exe"
)

const (
	// DefaultGrace is how long a child's function has to return after
	// SIGTERM; see [Cmd.Grace].
	DefaultGrace = 5 * time.Second
	// DefaultFlushTimeout bounds the flush of a child's queues after its
	// function returns.
	DefaultFlushTimeout = 10 * time.Second
	// DefaultStartTimeout bounds the time between a child's start and its
	// call of [Main]; see [Cmd.StartTimeout].
	DefaultStartTimeout = 10 * time.Second

	// killMargin is how long the parent gives a child past the bound the
	// child keeps itself (Grace after SIGTERM, FlushTimeout once its flush
	// began) before SIGKILL: only a stopped or wedged child needs it.
	killMargin = 5 * time.Second // far more than a busy machine delays the child's own timer
)

// entry is a registered function: fn for Register, typed for RegisterFunc
// (the argument and the result encoded).
type entry struct {
	fn    func(ctx context.Context) error
	typed func(ctx context.Context, arg []byte) ([]byte, error)
}

var funcs struct {
	sync.Mutex
	m map[string]entry
}

// Register makes fn startable in a child under name. Call it in an init
// function or before [Main], so that the parent and the child (the same
// program) both know the name. Register panics if name is empty, is not
// made of ASCII letters, digits, '_', '-' and '.', or is already
// registered, or if fn is nil. It is safe for use by several goroutines.
//
// In the child, fn runs on the main goroutine. Its ctx is canceled when the
// child receives SIGTERM (which is how [Cmd.Start] stops a child when its
// context ends); the child's other arguments come from [Args] and its
// shared objects from the Inherit functions of their packages.
//
// A function that takes a typed argument and returns a result is
// registered with [RegisterFunc] instead.
func Register(name string, fn func(ctx context.Context) error) {
	if fn == nil {
		panic("process: Register " + name + " with a nil function")
	}
	register("Register", name, entry{fn: fn})
}

func register(what, name string, e entry) {
	if !share.ValidName(name) {
		panic(fmt.Sprintf("process: %s %q: use ASCII letters, digits, '_', '-' and '.'", what, name))
	}
	funcs.Lock()
	defer funcs.Unlock()
	if funcs.m == nil {
		funcs.m = make(map[string]entry)
	}
	if _, dup := funcs.m[name]; dup {
		panic("process: " + what + " " + name + ": the name is registered already")
	}
	funcs.m[name] = e
}

func lookup(name string) (entry, bool) {
	funcs.Lock()
	defer funcs.Unlock()
	e, ok := funcs.m[name]
	return e, ok
}

// A Sharer is an object a child can inherit by name: every mproc
// primitive (conn.Conn, lock.Lock, the queues, ...). Its Share appends its
// descriptors to cmd.ExtraFiles and records them in cmd.Env under name. It
// is conn.Sharer, the same interface.
type Sharer = conn.Sharer

type notSendable = share.Local[cmdName]

// cmdName names process.Cmd in the errors of notSendable.
type cmdName struct{}

func (cmdName) String() string { return "process.Cmd" }

// Cmd is a child process running a registered function of this program.
// Build it with [Command], set the fields and call [Cmd.Share], then
// [Cmd.Start]. The fields and Share must not be changed or called after
// Start, and Start must not race with them; Wait, Done, Pid, Signal, Kill
// and ProcessState are safe for use by several goroutines once Start has
// returned.
//
// The child gets its own copy of each shared object's descriptors. A
// [conn.Conn] given with Share is an end given away: once the child has
// its copy, Start closes this process's, because while the parent holds a
// copy the other side never sees EOF when the child dies, and a Recv there
// would wait forever for a dead child (docs/ARCHITECTURE.md, descriptor
// rule 3). Wrap the Conn in [Keep] to go on using it in this process, or
// to give the same end to several children. Other objects (a lock, a queue), used on both sides,
// stay open: Start closes none of them.
type Cmd struct {
	// notSendable makes msgpack refuse a Cmd in a message: see ErrNotSendable.
	notSendable

	// Name is the registered function the child runs.
	Name string
	// Args are the child's arguments, returned by [Args] in the child and
	// visible as os.Args[1:] there (os.Args[0] is this program's).
	Args []string
	// Env is the child's environment; nil means this process's. The
	// variables describing the shared objects are added to it.
	Env []string
	// Dir is the child's working directory; empty means this process's.
	Dir string
	// Stdin is the child's standard input; nil means the null device.
	Stdin io.Reader
	// Stdout and Stderr are where the child's output goes; nil means this
	// process's own (the output passes through), io.Discard the null
	// device. As with exec.Cmd, a writer that is not an *os.File is fed by
	// a goroutine through a pipe.
	Stdout, Stderr io.Writer
	// Grace is how long the child's function has to return after SIGTERM
	// (sent when the context given to Start ends, or by anyone else):
	// SIGTERM cancels the function's context, and a child whose function
	// has not returned when Grace has passed reports so and exits by
	// itself. Either way the child then flushes its queues (bounded by
	// FlushTimeout). The parent sends SIGKILL only to a child that is
	// still there a little (5 s) after those bounds: a stopped or wedged
	// one. Zero means DefaultGrace; a negative value makes the end of the
	// context send SIGKILL at once (and an outside SIGTERM end the child
	// without waiting for its function).
	Grace time.Duration
	// FlushTimeout bounds the flush of the child's queues after its
	// function returns (see [Main]). Zero means DefaultFlushTimeout.
	FlushTimeout time.Duration
	// StartTimeout bounds the time the child has to reach [Main] (a
	// program's main must call it first). Start fails with an error
	// wrapping [ErrNoMain] when the child has not reached it by then, or
	// exits before. Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// OutliveParent lets the child go on running when this process dies.
	// By default a child dies with its parent, however the parent dies
	// (Python's daemon processes, more strictly: a parent killed by a
	// signal takes its children too): the kernel sends the child SIGKILL
	// (Linux's parent-death signal), and the child also exits when its
	// control channel reports EOF, which happens when no process holds
	// the parent's end any more.
	OutliveParent bool
	// Logger receives the Debug records of the child's life: started
	// (name, pid, shares), exited (status, duration), killed when its grace
	// ran out, and the flush of its queues at exit (items). nil means
	// silent, unless the environment variable MPROC_DEBUG is set to 1:
	// then a text logger writes them to stderr.
	Logger *slog.Logger
	// LogStderr sends the child's standard error, line by line, to Logger
	// (at level Info, message "process: child stderr", with the child's
	// name and pid and the line) instead of to this process's stderr, as
	// hashicorp/go-plugin does. It applies when Stderr is nil and the
	// logger takes Info records; otherwise the output goes where Stderr
	// says. A line longer than 64 KiB is cut into several records.
	LogStderr bool

	// noPdeathsig leaves the control channel as the only parent-death
	// signal, noWatch the parent-death signal; for tests (with both, the
	// one that acts first is a race: the parent's descriptors close before
	// the kernel sends the signal).
	noPdeathsig, noWatch bool

	mu      sync.Mutex
	shares  *exec.Cmd    // collects the shares until Start
	names   []string     // the share names, for the log
	given   []*conn.Conn // Conn ends given away, closed by Start
	started bool
	cmd     *exec.Cmd // nil until Start succeeded
	run     *run      // nil until Start succeeded
	arg     []byte    // the encoded argument of a TypedCmd, sent on the control channel
	result  []byte    // the encoded result of a TypedCmd, from the report
}

// run is one started child, as the goroutines that watch it see it.
type run struct {
	ready    chan error    // the child's first word: nil once it reached Main
	flushing chan struct{} // closed when the child said its exit flush began
	done     chan struct{} // closed once the child is reaped and the fields below set
	lines    *lineLog      // the child's stderr, with LogStderr

	mu      sync.Mutex
	cause   error     // context.Cause of Start's ctx, once it ended and the child was signalled
	termed  bool      // the child was sent SIGTERM because the context ended
	flushAt time.Time // when the flushing notice came
	state   *os.ProcessState
	err     error
}

// Command returns a Cmd that runs the function registered under name in a
// child, with args. Whether name is registered is checked by Start.
func Command(name string, args ...string) *Cmd {
	return &Cmd{Name: name, Args: args}
}

// Share arranges for the child to inherit s under name: the child gets it
// with its package's Inherit function (conn.Inherit(name), ...). The
// arguments are in the order of every primitive's own Share, the object
// shared and the command before the name: cmd.Share(q, "jobs") is
// q.Share(cmd, "jobs") for a process.Cmd. It fails for a name already
// shared, an invalid one, one with the reserved "mproc." prefix, after
// Start, and with the errors of s.Share. A *conn.Conn is closed in this
// process by a successful Start, unless wrapped in [Keep]; see [Cmd].
func (c *Cmd) Share(s Sharer, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return fmt.Errorf("process: Share %q: %w", name, ErrStarted)
	}
	if strings.HasPrefix(name, reservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedName, name)
	}
	if c.shares == nil {
		// A non-nil Env keeps share.Add from copying os.Environ: Start
		// puts the environment together.
		c.shares = &exec.Cmd{Env: []string{}}
	}
	given, _ := s.(*conn.Conn)
	if k, ok := s.(kept); ok {
		s = k.s
	}
	if err := s.Share(c.shares, name); err != nil {
		return err
	}
	if given != nil {
		c.given = append(c.given, given)
	}
	c.names = append(c.names, name)
	return nil
}

// Keep wraps a Sharer so that [Cmd.Start] leaves this process's copy open:
// for a [conn.Conn] end the parent goes on using itself, or gives to
// several children (Start closes a Conn given with [Cmd.Share] otherwise).
// The caller then closes it when done with it; the other side sees EOF
// only after that.
func Keep(s Sharer) Sharer { return kept{s} }

type kept struct{ s Sharer }

func (k kept) Share(cmd *exec.Cmd, name string) error { return k.s.Share(cmd, name) }

// Start starts the child and returns once the child has reached [Main].
// ctx governs the child's life: when ctx ends before the child exits, the
// child is sent SIGTERM, which cancels its function's context, and is
// given Grace to return and FlushTimeout to flush (see [Cmd.Grace]); Wait
// reports it. A [conn.Conn] given with Share is closed in this process
// once the child has its copy (see [Cmd]).
//
// Start returns the errors of exec.Cmd.Start, ErrNotRegistered,
// ErrStarted, ctx's error when ctx ends before the child reached Main, and
// an error wrapping ErrNoMain when the child exits before it reaches Main
// or has not reached it within StartTimeout (the program's main does not
// call Main first: the child would run the parent's main again), in which
// case the child is killed. Whether it succeeds or not, the Cmd cannot be
// started again.
func (c *Cmd) Start(ctx context.Context) error {
	if ctx == nil {
		panic("process: Start with a nil context")
	}
	c.mu.Lock()
	started := c.started
	c.started = true
	c.mu.Unlock()
	// Share fails once started is set: the fields read below stay put.
	if started {
		return fmt.Errorf("process: %s: %w", c.Name, ErrStarted)
	}
	e, ok := lookup(c.Name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotRegistered, c.Name)
	}
	if e.typed != nil && c.arg == nil {
		return fmt.Errorf("%w: %q", ErrTyped, c.Name)
	}
	if _, isChild := os.LookupEnv(envName); isChild && !mainCalled.Load() {
		return fmt.Errorf("process: %s: this process is a child, and starting another one would run main again: %w", c.Name, ErrNoMain)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("process: %s: %w", c.Name, err)
	}

	mine, theirs, err := pipe.Duplex()
	if err != nil {
		return fmt.Errorf("process: %s: %w", c.Name, err)
	}
	// The parent's copy of the child's end is closed as soon as the child
	// has its own (rule 3): the child's exit must be EOF here, also while
	// Start waits for its first word.
	defer theirs.Close()
	shares := c.shares
	if shares == nil {
		shares = &exec.Cmd{Env: []string{}}
	}
	if err := theirs.Share(shares, ctlName); err != nil {
		mine.Close()
		return fmt.Errorf("process: %s: %w", c.Name, err)
	}

	grace := c.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	opts := options{name: c.Name, flushTimeout: c.FlushTimeout, grace: max(grace, 0), outlive: c.OutliveParent || c.noWatch}
	if opts.flushTimeout <= 0 {
		opts.flushTimeout = DefaultFlushTimeout
	}
	cmd := exec.Command(self)
	cmd.Args = append([]string{os.Args[0]}, c.Args...)
	cmd.Env = c.environ(shares.Env, opts)
	cmd.Dir = c.Dir
	cmd.ExtraFiles = shares.ExtraFiles
	cmd.Stdin = c.Stdin
	cmd.Stdout = output(c.Stdout, os.Stdout)
	cmd.Stderr = output(c.Stderr, os.Stderr)
	log := debuglog.Resolve(c.Logger)
	var lines *lineLog
	if c.LogStderr && c.Stderr == nil && log.Enabled(context.Background(), slog.LevelInfo) {
		lines = &lineLog{log: log, name: c.Name}
		cmd.Stderr = lines
	}
	// How long Wait waits for the child's output pipes (with a Stdout or
	// Stderr that is not a file) once the child has exited: a grandchild
	// may hold them.
	cmd.WaitDelay = max(grace, time.Second)

	release := func() {}
	if !c.OutliveParent && !c.noPdeathsig {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		release, err = startOnLockedThread(cmd.Start)
	} else {
		err = cmd.Start()
	}
	theirs.Close()
	if err != nil {
		mine.Close()
		return fmt.Errorf("process: %s: %w", c.Name, err)
	}
	if lines != nil {
		lines.pid.Store(int64(cmd.Process.Pid))
	}
	r := &run{ready: make(chan error, 1), flushing: make(chan struct{}), done: make(chan struct{}), lines: lines}
	began := time.Now()
	go c.wait(cmd, mine, release, r, log, began)

	// The handshake: the child's Main says it is there.
	timeout := c.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	pid := cmd.Process.Pid
	select {
	case err = <-r.ready:
	case <-t.C:
		err = fmt.Errorf("process: %s (pid %d): the child did not reach process.Main within %v (Cmd.StartTimeout): "+
			"%w: add process.Main() as the first statement of main (of TestMain in a test binary)", c.Name, pid, timeout, ErrNoMain)
	case <-ctx.Done():
		err = fmt.Errorf("process: %s (pid %d): before the child reached process.Main: %w", c.Name, pid, ctx.Err())
	}
	if err != nil {
		cmd.Process.Kill()
		<-r.done
		return err
	}

	for _, g := range c.given {
		g.Close() // the child has its copy: see Cmd
	}
	c.given = nil
	c.mu.Lock()
	c.cmd, c.run = cmd, r
	c.mu.Unlock()
	log.Debug("process: child started", "name", c.Name, "pid", pid, "shares", c.names)
	go c.stopOnDone(ctx, cmd, r, grace, opts.flushTimeout)
	return nil
}

// stopOnDone stops the child when ctx ends before it exits: SIGTERM, then
// SIGKILL if the child is still there killMargin after the bound it keeps
// itself (Grace for its function; FlushTimeout from the start of its
// flush, which it announces).
func (c *Cmd) stopOnDone(ctx context.Context, cmd *exec.Cmd, r *run, grace, flush time.Duration) {
	select {
	case <-r.done:
		return
	case <-ctx.Done():
	}
	sig := syscall.SIGTERM
	if grace < 0 {
		sig = syscall.SIGKILL
	}
	// The cause is recorded with the signal, under r.mu, so that the wait
	// goroutine, which reads it once the child is reaped, cannot miss it.
	r.mu.Lock()
	err := cmd.Process.Signal(sig)
	if err == nil {
		r.cause, r.termed = context.Cause(ctx), sig == syscall.SIGTERM
	}
	r.mu.Unlock()
	if err != nil {
		return // exited meanwhile
	}
	if sig == syscall.SIGKILL {
		return
	}
	deadline := time.Now().Add(grace + killMargin)
	flushing := r.flushing
	for {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-r.done:
			t.Stop()
			return
		case <-flushing:
			t.Stop()
			r.mu.Lock()
			deadline = r.flushAt.Add(flush + killMargin)
			r.mu.Unlock()
			flushing = nil // this case is done
			continue
		case <-t.C:
		}
		cmd.Process.Kill()
		return
	}
}

// environ puts the child's environment together: the base (Env or this
// process's) without any variable of this package or of the share
// protocol, then the shares' variable and the child's options.
func (c *Cmd) environ(shared []string, opts options) []string {
	base := c.Env
	if base == nil {
		base = os.Environ()
	}
	env := slices.DeleteFunc(slices.Clone(base), func(kv string) bool {
		return strings.HasPrefix(kv, envName+"=") || strings.HasPrefix(kv, share.EnvVar+"=")
	})
	for _, kv := range shared {
		if strings.HasPrefix(kv, share.EnvVar+"=") {
			env = append(env, kv)
		}
	}
	return append(env, envName+"="+opts.String())
}

func output(w, dflt io.Writer) io.Writer {
	switch w {
	case nil:
		return dflt
	case io.Discard:
		return nil // exec.Cmd opens the null device
	}
	return w
}

// wait runs from Start until the child has been reaped: it reads the
// child's messages on the control channel (ready, flushing, the report),
// which end with the child (its end closes when it exits), then reaps it
// and records the outcome.
func (c *Cmd) wait(cmd *exec.Cmd, parent *conn.Conn, release func(), r *run, log *slog.Logger, began time.Time) {
	var rep report
	if c.arg == nil {
		parent.SetMaxMessageSize(4 * maxText) // a typed function's result is in its report
	}
	ready, flushing := false, false
	for rep.Kind == kindNone {
		var m report
		if err := parent.Recv(&m); err != nil {
			break // EOF: the child is gone; anything else: no usable report
		}
		switch {
		case m.Kind == kindReady && !ready:
			ready = true
			if c.arg != nil {
				// The child reads its argument right after the
				// handshake. A child that died meanwhile makes the send
				// fail, and Wait reports how it ended; any other failure
				// would leave it waiting, so it is killed.
				if err := parent.SendBytes(c.arg); err != nil {
					cmd.Process.Kill()
				}
			}
			r.ready <- nil
		case m.Kind == kindFlushing && ready && !flushing:
			flushing = true
			r.mu.Lock()
			r.flushAt = time.Now()
			r.mu.Unlock()
			close(r.flushing)
		case m.Kind == kindOK || m.Kind == kindError || m.Kind == kindPanic:
			rep = m
		}
	}
	parent.Close()
	werr := cmd.Wait()
	release()
	if r.lines != nil {
		r.lines.flush() // exec's copying has ended with Wait
	}

	state := cmd.ProcessState
	pid := cmd.Process.Pid
	if !ready {
		r.ready <- fmt.Errorf("process: %s (pid %d): the child ended (%v) before it reached process.Main: "+
			"%w: add process.Main() as the first statement of main (of TestMain in a test binary)", c.Name, pid, state, ErrNoMain)
	}
	var err error
	switch {
	case state == nil:
		err = fmt.Errorf("process: %s (pid %d): %w", c.Name, pid, werr)
	case rep.Kind == kindPanic:
		err = &PanicError{Name: c.Name, Pid: pid, Value: rep.Msg, Stack: rep.Stack}
	case rep.Kind == kindError:
		err = &Error{Name: c.Name, Pid: pid, Msg: rep.Msg, Type: rep.Type}
	case rep.Kind != kindOK || !state.Success():
		err = &ExitError{Name: c.Name, Pid: pid, State: state}
	case errors.Is(werr, exec.ErrWaitDelay):
		err = fmt.Errorf("process: %s (pid %d): %w", c.Name, pid, werr)
	}
	if rep.Flush != "" || flushing && rep.Kind == kindNone {
		// Items the child had put may not have reached their queue.
		err = fmt.Errorf("%w: %w", ErrFlush, err)
	}
	r.mu.Lock()
	if cause := r.cause; cause != nil {
		if err == nil {
			err = fmt.Errorf("process: %s (pid %d) stopped: %w", c.Name, pid, cause)
		} else {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}
	r.state, r.err = state, err
	termed := r.termed
	r.mu.Unlock()
	if err == nil {
		c.mu.Lock()
		c.result = rep.Result
		c.mu.Unlock()
	}
	if ready {
		c.logExit(log, began, pid, state, rep, termed, err)
	}
	close(r.done)
}

// logExit writes the Debug records of the child's end.
func (c *Cmd) logExit(log *slog.Logger, began time.Time, pid int, state *os.ProcessState, rep report, termed bool, err error) {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if rep.Flushes > 0 {
		log.Debug("process: child flushed its queues at exit", "name", c.Name, "pid", pid,
			"queues", rep.Flushes, "items", rep.Items)
	}
	status := "unknown"
	if state != nil {
		status = state.String()
		if ws, ok := state.Sys().(syscall.WaitStatus); ok && termed && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			grace := c.Grace
			if grace == 0 {
				grace = DefaultGrace
			}
			log.Debug("process: grace period ended in SIGKILL", "name", c.Name, "pid", pid, "grace", grace)
		}
	}
	attrs := []any{"name", c.Name, "pid", pid, "status", status, "duration", time.Since(began)}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	log.Debug("process: child exited", attrs...)
}

// Wait waits for the child to exit and returns what became of it: nil when
// its function returned nil (and its queues were flushed);
// an *[Error] when the function returned an error; a *[PanicError] when it
// panicked; an *[ExitError] when the child ended otherwise (a signal,
// os.Exit, a crash). When the context given to Start ended first and the
// child was signalled, the error also wraps the context's error (test with
// errors.Is). Wait may be called any number of times, by several
// goroutines; every call returns the same result.
func (c *Cmd) Wait() error {
	r := c.current()
	if r == nil {
		return ErrNotStarted
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// current returns the run, nil before a successful Start.
func (c *Cmd) current() *run {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.run
}

// Run starts the child and waits for it.
func (c *Cmd) Run(ctx context.Context) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	return c.Wait()
}

// Done returns a channel that is closed as soon as the child has exited
// and its result is ready for Wait: the way to notice a child's death at
// once, in a select. It is nil before Start.
func (c *Cmd) Done() <-chan struct{} {
	if r := c.current(); r != nil {
		return r.done
	}
	return nil
}

// Pid returns the child's process ID, or 0 before Start.
func (c *Cmd) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// ProcessState returns how the child ended, or nil while it runs.
func (c *Cmd) ProcessState() *os.ProcessState {
	r := c.current()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Signal sends sig to the child. After the child has exited it returns
// os.ErrProcessDone (the process is never confused with a later one that
// reuses its ID).
func (c *Cmd) Signal(sig os.Signal) error {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return ErrNotStarted
	}
	return cmd.Process.Signal(sig)
}

// Kill sends SIGKILL to the child; see Signal.
func (c *Cmd) Kill() error { return c.Signal(syscall.SIGKILL) }
