package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

func TestMain(m *testing.M) {
	Main()
	// Race-enabled children would otherwise sleep a second in exit.
	if _, ok := os.LookupEnv("GORACE"); !ok {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testproc.Main(m)
}

// The functions the tests start in children. Each one that talks back
// inherits the Conn "out".

func init() {
	Register("ok", func(ctx context.Context) error { return nil })
	Register("echo-args", func(ctx context.Context) error {
		return out().Send(Args())
	})
	Register("echo-env", func(ctx context.Context) error {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		return out().Send([]string{os.Getenv("PROCESS_TEST_VAR"), os.Getenv(envName), os.Getenv("MPROC_FDS"), wd})
	})
	Register("fail", func(ctx context.Context) error {
		return &fs.PathError{Op: "open", Path: "/nonexistent", Err: syscall.ENOENT}
	})
	Register("panic", func(ctx context.Context) error { panicHere(); return nil })
	Register("goexit", func(ctx context.Context) error { runtime.Goexit(); return nil })
	Register("exit", func(ctx context.Context) error {
		code, _ := strconv.Atoi(Args()[0])
		os.Exit(code)
		return nil
	})
	Register("kill-self", func(ctx context.Context) error {
		return syscall.Kill(os.Getpid(), syscall.SIGKILL)
	})
	Register("print", func(ctx context.Context) error {
		fmt.Fprint(os.Stdout, "to stdout")
		fmt.Fprint(os.Stderr, "to stderr")
		return nil
	})
	// Sends "ready", then waits for its context: SIGTERM ends it.
	Register("wait-ctx", func(ctx context.Context) error {
		if err := out().Send("ready"); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	// Sends "ready", then ignores SIGTERM; its flush at exit sends
	// "flushed".
	Register("ignore-term", func(ctx context.Context) error {
		c := out()
		atexit.Register(func(ctx context.Context) error { return c.SendContext(ctx, "flushed") })
		if err := c.Send("ready"); err != nil {
			return err
		}
		time.Sleep(time.Hour)
		return nil
	})
	// Answers every message on the Duplex end "peer" with the message
	// doubled, until EOF.
	Register("double", func(ctx context.Context) error {
		peer, err := conn.Inherit("peer")
		if err != nil {
			return err
		}
		for {
			var n int
			if err := peer.Recv(&n); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := peer.Send(2 * n); err != nil {
				return err
			}
		}
	})
	// Registers a flush that sends "flushed" (or, with arg "block", one
	// that waits for its deadline), then returns the error given in
	// Args()[1], if any.
	Register("atexit", func(ctx context.Context) error {
		c := out()
		if Args()[0] == "block" {
			atexit.Register(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		} else {
			atexit.Register(func(ctx context.Context) error { return c.SendContext(ctx, "flushed") })
		}
		if len(Args()) > 1 {
			return errors.New(Args()[1])
		}
		return nil
	})
	// Starts "sleep" (Args()[0] == "pdeathsig": with only the
	// parent-death signal, "pipe-only": with only the control channel's
	// EOF, "outlive": with OutliveParent) and sends its pid, then sleeps.
	Register("intermediate", func(ctx context.Context) error {
		gc := Command("sleep")
		gc.noWatch = Args()[0] == "pdeathsig"
		gc.noPdeathsig = Args()[0] == "pipe-only"
		gc.OutliveParent = Args()[0] == "outlive"
		if err := gc.Start(ctx); err != nil {
			return err
		}
		if err := out().Send(gc.Pid()); err != nil {
			return err
		}
		time.Sleep(time.Hour)
		return nil
	})
	// Sends "ready" and waits for its context; its flush at exit sends
	// "flushing", then waits for a word from the parent.
	Register("slow-flush", func(ctx context.Context) error {
		c := out()
		atexit.Register(func(ctx context.Context) error {
			if err := c.SendContext(ctx, "flushing"); err != nil {
				return err
			}
			var s string
			return c.RecvContext(ctx, &s)
		})
		if err := c.Send("ready"); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	Register("sleep", func(ctx context.Context) error {
		time.Sleep(time.Hour)
		return nil
	})
}

func panicHere() { panic("boom") }

func out() *conn.Conn {
	c, err := conn.Inherit("out")
	if err != nil {
		panic(err)
	}
	return c
}

// start starts name with args, sharing the child's end of a Duplex as
// "out", and returns the parent's end.
func start(t *testing.T, cmd *Cmd) *conn.Conn {
	t.Helper()
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	t.Cleanup(func() { mine.Close() })
	require.NoError(t, cmd.Share(theirs, "out"))
	require.NoError(t, cmd.Start(context.Background()))
	require.NoError(t, theirs.Close(), "the parent closes the end it gave away")
	reap(t, cmd)
	return mine
}

// reap kills cmd at cleanup if the test left it running.
func reap(t *testing.T, cmd *Cmd) {
	t.Cleanup(func() {
		if cmd.Done() != nil {
			cmd.Kill()
			cmd.Wait()
		}
	})
}

func waitFor(t *testing.T, cmd *Cmd, d time.Duration) error {
	t.Helper()
	select {
	case <-cmd.Done():
		return cmd.Wait()
	case <-time.After(d):
		cmd.Kill()
		t.Fatalf("child %s did not exit within %v", cmd.Name, d)
		return nil
	}
}

func recvString(t *testing.T, c *conn.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s string
	require.NoError(t, c.RecvContext(ctx, &s))
	return s
}

// gone reports whether no process (not even a zombie) has the ID pid.
func gone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func TestStartWait(t *testing.T) {
	testproc.CheckFDs(t)
	cmd := Command("ok")
	require.Nil(t, cmd.Done(), "no Done channel before Start")
	require.Zero(t, cmd.Pid())
	require.NoError(t, cmd.Start(context.Background()))
	reap(t, cmd)
	pid := cmd.Pid()
	require.NotZero(t, pid)
	require.NoError(t, waitFor(t, cmd, 10*time.Second))
	require.NoError(t, cmd.Wait(), "Wait again returns the same result")
	require.NotNil(t, cmd.ProcessState())
	assert.True(t, cmd.ProcessState().Success())
	assert.ErrorIs(t, cmd.Signal(syscall.SIGTERM), os.ErrProcessDone, "signal after exit")
	assert.True(t, gone(pid), "child %d reaped", pid)
}

func TestMisuse(t *testing.T) {
	testproc.CheckFDs(t)
	cmd := Command("ok")
	assert.ErrorIs(t, cmd.Wait(), ErrNotStarted)
	assert.ErrorIs(t, cmd.Kill(), ErrNotStarted)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	assert.ErrorIs(t, cmd.Share(b, "mproc.process"), ErrReservedName)
	require.NoError(t, cmd.Share(b, "b"))
	assert.Error(t, cmd.Share(b, "b"), "a name shared twice")
	assert.ErrorIs(t, cmd.Share(b, "bad name"), ErrBadName, "an invalid name")

	require.NoError(t, cmd.Run(context.Background()))
	assert.ErrorIs(t, cmd.Start(context.Background()), ErrStarted)
	assert.ErrorIs(t, cmd.Share(b, "c"), ErrStarted)

	assert.ErrorIs(t, Command("no-such-function").Start(context.Background()), ErrNotRegistered)
	assert.Panics(t, func() { Register("ok", func(context.Context) error { return nil }) }, "duplicate")
	assert.Panics(t, func() { Register("a b", func(context.Context) error { return nil }) }, "bad name")
	assert.Panics(t, func() { Register("nil", nil) }, "nil function")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, Command("ok").Start(ctx), context.Canceled, "Start with an ended context")
}

// A child whose main forgot process.Main must not start children: they
// would run its main again.
func TestNoMain(t *testing.T) {
	t.Setenv(envName, "ok")
	mainCalled.Store(false)
	defer mainCalled.Store(true)
	assert.ErrorIs(t, Command("ok").Start(context.Background()), ErrNoMain)
}

func TestArgsAndEnv(t *testing.T) {
	testproc.CheckFDs(t)
	args := []string{"one", "two words", "", "-test.run=x"}
	c := start(t, Command("echo-args", args...))
	var got []string
	require.NoError(t, c.Recv(&got))
	assert.Equal(t, args, got)

	t.Setenv(envName, "leaked") // Start drops it from the environment it copies
	cmd := Command("echo-env")
	cmd.Env = append(os.Environ(), "PROCESS_TEST_VAR=set")
	cmd.Dir = t.TempDir()
	c = start(t, cmd)
	require.NoError(t, c.Recv(&got))
	assert.Equal(t, []string{"set", "", "", cmd.Dir}, got, "Env and Dir reach the child; Main clears the package's variables")
	require.NoError(t, waitFor(t, cmd, 10*time.Second))
}

// Shared objects reach the child by name: a Duplex end carries a
// conversation in both directions.
func TestShareDuplex(t *testing.T) {
	testproc.CheckFDs(t)
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	cmd := Command("double")
	require.NoError(t, cmd.Share(theirs, "peer"))
	require.NoError(t, cmd.Start(context.Background()))
	reap(t, cmd)
	require.NoError(t, theirs.Close())
	for i := range 10 {
		require.NoError(t, mine.Send(i))
		var got int
		require.NoError(t, mine.Recv(&got))
		assert.Equal(t, 2*i, got)
	}
	require.NoError(t, mine.Close(), "EOF ends the child's loop")
	require.NoError(t, waitFor(t, cmd, 10*time.Second))
}

// A child that dies before sending on a Conn whose other end the parent
// forgot to close: Start closed the parent's copy of the end it gave away,
// so Recv sees EOF instead of waiting forever for a dead child.
func TestGivenConnClosedByStart(t *testing.T) {
	testproc.CheckFDs(t)
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	cmd := Command("kill-self") // dies without a word
	require.NoError(t, cmd.Share(theirs, "out"))
	require.NoError(t, cmd.Start(context.Background()))
	reap(t, cmd)
	// No theirs.Close() here: the mistake this test is about.
	assert.ErrorIs(t, theirs.Send(1), conn.ErrClosed, "Start closed this process's copy of the end it gave away")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v any
	assert.ErrorIs(t, mine.RecvContext(ctx, &v), io.EOF, "the child's death is EOF, not a hang")
	var ee *ExitError
	require.ErrorAs(t, waitFor(t, cmd, 10*time.Second), &ee)
	assert.Equal(t, syscall.SIGKILL, ee.Signal())
}

// Keep leaves the parent's copy open: the same end goes to two children,
// and the parent still uses it after both Starts.
func TestKeep(t *testing.T) {
	testproc.CheckFDs(t)
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	var cmds []*Cmd
	for range 2 {
		cmd := Command("wait-ctx") // sends "ready" on out, then waits
		require.NoError(t, cmd.Share(Keep(theirs), "out"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		require.NoError(t, cmd.Start(ctx))
		reap(t, cmd)
		cmds = append(cmds, cmd)
	}
	assert.Equal(t, "ready", recvString(t, mine))
	assert.Equal(t, "ready", recvString(t, mine))
	require.NoError(t, theirs.Send("from the parent"), "the kept end is still open here")
	assert.Equal(t, "from the parent", recvString(t, mine))
	require.NoError(t, theirs.Close())
	for _, cmd := range cmds {
		require.NoError(t, cmd.Signal(syscall.SIGTERM))
		assert.Error(t, waitFor(t, cmd, 10*time.Second))
	}
}

// Children started at once from several goroutines, some on the locked
// starter thread, each with its own conversation.
func TestConcurrentStarts(t *testing.T) {
	testproc.CheckFDs(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			mine, theirs, err := pipe.Duplex()
			if !assert.NoError(t, err) {
				return
			}
			defer mine.Close()
			cmd := Command("double")
			cmd.OutliveParent = i%2 == 0 // not from the locked starter thread
			assert.NoError(t, cmd.Share(theirs, "peer"))
			err = cmd.Start(context.Background())
			theirs.Close()
			if !assert.NoError(t, err) {
				return
			}
			defer cmd.Kill()
			var got int
			assert.NoError(t, mine.Send(i))
			assert.NoError(t, mine.Recv(&got))
			assert.Equal(t, 2*i, got)
			mine.Close()
			select {
			case <-cmd.Done():
				assert.NoError(t, cmd.Wait())
			case <-time.After(10 * time.Second):
				t.Errorf("child %d did not exit", i)
			}
		})
	}
	wg.Wait()
}

func TestErrorReported(t *testing.T) {
	testproc.CheckFDs(t)
	cmd := Command("fail")
	err := cmd.Run(context.Background())
	var perr *Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, "fail", perr.Name)
	assert.Equal(t, cmd.Pid(), perr.Pid)
	assert.Equal(t, "open /nonexistent: no such file or directory", perr.Msg)
	assert.Equal(t, "*fs.PathError", perr.Type)
	assert.Contains(t, err.Error(), "no such file or directory")
	assert.Equal(t, exitError, cmd.ProcessState().ExitCode())
}

func TestPanicReported(t *testing.T) {
	testproc.CheckFDs(t)
	cmd := Command("panic")
	err := cmd.Run(context.Background())
	var perr *PanicError
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, "boom", perr.Value)
	assert.Contains(t, perr.Stack, "process.panicHere", "the stack shows where it panicked")
	assert.Contains(t, err.Error(), "panic: boom")
	assert.Equal(t, exitPanic, cmd.ProcessState().ExitCode())
}

func TestGoexitReported(t *testing.T) {
	testproc.CheckFDs(t)
	var perr *Error
	require.ErrorAs(t, Command("goexit").Run(context.Background()), &perr)
	assert.Contains(t, perr.Msg, "Goexit")
}

// A function registered in the parent only (after the child's Main ran)
// is missing in the child, which says so.
var registerLate sync.Once

func TestNotRegisteredInChild(t *testing.T) {
	testproc.CheckFDs(t)
	registerLate.Do(func() { Register("parent-only", func(context.Context) error { return nil }) })
	var perr *Error
	require.ErrorAs(t, Command("parent-only").Run(context.Background()), &perr)
	assert.Contains(t, perr.Msg, `no function registered as "parent-only"`)
}

func TestExitReported(t *testing.T) {
	testproc.CheckFDs(t)
	for _, code := range []int{0, 3} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			err := Command("exit", strconv.Itoa(code)).Run(context.Background())
			var eerr *ExitError
			require.ErrorAs(t, err, &eerr, "os.Exit(%d) in the function is an error", code)
			assert.Equal(t, code, eerr.ExitCode())
			assert.Zero(t, eerr.Signal())
			assert.Contains(t, err.Error(), "before its function returned")
		})
	}
}

func TestSignalReported(t *testing.T) {
	testproc.CheckFDs(t)
	err := Command("kill-self").Run(context.Background())
	var eerr *ExitError
	require.ErrorAs(t, err, &eerr)
	assert.Equal(t, syscall.SIGKILL, eerr.Signal())
	assert.Equal(t, -1, eerr.ExitCode())
	assert.Contains(t, err.Error(), "signal: killed")

	// Killed from outside (by a signal the Go runtime of the child, which
	// runs by the time Start returns, does not catch); Done notices at once.
	cmd := Command("sleep")
	require.NoError(t, cmd.Start(context.Background()))
	reap(t, cmd)
	require.NoError(t, cmd.Signal(syscall.SIGHUP))
	select {
	case <-cmd.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10s after the child was killed")
	}
	require.ErrorAs(t, cmd.Wait(), &eerr)
	assert.Equal(t, syscall.SIGHUP, eerr.Signal())
}

// Canceling the context sends SIGTERM, which cancels the child's
// function's context: the function returns and the child exits cleanly.
func TestCancelGraceful(t *testing.T) {
	testproc.CheckFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	cmd := Command("wait-ctx")
	require.NoError(t, cmd.Share(theirs, "out"))
	require.NoError(t, cmd.Start(ctx))
	reap(t, cmd)
	theirs.Close()
	require.Equal(t, "ready", recvString(t, mine))
	pid := cmd.Pid()

	cancel()
	err = waitFor(t, cmd, 10*time.Second)
	require.ErrorIs(t, err, context.Canceled, "Wait says the context stopped the child")
	var perr *Error
	require.ErrorAs(t, err, &perr, "and carries what the child's function returned")
	assert.Equal(t, "context canceled", perr.Msg)
	assert.True(t, gone(pid), "no process left behind")
}

// A child whose function ignores SIGTERM reports it and exits by itself
// when its grace period ends, whoever sent the SIGTERM, after its flush;
// with a negative grace the end of the context kills it at once.
func TestGraceAfterSIGTERM(t *testing.T) {
	testproc.CheckFDs(t)
	for _, tc := range []struct {
		name  string
		grace time.Duration
		ctx   bool // SIGTERM through the end of Start's context, not Signal
	}{{"ctx", 200 * time.Millisecond, true}, {"signal", 200 * time.Millisecond, false}, {"kill", -1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			mine, theirs, err := pipe.Duplex()
			require.NoError(t, err)
			defer mine.Close()
			cmd := Command("ignore-term")
			cmd.Grace = tc.grace
			require.NoError(t, cmd.Share(theirs, "out"))
			require.NoError(t, cmd.Start(ctx))
			reap(t, cmd)
			require.Equal(t, "ready", recvString(t, mine))
			pid := cmd.Pid()

			if tc.ctx {
				cancel()
			} else {
				require.NoError(t, cmd.Signal(syscall.SIGTERM))
			}
			err = waitFor(t, cmd, 10*time.Second)
			if tc.ctx {
				require.ErrorIs(t, err, context.Canceled)
			}
			if tc.grace < 0 {
				var eerr *ExitError
				require.ErrorAs(t, err, &eerr)
				assert.Equal(t, syscall.SIGKILL, eerr.Signal())
			} else {
				var perr *Error
				require.ErrorAs(t, err, &perr, "the child reported, it was not killed")
				assert.Contains(t, perr.Msg, "did not return within its grace period (200ms) after SIGTERM")
				assert.Equal(t, "flushed", recvString(t, mine), "and it flushed before it exited")
				assert.Equal(t, exitError, cmd.ProcessState().ExitCode())
			}
			assert.True(t, gone(pid), "no process left behind")
		})
	}
}

// A child that cannot keep its own bounds (stopped here) is killed by the
// parent a little after its grace period.
func TestStoppedChildKilled(t *testing.T) {
	testproc.CheckFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := Command("sleep")
	cmd.Grace = 100 * time.Millisecond
	require.NoError(t, cmd.Start(ctx))
	reap(t, cmd)
	require.NoError(t, cmd.Signal(syscall.SIGSTOP))
	cancel()
	err := waitFor(t, cmd, 10*time.Second)
	require.ErrorIs(t, err, context.Canceled)
	var eerr *ExitError
	require.ErrorAs(t, err, &eerr)
	assert.Equal(t, syscall.SIGKILL, eerr.Signal())
}

// A flush at exit that takes longer than the grace period is not cut
// short: the child announced it, and the parent gives it FlushTimeout.
func TestFlushOutlastsGrace(t *testing.T) {
	testproc.CheckFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	cmd := Command("slow-flush")
	cmd.Grace = 100 * time.Millisecond
	cmd.FlushTimeout = time.Minute
	require.NoError(t, cmd.Share(theirs, "out"))
	require.NoError(t, cmd.Start(ctx))
	reap(t, cmd)
	require.Equal(t, "ready", recvString(t, mine))
	cancel()
	stopped := time.Now()
	require.Equal(t, "flushing", recvString(t, mine))
	// The bound this test is about is time itself: wait past the point
	// where a child that had not announced its flush would be killed.
	time.Sleep(time.Until(stopped.Add(cmd.Grace + killMargin + 500*time.Millisecond)))
	select {
	case <-cmd.Done():
		t.Fatalf("the child was stopped in its flush: %v", cmd.Wait())
	default:
	}
	require.NoError(t, mine.Send("go on"))
	err = waitFor(t, cmd, 10*time.Second)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrFlush)
	var perr *Error
	require.ErrorAs(t, err, &perr, "the child reported: its function returned ctx's error")
	assert.Equal(t, "context canceled", perr.Msg)
}

func TestFlushBeforeExit(t *testing.T) {
	testproc.CheckFDs(t)
	// The flush runs after the function returns, also after an error.
	for _, args := range [][]string{{"send"}, {"send", "failed"}} {
		cmd := Command("atexit", args...)
		c := start(t, cmd)
		assert.Equal(t, "flushed", recvString(t, c))
		err := waitFor(t, cmd, 10*time.Second)
		if len(args) > 1 {
			var perr *Error
			require.ErrorAs(t, err, &perr)
			assert.Equal(t, "failed", perr.Msg)
		} else {
			require.NoError(t, err)
		}
	}

	// A flush that cannot finish is cut at FlushTimeout and reported.
	cmd := Command("atexit", "block")
	cmd.FlushTimeout = 100 * time.Millisecond
	start(t, cmd)
	var perr *Error
	err := waitFor(t, cmd, 10*time.Second)
	require.ErrorAs(t, err, &perr)
	assert.ErrorIs(t, err, ErrFlush, "Wait says the flush did not complete")
	assert.Contains(t, perr.Msg, "flush before exit: context deadline exceeded")
}

func TestOutput(t *testing.T) {
	testproc.CheckFDs(t)
	// Passed through by default: the child writes to this process's own
	// stdout and stderr.
	r, w, err := fd.Pipe("test-stdout")
	require.NoError(t, err)
	defer r.Close()
	saved := os.Stdout
	os.Stdout = w
	cmd := Command("print")
	cmd.Stderr = io.Discard
	err = cmd.Start(context.Background())
	os.Stdout = saved
	w.Close()
	require.NoError(t, err)
	reap(t, cmd)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "to stdout", string(got))
	require.NoError(t, waitFor(t, cmd, 10*time.Second))

	// Or to any writer.
	var stdout, stderr bytes.Buffer
	cmd = Command("print")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(context.Background()))
	assert.Equal(t, "to stdout", stdout.String())
	assert.Equal(t, "to stderr", stderr.String())
}

// The parent dying (SIGKILL) takes its children down, unless they were
// started with OutliveParent: an intermediate child starts a grandchild,
// and is killed. This process becomes the subreaper of its descendants,
// so the orphaned grandchild is reparented here and its end can be
// observed exactly.
func TestDieWithParent(t *testing.T) {
	testproc.CheckFDs(t)
	require.NoError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	for _, tc := range []struct {
		mode string
		want func(t *testing.T, ws syscall.WaitStatus)
	}{
		{"pdeathsig", func(t *testing.T, ws syscall.WaitStatus) {
			assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by Pdeathsig, got %v", ws)
		}},
		{"pipe-only", func(t *testing.T, ws syscall.WaitStatus) {
			assert.True(t, ws.Exited() && ws.ExitStatus() == exitError, "exited on EOF, got %v", ws)
		}},
		{"default", func(t *testing.T, ws syscall.WaitStatus) { // both: whichever acts first
			assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL || ws.Exited() && ws.ExitStatus() == exitError,
				"killed by Pdeathsig or exited on EOF, got %v", ws)
		}},
		{"outlive", nil},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := Command("intermediate", tc.mode)
			c := start(t, cmd)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var pid int
			require.NoError(t, c.RecvContext(ctx, &pid))
			require.NotZero(t, pid)
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); reapOrphan(pid, time.Second) })

			require.NoError(t, cmd.Kill())
			var eerr *ExitError
			require.ErrorAs(t, waitFor(t, cmd, 10*time.Second), &eerr)

			if tc.want == nil {
				// The parent's death is over (it was reaped), and with it
				// the parent-death signal it would have sent: the
				// grandchild runs on, with no SIGKILL pending.
				st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				require.NoError(t, err, "grandchild %d gone", pid)
				fields := map[string]string{}
				for _, line := range strings.Split(string(st), "\n") {
					if k, v, ok := strings.Cut(line, ":"); ok {
						fields[k] = strings.TrimSpace(v)
					}
				}
				assert.NotContains(t, fields["State"], "zombie")
				assert.Equal(t, strconv.Itoa(os.Getpid()), fields["PPid"], "reparented to this subreaper")
				for _, k := range []string{"SigPnd", "ShdPnd"} {
					mask, err := strconv.ParseUint(fields[k], 16, 64)
					require.NoError(t, err)
					assert.Zero(t, mask&(1<<(syscall.SIGKILL-1)), "%s: no SIGKILL pending", k)
				}
				return
			}
			ws, ok := reapOrphan(pid, 2*time.Second)
			require.True(t, ok, "grandchild %d still running 2s after its parent died", pid)
			tc.want(t, ws)
			assert.True(t, gone(pid))
		})
	}
}

// reapOrphan waits up to d for the orphan pid, a child of this process as
// its subreaper, to exit, and reaps it.
func reapOrphan(pid int, d time.Duration) (syscall.WaitStatus, bool) {
	deadline := time.Now().Add(d)
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid {
			return ws, true
		}
		if err != nil && err != syscall.EINTR || time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The starter goroutine, locked to its thread while children that die
// with their parent live, ends with the last of them.
func TestStarterEnds(t *testing.T) {
	cmds := make([]*Cmd, 3)
	for i := range cmds {
		cmds[i] = Command("ok")
		require.NoError(t, cmds[i].Start(context.Background()))
		reap(t, cmds[i])
	}
	for _, cmd := range cmds {
		require.NoError(t, waitFor(t, cmd, 10*time.Second))
	}
	starter.mu.Lock()
	defer starter.mu.Unlock()
	assert.Zero(t, starter.live)
	assert.Nil(t, starter.reqs, "the starter goroutine was told to end")
}

func TestOptions(t *testing.T) {
	for _, o := range []options{
		{name: "w", flushTimeout: DefaultFlushTimeout, grace: DefaultGrace},
		{name: "a.b-c_1", flushTimeout: 1500 * time.Millisecond, grace: 0, outlive: true},
	} {
		got, err := parseOptions(o.String())
		require.NoError(t, err)
		assert.Equal(t, o, got)
	}
	got, err := parseOptions("w")
	require.NoError(t, err)
	assert.Equal(t, options{name: "w", flushTimeout: DefaultFlushTimeout, grace: DefaultGrace}, got, "defaults")
	for _, bad := range []string{"", ",outlive", "w,flush=", "w,flush=-1s", "w,flush=x", "w,grace=-1s", "w,other"} {
		_, err := parseOptions(bad)
		assert.Error(t, err, "%q is malformed", bad)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Name: "w", Pid: 7, Msg: "bad"}
	assert.Equal(t, "process: w (pid 7): bad", e.Error())
	p := &PanicError{Name: "w", Pid: 7, Value: "boom", Stack: "goroutine 1"}
	assert.True(t, strings.HasPrefix(p.Error(), "process: w (pid 7): panic: boom\n"))
	assert.Equal(t, strings.Repeat("x", maxText), truncate(strings.Repeat("x", maxText)))
	assert.Contains(t, truncate(strings.Repeat("x", maxText+5)), "[5 bytes truncated]")
}

func BenchmarkRun(b *testing.B) {
	for b.Loop() {
		if err := Command("ok").Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// A program that forgot process.Main (testdata/nomain, built here): its
// children run its main again. Start and pool.New must fail in the parent,
// saying what to add, instead of hanging: at once when the child's main
// returns (the program sets StartTimeout to an hour there, so only that
// can end Start), within StartTimeout when it blocks.
func TestForgotMain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "nomain")
	out, err := exec.Command(goCmd, "build", "-o", bin, "./testdata/nomain").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	for _, tc := range []struct{ mode, want string }{
		{"exit", "the child ended (exit status 0) before it reached process.Main"},
		{"hang", "the child did not reach process.Main within 1s (Cmd.StartTimeout)"},
		{"pool", "pool: start a worker: "},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(os.Environ(), "NOMAIN_MODE="+tc.mode)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children too are killed below
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			cmd.WaitDelay = 5 * time.Second
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			require.NoError(t, err, "the program ran to its end (a hang would be killed after a minute); output:\n%s", out)
			defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			// The parent's line; children that ran main again print theirs.
			prefix := strconv.Itoa(cmd.Process.Pid) + ": "
			var line string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, prefix) {
					line = l
				}
			}
			require.NotEmpty(t, line, "the parent printed its result:\n%s", out)
			assert.Contains(t, line, "ErrNoMain=true")
			assert.Contains(t, line, tc.want)
			assert.Contains(t, line, "add process.Main() as the first statement of main")
		})
	}
}
