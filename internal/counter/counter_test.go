package counter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

const shareName = "count"

func inherit() *Counter {
	obj, err := share.Inherit(shareName, "counter", func(files []*os.File) (any, error) { return FromFiles(files) })
	testproc.Check(err, "inherit")
	return obj.(*Counter)
}

func init() {
	// hammer N: N rounds of Add(3), Done(2), Done(1), Add(1): leaves N more.
	testproc.Register("hammer", func() {
		c := inherit()
		n, _ := strconv.Atoi(testproc.Args()[0])
		ctx := context.Background()
		for i := 0; i < n; i++ {
			testproc.Check(c.Add(ctx, 3), "add")
			testproc.Check(c.Done(ctx, 2), "done")
			testproc.Check(c.Done(ctx, 1), "done")
			testproc.Check(c.Add(ctx, 1), "add")
		}
		testproc.Check(c.Close(), "close")
	})
	// join: prints "registered" once its Join has registered, then
	// "joined" when Join returns.
	testproc.Register("join", func() {
		c := inherit()
		var once sync.Once
		testHookRegistered = func() { once.Do(func() { fmt.Println("registered") }) }
		testproc.Check(c.Join(context.Background()), "join")
		fmt.Println("joined")
		testproc.Check(c.Close(), "close")
	})
	// hold: takes the baton, says so, and waits to be killed.
	testproc.Register("hold", func() {
		c := inherit()
		_, err := c.take(context.Background())
		testproc.Check(err, "take")
		fmt.Println("held")
		time.Sleep(time.Minute)
	})
	// done: one Done(1); prints "ok" or the error's class.
	testproc.Register("done", func() {
		c := inherit()
		err := c.Done(context.Background(), 1)
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, ErrTooManyTaskDone):
			fmt.Println("too-many")
		default:
			testproc.Fatalf("done: %v", err)
		}
		testproc.Check(c.Close(), "close")
	})
}

// child starts helper with c shared and returns it with its stdout lines.
func child(t *testing.T, c *Counter, helper string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	require.NoError(t, share.Add(cmd, shareName, "counter", c.Files()...))
	ch := testproc.StartLines(t, cmd)
	return ch.Cmd, ch.Lines
}

// waitJoins waits until n Joins of this process have registered and wait
// for the count to reach zero (not for the baton).
func waitJoins(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for testproc.BlockedIn("counter.(*Counter).Join")-testproc.BlockedIn("counter.(*Counter).take") < n {
		require.True(t, time.Now().Before(deadline), "%d Joins waiting within 30 s", n)
		time.Sleep(time.Millisecond)
	}
}

func expectLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-lines:
		require.True(t, ok, "child ended before printing %q", want)
		require.Equal(t, want, got)
	case <-time.After(20 * time.Second):
		t.Fatalf("child did not print %q within 20s", want)
	}
}

func value(t *testing.T, c *Counter) int64 {
	t.Helper()
	v, err := c.Value(context.Background())
	require.NoError(t, err)
	return v
}

func newTestCounter(t *testing.T) *Counter {
	t.Helper()
	c, err := New()
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAddDone(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	require.Equal(t, int64(0), value(t, c))
	require.NoError(t, c.Join(ctx), "Join at zero returns at once")

	err := c.Done(ctx, 1)
	require.ErrorIs(t, err, ErrTooManyTaskDone)
	require.Equal(t, int64(0), value(t, c), "a refused Done leaves the count unchanged")

	require.NoError(t, c.Add(ctx, 3))
	require.ErrorIs(t, c.Done(ctx, 5), ErrTooManyTaskDone)
	require.Equal(t, int64(3), value(t, c))
	require.NoError(t, c.Done(ctx, 1))
	n, err := c.DoneUpTo(ctx, 5)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "DoneUpTo takes what there is")
	require.Equal(t, int64(0), value(t, c))

	big := int64(1) << 62
	require.NoError(t, c.Add(ctx, big), "far more outstanding tasks than a pipe holds tokens")
	require.Error(t, c.Add(ctx, math.MaxInt64), "overflow is refused")
	require.Equal(t, big, value(t, c))
	require.Error(t, c.Add(ctx, -1))
	require.Error(t, c.Done(ctx, -1))

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	require.ErrorIs(t, c.Add(ctx, 1), ErrClosed)
	require.ErrorIs(t, c.Done(ctx, 1), ErrClosed)
	require.ErrorIs(t, c.Join(ctx), ErrClosed)
	_, err = c.Value(ctx)
	require.ErrorIs(t, err, ErrClosed)
}

// No lost update: processes and goroutines hammer the count at once.
func TestConcurrentAcrossProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	const procs, goroutines, rounds = 3, 3, 1500
	c := newTestCounter(t)
	var cmds []*exec.Cmd
	for range procs {
		cmd, _ := child(t, c, "hammer", strconv.Itoa(rounds))
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			ctx := context.Background()
			for range rounds {
				if err := c.Add(ctx, 2); err != nil {
					errs <- err
					return
				}
				if err := c.Done(ctx, 1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, cmd := range cmds {
		require.NoError(t, testproc.WaitTimeout(cmd, 60*time.Second))
	}
	assert.Equal(t, int64((procs+goroutines)*rounds), value(t, c), "every Add and Done counted once")
}

// Several waiters in several processes and goroutines all return when the
// count reaches zero, and not before.
func TestJoinAcrossProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	const tasks = 5
	require.NoError(t, c.Add(ctx, tasks))

	type waiter struct {
		cmd   *exec.Cmd
		lines <-chan string
	}
	var ws []waiter
	for range 3 {
		cmd, lines := child(t, c, "join")
		expectLine(t, lines, "registered")
		ws = append(ws, waiter{cmd, lines})
	}
	local := make(chan error, 2)
	for range 2 {
		go func() { local <- c.Join(ctx) }()
	}
	for range tasks - 1 {
		require.NoError(t, c.Done(ctx, 1))
	}
	waitJoins(t, 2)
	for _, w := range ws {
		select {
		case l := <-w.lines:
			t.Fatalf("a Join returned (%q) while one task was unfinished", l)
		default:
		}
	}
	select {
	case err := <-local:
		t.Fatalf("a local Join returned (%v) while one task was unfinished", err)
	default:
	}

	start := time.Now()
	require.NoError(t, c.Done(ctx, 1))
	for _, w := range ws {
		expectLine(t, w.lines, "joined")
		t.Logf("child Join returned %v after the last Done", time.Since(start))
	}
	for range 2 {
		require.NoError(t, <-local)
	}
	t.Logf("all Joins returned %v after the last Done", time.Since(start))
	for _, w := range ws {
		require.NoError(t, testproc.WaitTimeout(w.cmd, 20*time.Second))
	}
}

// A count that reaches zero and rises again at once still releases the
// waiters registered before: Join promises "zero at some moment".
func TestJoinSeesMomentaryZero(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	for i := range 5 {
		require.NoError(t, c.Add(ctx, 1))
		cmd, lines := child(t, c, "join")
		expectLine(t, lines, "registered")
		require.NoError(t, c.Done(ctx, 1))
		require.NoError(t, c.Add(ctx, 1), "round %d", i)
		expectLine(t, lines, "joined")
		require.NoError(t, testproc.WaitTimeout(cmd, 20*time.Second))
		require.NoError(t, c.Done(ctx, 1))
	}
}

// An extra Done is an error in its caller, in another process too.
func TestTooManyDoneInChild(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	require.NoError(t, c.Add(ctx, 1))
	cmd, lines := child(t, c, "done")
	expectLine(t, lines, "ok")
	require.NoError(t, testproc.WaitTimeout(cmd, 20*time.Second))
	cmd, lines = child(t, c, "done")
	expectLine(t, lines, "too-many")
	require.NoError(t, testproc.WaitTimeout(cmd, 20*time.Second))
	require.Equal(t, int64(0), value(t, c))
	require.ErrorIs(t, c.Done(ctx, 1), ErrTooManyTaskDone)
}

func TestJoinContext(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	require.NoError(t, c.Add(ctx, 1))
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Join(tctx), context.DeadlineExceeded)
	require.Equal(t, int64(1), value(t, c), "Join that gave up changed nothing")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, c.Join(cctx), context.Canceled)
	require.ErrorIs(t, c.Add(cctx, 1), context.Canceled)
	require.Equal(t, int64(1), value(t, c))

	// The waiter that gave up left its flag: the next zero and Join work.
	done := make(chan error, 1)
	go func() { done <- c.Join(ctx) }()
	require.NoError(t, c.Done(ctx, 1))
	require.NoError(t, <-done)
}

// A waiter killed while registered costs nothing.
func TestKilledWaiter(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	require.NoError(t, c.Add(ctx, 2))
	cmd, lines := child(t, c, "join")
	expectLine(t, lines, "registered")
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()

	cmd, lines = child(t, c, "join")
	expectLine(t, lines, "registered")
	require.NoError(t, c.Done(ctx, 1))
	require.NoError(t, c.Done(ctx, 1))
	expectLine(t, lines, "joined")
	require.NoError(t, testproc.WaitTimeout(cmd, 20*time.Second))
	require.NoError(t, c.Join(ctx))
}

// A process killed while holding the baton takes the count with it: the
// others do not hang, they return on ctx or Close. This is the documented
// cost, not a feature.
func TestKilledHolder(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	require.NoError(t, c.Add(ctx, 1))
	cmd, lines := child(t, c, "hold")
	expectLine(t, lines, "held")
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()

	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Add(tctx, 1), context.DeadlineExceeded)
	require.ErrorIs(t, c.Join(tctx), context.DeadlineExceeded)

	errs := make(chan error, 3)
	go func() { errs <- c.Add(ctx, 1) }()
	go func() { errs <- c.Done(ctx, 1) }()
	go func() { errs <- c.Join(ctx) }()
	testproc.WaitBlocked(t, "counter.(*Counter).take", 3)
	require.NoError(t, c.Close())
	for range 3 {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, ErrClosed)
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not wake a call waiting for the baton")
		}
	}
}

// Close wakes Joins and calls waiting for a baton that a live process holds.
func TestCloseWakes(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c := newTestCounter(t)
	require.NoError(t, c.Add(ctx, 1))
	joins := make(chan error, 2)
	for range 2 {
		go func() { joins <- c.Join(ctx) }()
	}
	waitJoins(t, 2)

	c2, err := FromFiles(dupAll(t, c.Files()))
	require.NoError(t, err)
	rec, err := c2.take(ctx)
	require.NoError(t, err)
	adds := make(chan error, 1)
	go func() { adds <- c.Add(ctx, 1) }()
	testproc.WaitBlocked(t, "counter.(*Counter).Add", 1)

	require.NoError(t, c.Close())
	for range 2 {
		require.ErrorIs(t, <-joins, ErrClosed)
	}
	require.ErrorIs(t, <-adds, ErrClosed)
	require.NoError(t, c2.put(rec))
	require.Equal(t, int64(1), value(t, c2), "Close of one handle kept the count for the others")
	require.NoError(t, c2.Close())
}

func dupAll(t *testing.T, files []*os.File) []*os.File {
	var out []*os.File
	for _, f := range files {
		d, err := fd.Dup(f, f.Name())
		require.NoError(t, err)
		out = append(out, d)
	}
	return out
}

func TestFromFilesRefusesWrongFiles(t *testing.T) {
	testproc.CheckFDs(t)
	a, b := newTestCounter(t), newTestCounter(t)
	_, err := FromFiles(dupAll(t, a.Files()[:3]))
	require.Error(t, err)
	fa, fb := a.Files(), b.Files()
	_, err = FromFiles(dupAll(t, []*os.File{fa[0], fb[1], fa[2], fa[3]}))
	require.ErrorContains(t, err, "different pipes")
	_, err = FromFiles(dupAll(t, []*os.File{fa[1], fa[0], fa[2], fa[3]}))
	require.ErrorContains(t, err, "read end")
	c, err := FromFiles(dupAll(t, fa))
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

func FuzzDecode(f *testing.F) {
	var b [recordLen]byte
	record{count: 7, gen: 3, flags: flagWaiting}.encode(&b)
	f.Add(b[:])
	f.Add([]byte("not a record...."))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decode(data)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		var again [recordLen]byte
		rec.encode(&again)
		require.Equal(t, data, again[:])
	})
}

// BenchmarkAdd is one update of the shared count: take and give back the
// baton (one read and one write on a pipe).
func BenchmarkAdd(b *testing.B) {
	c, err := New()
	require.NoError(b, err)
	defer c.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := c.Add(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddParallel: goroutines of one process contend for the baton.
func BenchmarkAddParallel(b *testing.B) {
	c, err := New()
	require.NoError(b, err)
	defer c.Close()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := c.Add(ctx, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A call that took a free baton with a ctx that ends later leaves no
// deadline behind for the next call that has to wait (a regression).
func TestEndedContextLeavesNoDeadline(t *testing.T) {
	testproc.CheckFDs(t)
	c := newTestCounter(t)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, c.Add(ctx, 1))
	cancel()
	time.Sleep(10 * time.Millisecond)

	c2, err := FromFiles(dupAll(t, c.Files()))
	require.NoError(t, err)
	defer c2.Close()
	rec, err := c2.take(context.Background())
	require.NoError(t, err)
	added := make(chan error, 1)
	go func() { added <- c.Add(context.Background(), 1) }()
	testproc.WaitBlocked(t, "counter.(*Counter).Add", 1)
	require.NoError(t, c2.put(rec))
	require.NoError(t, <-added, "Add waiting for the baton")
	require.Equal(t, int64(2), value(t, c))
}

// FuzzRecord: the baton pipe's record is written by whichever process
// holds the count, or by anyone holding the pipe. decode never panics,
// refuses anything but a whole record with a non-negative count and known
// flags, and what it accepts encodes back to the same bytes.
func FuzzRecord(f *testing.F) {
	var b [recordLen]byte
	record{count: 5, gen: 2, flags: flagWaiting}.encode(&b)
	f.Add(b[:])
	f.Add(make([]byte, recordLen))
	f.Add(b[:8])
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := decode(p)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if r.count < 0 || r.flags&^knownFlags != 0 {
			t.Fatalf("decode(%x) accepted %+v", p, r)
		}
		var back [recordLen]byte
		r.encode(&back)
		if !bytes.Equal(back[:], p) {
			t.Fatalf("decode(%x) = %+v, which encodes to %x", p, r, back)
		}
	})
}
