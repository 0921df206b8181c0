package pool_test

import (
	"context"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pool"
)

// gate waits until the file named by its input exists, then returns the
// name: the test decides when each task completes.
var gate = pool.Register("gate", func(ctx context.Context, path string) (string, error) {
	for {
		if _, err := os.Stat(path); err == nil {
			return filepath.Base(path), nil
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return "", err
		}
	}
})

// newExecutor starts an executor that the test terminates at cleanup,
// after which it checks that no worker is left.
func newExecutor(t *testing.T, cfg pool.Config) *pool.Executor {
	t.Helper()
	ex, err := pool.NewExecutor(context.Background(), cfg)
	require.NoError(t, err, "NewExecutor")
	t.Cleanup(func() {
		ex.Terminate()
		assert.Empty(t, children(t), "child processes left after Terminate")
	})
	return ex
}

func wait[Out any](t *testing.T, task *pool.Task[Out]) Out {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := task.Wait(ctx)
	require.NoError(t, err)
	return out
}

// One set of workers serves every function.
func TestExecutorSubmitThreeFunctions(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 2})
	ctx := context.Background()
	a := pool.Bind(ex, square).Submit(ctx, 7)
	b := pool.Bind(ex, upper).Submit(ctx, "seven")
	c := pool.Bind(ex, describe).Submit(ctx, point{3, 4})
	assert.Equal(t, 49, wait(t, a))
	assert.Equal(t, "SEVEN", wait(t, b))
	assert.Equal(t, label{Name: "(3,4)", Sum: 7}, wait(t, c))

	workers := children(t)
	require.Len(t, workers, 2)
	var tasks []*pool.Task[result]
	for i := range 8 {
		tasks = append(tasks, pool.Bind(ex, pid).Submit(ctx, job{Index: i}))
	}
	for _, task := range tasks {
		assert.Contains(t, workers, wait(t, task).Pid, "the same two workers ran every function")
	}
	out, err := pool.Bind(ex, square).Map(ctx, []int{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 4, 9}, out)
	assert.ElementsMatch(t, workers, children(t), "no worker was started or replaced")
}

// AsCompleted yields in the order of completion, not of submission.
func TestAsCompletedOrder(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 3})
	dir := t.TempDir()
	ctx := context.Background()
	g := pool.Bind(ex, gate)
	var tasks []*pool.Task[string]
	for _, name := range []string{"a", "b", "c"} {
		tasks = append(tasks, g.Submit(ctx, filepath.Join(dir, name)))
	}
	select {
	case <-tasks[0].Done():
		t.Fatal("a task is done before its gate opened")
	default:
	}
	release := func(name string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o600))
	}
	release("c")
	var order []string
	for task := range pool.AsCompleted(ctx, tasks...) {
		name := wait(t, task)
		order = append(order, name)
		switch name { // open the next gate only now: the order is the test's
		case "c":
			release("a")
		case "a":
			release("b")
		}
	}
	assert.Equal(t, []string{"c", "a", "b"}, order)

	// Futures of several types range together.
	sq := pool.Bind(ex, square).Submit(ctx, 3)
	up := pool.Bind(ex, upper).Submit(ctx, "x")
	n := 0
	for f := range pool.AsCompleted[pool.Future](ctx, sq, up) {
		<-f.Done()
		n++
	}
	assert.Equal(t, 2, n)
	assert.Equal(t, 9, wait(t, sq))
	assert.Equal(t, "X", wait(t, up))

	// ctx ends the range.
	never := g.Submit(ctx, filepath.Join(dir, "never"))
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	for range pool.AsCompleted(cctx, never) {
		t.Fatal("a task whose gate never opens completed")
	}
	require.Error(t, cctx.Err())
}

// A Task's Done channel closes when its ctx ends, even before a worker
// took it.
func TestTaskDone(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 1})
	dir := t.TempDir()
	g := pool.Bind(ex, gate)
	busy := g.Submit(context.Background(), filepath.Join(dir, "busy"))
	ctx, cancel := context.WithCancel(context.Background())
	queued := g.Submit(ctx, filepath.Join(dir, "queued"))
	cancel()
	select {
	case <-queued.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("Done did not close when the task's ctx ended")
	}
	_, err := queued.Wait(context.Background())
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "busy"), nil, 0o600))
	assert.Equal(t, "busy", wait(t, busy))

	ex.Terminate()
	late := g.Submit(context.Background(), "x")
	<-late.Done()
	_, err = late.Wait(context.Background())
	require.ErrorIs(t, err, pool.ErrTerminated)
}

// The chunk size is per call.
func TestWithChunkSize(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 2})
	in := make([]job, 40)
	for i := range in {
		in[i] = job{Index: i}
	}
	p := pool.Bind(ex, pid)
	out, err := p.WithChunkSize(40).Map(context.Background(), in)
	require.NoError(t, err)
	for _, r := range out {
		require.Equal(t, out[0].Pid, r.Pid, "one chunk: one worker ran every input")
	}
	var pids []int
	for r, err := range p.WithChunkSize(20).Imap(context.Background(), slices.Values(in)) {
		require.NoError(t, err)
		pids = append(pids, r.Pid)
	}
	require.Len(t, pids, 40)
	assert.Equal(t, slices.Repeat([]int{pids[0]}, 20), pids[:20], "the first 20 inputs are one chunk")
	assert.Equal(t, slices.Repeat([]int{pids[20]}, 20), pids[20:], "the last 20 too")
}

// counting is an endless sequence of 0, 1, 2, ... that counts what it
// yields in pulled.
func counting(pulled *atomic.Int64) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; ; i++ {
			pulled.Add(1)
			if !yield(i) {
				return
			}
		}
	}
}

// An endless input runs in constant memory: at most the bound of inputs
// are taken from it and not yet yielded, and ctx stops it.
func TestImapEndlessStream(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 2})
	const bound = 64
	for _, ordered := range []bool{true, false} {
		t.Run(strconv.FormatBool(ordered), func(t *testing.T) {
			var pulled atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := pool.Bind(ex, square).WithChunkSize(8).WithInFlight(bound)
			seq := p.ImapUnordered
			if ordered {
				seq = p.Imap
			}
			yielded, most := 0, int64(0)
			var last error
			for x, err := range seq(ctx, counting(&pulled)) {
				if err != nil {
					last = err
					continue
				}
				if ordered {
					require.Equal(t, yielded*yielded, x, "in input order")
				}
				yielded++
				most = max(most, pulled.Load()-int64(yielded))
				require.LessOrEqual(t, pulled.Load(), int64(yielded-1+bound), "at most the bound in flight")
				if yielded == 10_000 {
					cancel()
				}
			}
			require.ErrorIs(t, last, context.Canceled, "ctx ended the stream, as its last error")
			assert.GreaterOrEqual(t, yielded, 10_000)
			assert.LessOrEqual(t, most, int64(bound))
			after := pulled.Load()
			assert.LessOrEqual(t, after, int64(yielded+bound))
			t.Logf("%d yielded, %d pulled, at most %d in flight", yielded, after, most)
		})
	}
}

// A worker SIGKILLed in the middle of a stream: every result comes, once.
func TestImapWorkerKilledMidStream(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 2})
	const n = 3000
	in := func(yield func(job) bool) {
		for i := range n {
			if !yield(job{Index: i}) {
				return
			}
		}
	}
	seen := make(map[int]int)
	killed := 0
	for r, err := range pool.Bind(ex, pid).WithChunkSize(10).WithInFlight(200).ImapUnordered(context.Background(), in) {
		require.NoError(t, err)
		seen[r.Index]++
		if len(seen) == n/3 && killed == 0 {
			killed = r.Pid
			require.NoError(t, syscall.Kill(r.Pid, syscall.SIGKILL))
		}
	}
	require.NotZero(t, killed)
	require.Len(t, seen, n, "every input has a result")
	for i, k := range seen {
		require.Equal(t, 1, k, "input %d yielded %d times", i, k)
	}
	assert.NotContains(t, children(t), killed)
}

// A sequence that panics: the panic comes back in the range's goroutine,
// and the call leaves nothing behind.
func TestImapSequencePanics(t *testing.T) {
	testproc.CheckFDs(t)
	ex := newExecutor(t, pool.Config{Workers: 1})
	in := func(yield func(int) bool) {
		for i := range 5 {
			if !yield(i) {
				return
			}
		}
		panic("the sequence broke")
	}
	assert.PanicsWithValue(t, "pool: the input sequence panicked: the sequence broke", func() {
		for range pool.Bind(ex, square).Imap(context.Background(), in) {
		}
	})
	out, err := pool.Bind(ex, square).Map(context.Background(), []int{2})
	require.NoError(t, err, "the executor goes on")
	assert.Equal(t, []int{4}, out)
}

// Stream calls fail like the others once the executor is closed.
func TestImapClosed(t *testing.T) {
	ex := newExecutor(t, pool.Config{Workers: 1})
	ex.Close()
	for _, err := range pool.Bind(ex, square).Imap(context.Background(), slices.Values([]int{1})) {
		require.True(t, errors.Is(err, pool.ErrClosed))
	}
	require.NoError(t, ex.Join(context.Background()))
}

// A stream started before Close runs to its end: the workers stay for the
// chunks its feeder makes after Close.
func TestImapAcrossClose(t *testing.T) {
	testproc.CheckFDs(t)
	ex, err := pool.NewExecutor(context.Background(), pool.Config{Workers: 2})
	require.NoError(t, err)
	release := make(chan struct{})
	in := func(yield func(int) bool) {
		for i := range 100 {
			if i == 50 {
				<-release // the second half comes after Close
			}
			if !yield(i) {
				return
			}
		}
	}
	n := 0
	for x, err := range pool.Bind(ex, square).Imap(context.Background(), in) {
		require.NoError(t, err)
		require.Equal(t, n*n, x)
		if n++; n == 50 {
			ex.Close()
			close(release)
		}
	}
	assert.Equal(t, 100, n, "every input of a call made before Close")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ex.Join(ctx))
	assert.Empty(t, children(t))
}
