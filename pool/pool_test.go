package pool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/pool"
	"github.com/mproc-go/mproc/process"
)

func TestMain(m *testing.M) {
	process.Main() // a worker: runs its tasks, then exits
	// Race-enabled children would otherwise sleep a second in exit.
	if _, ok := os.LookupEnv("GORACE"); !ok {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testproc.Main(m)
}

// The task functions the tests run in workers.
var (
	square = pool.Register("square", func(ctx context.Context, x int) (int, error) {
		return x * x, nil
	})
	upper = pool.Register("upper", func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	})
	describe = pool.Register("describe", func(ctx context.Context, in point) (label, error) {
		return label{Name: fmt.Sprintf("(%d,%d)", in.X, in.Y), Sum: float64(in.X + in.Y)}, nil
	})
	// pid returns the worker's process ID, after sleeping in.Sleep.
	pid = pool.Register("pid", func(ctx context.Context, in job) (result, error) {
		if err := sleep(ctx, in.Sleep); err != nil {
			return result{}, err
		}
		return result{Index: in.Index, Pid: os.Getpid()}, nil
	})
	// faulty fails the inputs divisible by 3 and panics on those
	// divisible by 5.
	faulty = pool.Register("faulty", func(ctx context.Context, x int) (int, error) {
		switch {
		case x%5 == 0:
			panic(fmt.Sprintf("five divides %d", x))
		case x%3 == 0:
			return 0, &os.PathError{Op: "divide", Path: strconv.Itoa(x), Err: syscall.EDOM}
		}
		return x, nil
	})
	// crash makes the worker die the way in.How says on the input in.Die,
	// once (when in.Dir is set: the first to create the marker file dies)
	// or always.
	crash = pool.Register("crash", func(ctx context.Context, in crashJob) (int, error) {
		if in.Index == in.Die && firstTime(in.Dir) {
			switch in.How {
			case "kill":
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			case "exit":
				os.Exit(3)
			case "goroutine-panic":
				done := make(chan struct{})
				go func() {
					defer close(done)
					panic("a goroutine of the task panicked")
				}()
				<-done
			}
		}
		return in.Index, nil
	})
	// block tells the "events" connection that it started and waits for
	// its context.
	block = pool.Register("block", func(ctx context.Context, x int) (int, error) {
		if err := events.Send(os.Getpid()); err != nil {
			return 0, err
		}
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// greet uses what the initializer set up.
	greet = pool.Register("greet", func(ctx context.Context, name string) (string, error) {
		return greeting + ", " + name, nil
	})

	// withEvents inherits the "events" connection and says hello on it.
	withEvents = pool.RegisterInit("with-events", func(ctx context.Context) error {
		c, err := conn.Inherit("events")
		if err != nil {
			return err
		}
		events = c
		greeting = "hello from " + strconv.Itoa(os.Getpid())
		return events.Send(os.Getpid())
	})
	// parentOnly is registered in the parent only (a worker's environment
	// names the function it runs): its workers do not know it.
	parentOnly = func() *pool.Func[int, int] {
		if _, worker := os.LookupEnv("MPROC_PROCESS"); worker {
			return nil
		}
		return pool.Register("parent-only", func(ctx context.Context, x int) (int, error) { return x, nil })
	}()
	failingInit = pool.RegisterInit("failing-init", func(ctx context.Context) error {
		return errors.New("no database here")
	})
	hangingInit = pool.RegisterInit("hanging-init", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	panickingInit = pool.RegisterInit("panicking-init", func(ctx context.Context) error {
		panic("the initializer panicked")
	})
	// echo returns its input, or a channel (which msgpack cannot encode)
	// for the input "chan".
	echo = pool.Register("echo", func(ctx context.Context, v any) (any, error) {
		if v == "chan" {
			return make(chan int), nil
		}
		return v, nil
	})
)

// Set by withEvents in a worker.
var (
	events   *conn.Conn
	greeting string
)

type point struct{ X, Y int }

type label struct {
	Name string
	Sum  float64
}

type job struct {
	Index int
	Sleep time.Duration
}

type result struct{ Index, Pid int }

type crashJob struct {
	Index, Die int
	How, Dir   string
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// firstTime reports whether this is the first call with dir, across
// processes; an empty dir means always.
func firstTime(dir string) bool {
	if dir == "" {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, "marker"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// newPool starts a pool that the test terminates at cleanup, after which
// it checks that no worker is left.
func newPool[In, Out any](t *testing.T, fn *pool.Func[In, Out], cfg pool.Config) *pool.Pool[In, Out] {
	t.Helper()
	p, err := pool.New(context.Background(), fn, cfg)
	require.NoError(t, err, "New")
	t.Cleanup(func() {
		p.Terminate()
		assert.Empty(t, children(t), "child processes left after Terminate")
	})
	return p
}

// children returns the process IDs of this process's children.
func children(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestMapOrdered(t *testing.T) {
	testproc.CheckFDs(t)
	for _, size := range []int{0, 1, 7, 5000} {
		t.Run(fmt.Sprintf("chunk=%d", size), func(t *testing.T) {
			p := newPool(t, square, pool.Config{Workers: 2, ChunkSize: size})
			in := ints(1000)
			out, err := p.Map(context.Background(), in)
			require.NoError(t, err)
			require.Len(t, out, len(in))
			for i, x := range in {
				require.Equal(t, x*x, out[i], "output %d", i)
			}
			out, err = p.Map(context.Background(), nil)
			require.NoError(t, err, "Map of no inputs")
			assert.Empty(t, out)
		})
	}
}

func TestMapTypes(t *testing.T) {
	testproc.CheckFDs(t)
	t.Run("string", func(t *testing.T) {
		p := newPool(t, upper, pool.Config{Workers: 2})
		out, err := p.Map(context.Background(), []string{"a", "", "héllo", strings.Repeat("x", 70000)})
		require.NoError(t, err)
		assert.Equal(t, []string{"A", "", "HÉLLO", strings.Repeat("X", 70000)}, out)
	})
	t.Run("struct", func(t *testing.T) {
		p := newPool(t, describe, pool.Config{Workers: 2, ChunkSize: 3})
		out, err := p.Map(context.Background(), []point{{1, 2}, {-3, 4}, {0, 0}, {5, 5}})
		require.NoError(t, err)
		assert.Equal(t, []label{{"(1,2)", 3}, {"(-3,4)", 1}, {"(0,0)", 0}, {"(5,5)", 10}}, out)
	})
}

func TestImapOrdered(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, pid, pool.Config{Workers: 2, ChunkSize: 2})
	// The first chunks are the slowest: later ones finish first and wait
	// for their turn.
	var in []job
	for i := range 20 {
		in = append(in, job{Index: i, Sleep: time.Duration(max(0, 6-i)) * 10 * time.Millisecond})
	}
	var got []int
	for r, err := range p.Imap(context.Background(), slices.Values(in)) {
		require.NoError(t, err)
		got = append(got, r.Index)
	}
	assert.Equal(t, ints(20), got, "Imap yields in input order")
}

func TestImapUnordered(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, pid, pool.Config{Workers: 2, ChunkSize: 1})
	in := []job{{Index: 0, Sleep: 500 * time.Millisecond}}
	for i := 1; i < 30; i++ {
		in = append(in, job{Index: i})
	}
	var got []int
	for r, err := range p.ImapUnordered(context.Background(), slices.Values(in)) {
		require.NoError(t, err)
		got = append(got, r.Index)
	}
	assert.NotEqual(t, 0, got[0], "the slow first input is not the first result")
	slices.Sort(got)
	assert.Equal(t, ints(30), got, "every input once")

	// Stopping early sends no more chunks and ends the call.
	n := 0
	for _, err := range p.ImapUnordered(context.Background(), slices.Values(in[1:])) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	out, err := p.Map(context.Background(), in[1:5])
	require.NoError(t, err, "the pool works after a range stopped early")
	assert.Len(t, out, 4)
}

func TestTaskErrors(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, faulty, pool.Config{Workers: 2, ChunkSize: 4})
	in := []int{1, 2, 3, 4, 5, 7, 9, 11}
	out, err := p.Map(context.Background(), in)
	require.Error(t, err)
	assert.Equal(t, []int{1, 2, 0, 4, 0, 7, 0, 11}, out, "the other results arrive; failed ones are zero")

	var merr *pool.MapError
	require.ErrorAs(t, err, &merr)
	assert.Equal(t, 8, merr.Total)
	require.Len(t, merr.Tasks, 3, "one TaskError per failed input")
	idx := []int{merr.Tasks[0].Index, merr.Tasks[1].Index, merr.Tasks[2].Index}
	assert.Equal(t, []int{2, 4, 6}, idx, "task errors name the input index, in order")

	e := merr.Tasks[0]
	assert.Equal(t, "divide 3: numerical argument out of domain", e.Msg)
	assert.Equal(t, "*fs.PathError", e.Type)
	assert.NoError(t, e.Err, "a returned error is no loss")
	assert.Contains(t, e.Error(), "input 2")

	e = merr.Tasks[1]
	assert.ErrorIs(t, e, pool.ErrPanic)
	assert.Equal(t, "five divides 5", e.Msg)
	assert.Contains(t, e.Stack, "pool_test", "the panicking goroutine's stack comes back")
	assert.ErrorIs(t, err, pool.ErrPanic, "errors.Is sees into a MapError")
	assert.Contains(t, err.Error(), "3 of 8 tasks failed")

	// Imap yields each error with its input, and goes on.
	var got []string
	for x, err := range p.Imap(context.Background(), slices.Values(in)) {
		var te *pool.TaskError
		if errors.As(err, &te) {
			got = append(got, "err"+strconv.Itoa(te.Index))
		} else {
			require.NoError(t, err)
			got = append(got, strconv.Itoa(x))
		}
	}
	assert.Equal(t, []string{"1", "2", "err2", "4", "err4", "7", "err6", "11"}, got)

	// Apply returns the TaskError itself.
	_, err = p.Apply(context.Background(), 6)
	var te *pool.TaskError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 0, te.Index)
	assert.Contains(t, te.Msg, "divide 6")
}

// A worker that dies in the middle of a map loses its chunk to a fresh
// worker; the map completes, each result once.
func TestWorkerDies(t *testing.T) {
	for _, how := range []string{"kill", "exit", "goroutine-panic"} {
		t.Run(how, func(t *testing.T) {
			testproc.CheckFDs(t)
			p := newPool(t, crash, pool.Config{Workers: 2, ChunkSize: 5})
			dir := t.TempDir()
			var in []crashJob
			for i := range 40 {
				in = append(in, crashJob{Index: i, Die: 17, How: how, Dir: dir})
			}
			out, err := p.Map(context.Background(), in)
			require.NoError(t, err, "the lost chunk ran again")
			assert.Equal(t, ints(40), out)
			_, err = os.Stat(filepath.Join(dir, "marker"))
			require.NoError(t, err, "a worker did die")
		})
	}
}

// Quick chunks are sent ahead, so a worker holds two when it dies: both
// run again, each result once.
func TestWorkerDiesHoldingTwoChunks(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, crash, pool.Config{Workers: 2, ChunkSize: 10})
	dir := t.TempDir()
	var in []crashJob
	for i := range 20000 {
		in = append(in, crashJob{Index: i, Die: 15000, How: "kill", Dir: dir})
	}
	before := pool.Prefetched()
	for range 2 {
		out, err := p.Map(context.Background(), in)
		require.NoError(t, err)
		require.Equal(t, ints(20000), out)
	}
	_, err := os.Stat(filepath.Join(dir, "marker"))
	require.NoError(t, err, "a worker did die")
	assert.Greater(t, pool.Prefetched(), before, "quick chunks were sent ahead")
}

func TestWorkerKilledFromOutside(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, pid, pool.Config{Workers: 2, ChunkSize: 2})
	var in []job
	for i := range 60 {
		in = append(in, job{Index: i, Sleep: 10 * time.Millisecond})
	}
	seen := make(map[int]int)
	var killed int
	for r, err := range p.ImapUnordered(context.Background(), slices.Values(in)) {
		require.NoError(t, err)
		seen[r.Index]++
		if killed == 0 {
			killed = r.Pid
			require.NoError(t, syscall.Kill(r.Pid, syscall.SIGKILL))
		}
	}
	require.Len(t, seen, 60, "every input has a result")
	for i, n := range seen {
		require.Equal(t, 1, n, "input %d yielded %d times", i, n)
	}
}

func TestWorkerAlwaysDies(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, crash, pool.Config{Workers: 2, ChunkSize: 5, MaxTries: 2})
	var in []crashJob
	for i := range 20 {
		in = append(in, crashJob{Index: i, Die: 7, How: "exit"})
	}
	start := time.Now()
	out, err := p.Map(context.Background(), in)
	var merr *pool.MapError
	require.ErrorAs(t, err, &merr)
	require.Len(t, merr.Tasks, 5, "the inputs of the chunk that kills its workers fail")
	for i, te := range merr.Tasks {
		assert.Equal(t, 5+i, te.Index)
		assert.ErrorIs(t, te, pool.ErrWorkerLost)
		var xerr *process.ExitError
		require.ErrorAs(t, te, &xerr, "how the last worker died")
		assert.Equal(t, 3, xerr.ExitCode())
	}
	assert.Contains(t, merr.Tasks[0].Error(), "2 times")
	for i := range 20 {
		if i < 5 || i >= 10 {
			assert.Equal(t, i, out[i], "the other chunks' results arrive")
		}
	}
	t.Logf("map with a poisonous chunk: %v", time.Since(start))
}

func TestMaxTasksPerChild(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, pid, pool.Config{Workers: 2, ChunkSize: 1, MaxTasksPerChild: 3})
	var in []job
	for i := range 24 {
		in = append(in, job{Index: i})
	}
	out, err := p.Map(context.Background(), in)
	require.NoError(t, err)
	count := make(map[int]int)
	for i, r := range out {
		require.Equal(t, i, r.Index)
		count[r.Pid]++
	}
	assert.GreaterOrEqual(t, len(count), 8, "24 inputs, at most 3 per worker")
	for pid, n := range count {
		assert.LessOrEqual(t, n, 3, "worker %d ran %d inputs", pid, n)
	}
}

// eventPool starts a pool of block whose workers inherit the write end of
// a pipe; the test reads their pids from the returned read end.
func eventPool(t *testing.T, ctx context.Context, cfg pool.Config) (*pool.Pool[int, int], *conn.Conn, error) {
	t.Helper()
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	cfg.Init = withEvents
	cfg.Shares = map[string]process.Sharer{"events": w}
	p, err := pool.New(ctx, block, cfg)
	if err == nil {
		t.Cleanup(func() {
			p.Terminate()
			assert.Empty(t, children(t), "child processes left after Terminate")
		})
	}
	return p, r, err
}

// recvPid reads one pid from the events pipe.
func recvPid(t *testing.T, r *conn.Conn) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var pid int
	require.NoError(t, r.RecvContext(ctx, &pid))
	return pid
}

func TestInitializer(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	p := newPool(t, greet, pool.Config{Workers: 2, Init: withEvents, Shares: map[string]process.Sharer{"events": w}})
	started := map[int]bool{recvPid(t, r): true, recvPid(t, r): true}
	require.Len(t, started, 2, "each worker ran the initializer, with the shared pipe")
	out, err := p.Map(context.Background(), []string{"a", "b", "c", "d"})
	require.NoError(t, err)
	for _, s := range out {
		pid, err := strconv.Atoi(strings.TrimPrefix(strings.Split(s, ",")[0], "hello from "))
		require.NoError(t, err, "greeting %q", s)
		assert.True(t, started[pid], "greeting %q comes from an initialized worker", s)
	}
}

// TestNotRegistered: a function the workers do not know fails each of its
// inputs with ErrNotRegistered, whose test works although the error was
// made in the worker; the worker stays and serves the next call.
func TestNotRegistered(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, parentOnly, pool.Config{Workers: 1})
	_, err := p.Map(context.Background(), []int{1, 2, 3})
	require.ErrorIs(t, err, pool.ErrNotRegistered)
	var merr *pool.MapError
	require.ErrorAs(t, err, &merr)
	assert.Len(t, merr.Tasks, 3, "every input failed")
	assert.Contains(t, err.Error(), `"parent-only"`, "the error names the function")
	out, err := pool.Bind(p.Executor, square).Map(context.Background(), []int{1, 2, 3})
	require.NoError(t, err, "the worker serves the functions it knows")
	assert.Equal(t, []int{1, 4, 9}, out)
}

func TestInitializerFails(t *testing.T) {
	testproc.CheckFDs(t)
	_, err := pool.New(context.Background(), square, pool.Config{Workers: 2, Init: failingInit})
	require.ErrorIs(t, err, pool.ErrInit)
	assert.Contains(t, err.Error(), "no database here")
	assert.Empty(t, children(t), "a failed New leaves no process")

	_, err = pool.New(context.Background(), square, pool.Config{Workers: 1, Init: panickingInit})
	require.Error(t, err)
	assert.NotErrorIs(t, err, pool.ErrInit, "a panic is no initializer error")
	var perr *process.PanicError
	require.ErrorAs(t, err, &perr, "how the worker ended")
	assert.Equal(t, "the initializer panicked", perr.Value)
	assert.Empty(t, children(t), "a failed New leaves no process")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = pool.New(ctx, square, pool.Config{Workers: 2, Init: hangingInit, Grace: time.Second})
	require.ErrorIs(t, err, context.DeadlineExceeded, "New waits for the initializers no longer than its ctx")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Empty(t, children(t), "a failed New leaves no process")

	_, err = pool.New(context.Background(), square, pool.Config{Shares: map[string]process.Sharer{"mproc_pool": nil}})
	assert.ErrorContains(t, err, "mproc_pool", "the pool's own share name is refused")
}

// Canceling a call's ctx returns at once and stops the workers busy with
// it; the pool goes on with fresh ones.
func TestCancelCall(t *testing.T) {
	testproc.CheckFDs(t)
	p, events, err := eventPool(t, context.Background(), pool.Config{Workers: 2, ChunkSize: 1, Grace: 2 * time.Second})
	require.NoError(t, err)
	first := []int{recvPid(t, events), recvPid(t, events)} // the initializers

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Map(ctx, ints(10))
		done <- err
	}()
	busy := []int{recvPid(t, events), recvPid(t, events)} // two tasks started
	assert.ElementsMatch(t, first, busy)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Map did not return after its ctx was canceled")
	}
	require.Eventually(t, func() bool {
		for _, pid := range busy {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "the busy workers were stopped")

	// Fresh workers take the next call.
	tctx, tcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer tcancel()
	_, err = p.Apply(tctx, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	fresh := recvPid(t, events)
	assert.NotContains(t, busy, fresh, "a fresh worker ran the next task")
}

// Ending New's ctx terminates the pool: every call returns, no worker is
// left.
func TestCancelPool(t *testing.T) {
	testproc.CheckFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, events, err := eventPool(t, ctx, pool.Config{Workers: 2, Grace: 2 * time.Second})
	require.NoError(t, err)
	recvPid(t, events)
	recvPid(t, events)
	task := p.Submit(context.Background(), 1)
	done := make(chan error, 1)
	go func() {
		_, err := p.Map(context.Background(), ints(10))
		done <- err
	}()
	recvPid(t, events)
	recvPid(t, events)
	cancel()
	err = <-done
	assert.ErrorIs(t, err, pool.ErrTerminated)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = task.Wait(context.Background())
	assert.ErrorIs(t, err, pool.ErrTerminated)
	jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer jcancel()
	require.NoError(t, p.Join(jctx))
	assert.Empty(t, children(t), "no worker left")
	_, err = p.Map(context.Background(), ints(1))
	assert.ErrorIs(t, err, pool.ErrTerminated)
}

func TestTerminate(t *testing.T) {
	testproc.CheckFDs(t)
	p, events, err := eventPool(t, context.Background(), pool.Config{Workers: 2, Grace: 2 * time.Second})
	require.NoError(t, err)
	recvPid(t, events)
	recvPid(t, events)
	done := make(chan error, 1)
	go func() {
		_, err := p.Map(context.Background(), ints(10))
		done <- err
	}()
	recvPid(t, events)
	p.Terminate()
	p.Terminate() // idempotent
	assert.ErrorIs(t, <-done, pool.ErrTerminated)
	assert.Empty(t, children(t), "Terminate waited for every worker")
	_, err = p.Map(context.Background(), ints(1))
	assert.ErrorIs(t, err, pool.ErrTerminated)
	assert.NoError(t, p.Join(context.Background()))
}

func TestCloseJoin(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, pid, pool.Config{Workers: 2})
	require.ErrorIs(t, p.Join(context.Background()), pool.ErrRunning)
	var tasks []*pool.Task[result]
	for i := range 6 {
		tasks = append(tasks, p.Submit(context.Background(), job{Index: i, Sleep: 50 * time.Millisecond}))
	}
	p.Close()
	p.Close()
	_, err := p.Map(context.Background(), []job{{}})
	require.ErrorIs(t, err, pool.ErrClosed)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, p.Join(ctx))
	assert.Empty(t, children(t), "Join waited for every worker")
	for i, task := range tasks {
		r, err := task.Wait(context.Background())
		require.NoError(t, err, "a task submitted before Close ran")
		assert.Equal(t, i, r.Index)
	}
}

func TestGo(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, pid, pool.Config{Workers: 1})
	task := p.Submit(context.Background(), job{Index: 7, Sleep: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := task.Wait(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Wait gives up with its ctx")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			r, err := task.Wait(context.Background())
			assert.NoError(t, err)
			assert.Equal(t, 7, r.Index, "every Wait gets the result")
		})
	}
	wg.Wait()

	// A task whose ctx ends while it waits for a worker is dropped.
	busy := p.Submit(context.Background(), job{Sleep: 200 * time.Millisecond})
	tctx, tcancel := context.WithCancel(context.Background())
	dropped := p.Submit(tctx, job{Index: 1})
	tcancel()
	_, err = dropped.Wait(context.Background())
	assert.ErrorIs(t, err, context.Canceled)
	_, err = busy.Wait(context.Background())
	assert.NoError(t, err)

	r, err := p.Apply(context.Background(), job{Index: 3})
	require.NoError(t, err)
	assert.Equal(t, 3, r.Index)
}

func TestProgress(t *testing.T) {
	testproc.CheckFDs(t)
	var mu sync.Mutex
	var seen [][2]int
	p := newPool(t, square, pool.Config{Workers: 2, ChunkSize: 10, Progress: func(done, total int) {
		mu.Lock()
		seen = append(seen, [2]int{done, total})
		mu.Unlock()
	}})
	_, err := p.Map(context.Background(), ints(95))
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 11, "one call at submission, one per chunk")
	assert.Equal(t, [2]int{0, 95}, seen[0])
	assert.Equal(t, [2]int{95, 95}, seen[len(seen)-1], "the last call comes before Map returns")
	for i := 1; i < len(seen); i++ {
		assert.Greater(t, seen[i][0], seen[i-1][0], "done grows")
	}
}

// Values msgpack cannot encode fail their inputs, on either side.
func TestUnencodable(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, echo, pool.Config{Workers: 1, ChunkSize: 1})
	out, err := p.Map(context.Background(), []any{"a", make(chan int), "chan", int8(4)})
	var merr *pool.MapError
	require.ErrorAs(t, err, &merr)
	require.Len(t, merr.Tasks, 2)
	assert.Equal(t, 1, merr.Tasks[0].Index)
	assert.ErrorContains(t, merr.Tasks[0], "encode the inputs", "an input that does not encode")
	assert.Equal(t, 2, merr.Tasks[1].Index)
	assert.Contains(t, merr.Tasks[1].Msg, "encode the result", "an output that does not encode")
	assert.Equal(t, []any{"a", nil, nil, int8(4)}, out, "the other inputs went through")
}

// A call that ends early leaves the progress total: done meets total
// again.
func TestProgressEndsEarly(t *testing.T) {
	testproc.CheckFDs(t)
	var mu sync.Mutex
	var last [2]int
	p := newPool(t, pid, pool.Config{Workers: 2, ChunkSize: 2, Progress: func(done, total int) {
		mu.Lock()
		last = [2]int{done, total}
		mu.Unlock()
	}})
	var in []job
	for i := range 100 {
		in = append(in, job{Index: i, Sleep: time.Millisecond})
	}
	n := 0
	for _, err := range p.ImapUnordered(context.Background(), slices.Values(in)) {
		require.NoError(t, err)
		if n++; n == 10 {
			break
		}
	}
	mu.Lock()
	got := last
	mu.Unlock()
	assert.Equal(t, got[0], got[1], "done == total once the call has ended")
	assert.Less(t, got[1], 100, "the unfinished inputs left the total")
	_, err := p.Map(context.Background(), in[:4])
	require.NoError(t, err)
	mu.Lock()
	assert.Equal(t, [2]int{got[0] + 4, got[1] + 4}, last, "later calls count on")
	mu.Unlock()
}

func TestRegisterMisuse(t *testing.T) {
	fn := func(ctx context.Context, x int) (int, error) { return x, nil }
	assert.PanicsWithValue(t, "pool: Register square twice", func() { pool.Register("square", fn) })
	assert.Panics(t, func() { pool.Register("bad name", fn) }, "a space")
	assert.Panics(t, func() { pool.Register("", fn) }, "empty")
	assert.Panics(t, func() { pool.Register[int, int]("nil-func", nil) })
	assert.Panics(t, func() { pool.RegisterInit("with-events", func(context.Context) error { return nil }) }, "twice")
	assert.Panics(t, func() { pool.New[int, int](context.Background(), nil, pool.Config{}) })
	assert.Equal(t, "square", square.Name())
	assert.Equal(t, "with-events", withEvents.Name())
}

func TestDefaultWorkers(t *testing.T) {
	testproc.CheckFDs(t)
	// Not NumCPU: GOMAXPROCS follows a container's CPU quota.
	procs := runtime.NumCPU() + 1
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	p := newPool(t, pid, pool.Config{ChunkSize: 1})
	in := make([]job, 4*procs)
	for i := range in {
		in[i] = job{Index: i, Sleep: 20 * time.Millisecond}
	}
	out, err := p.Map(context.Background(), in)
	require.NoError(t, err)
	pids := make(map[int]bool)
	for _, r := range out {
		pids[r.Pid] = true
	}
	assert.Len(t, pids, procs, "one worker per GOMAXPROCS")
}

// Once a call has returned, even early, nothing reads its inputs: the
// caller may reuse them (the race detector watches).
func TestInputsFreeAfterReturn(t *testing.T) {
	testproc.CheckFDs(t)
	p := newPool(t, square, pool.Config{Workers: 2, ChunkSize: 500})
	in := ints(100_000)
	canceled := 0
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Duration(i%5)*200*time.Microsecond, cancel)
		_, err := p.Map(ctx, in)
		if errors.Is(err, context.Canceled) {
			canceled++
		} else {
			require.NoError(t, err)
		}
		cancel()
		for j := range in {
			in[j] = j
		}
		n := 0
		for range p.ImapUnordered(context.Background(), slices.Values(in)) {
			if n++; n == 3 {
				break
			}
		}
		for j := range in {
			in[j] = j
		}
	}
	t.Logf("%d of 20 maps canceled", canceled)
	out, err := p.Map(context.Background(), in[:10])
	require.NoError(t, err, "the pool works on")
	assert.Equal(t, []int{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}, out)
}
