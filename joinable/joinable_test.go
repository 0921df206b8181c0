package joinable_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/queue"
)

func TestMain(m *testing.M) { testproc.Main(m) }

const qname = "jobs"

// stop is the item that tells a consumer helper to stop.
const stop = -1

func inherit() *joinable.Queue[int] {
	jq, err := joinable.Inherit[int](qname)
	testproc.Check(err, "inherit")
	return jq
}

func intArg(i int) int {
	n, err := strconv.Atoi(testproc.Args()[i])
	testproc.Check(err, "argument")
	return n
}

func init() {
	// consume: Get and TaskDone until stop (whose TaskDone it also calls);
	// then print "<items> <sum> <unix nanoseconds of the last TaskDone
	// before stop>" and Close.
	testproc.Register("consume", func() {
		jq := inherit()
		ctx := context.Background()
		var n, sum int
		var last int64
		for {
			v, err := jq.Get(ctx)
			testproc.Check(err, "get")
			testproc.Check(jq.TaskDone(), "task done")
			if v == stop {
				break
			}
			last = time.Now().UnixNano()
			n++
			sum += v
		}
		fmt.Printf("%d %d %d\n", n, sum, last)
		testproc.Check(jq.Close(), "close")
	})
	// produce FIRST N: put FIRST..FIRST+N-1, then Close (which flushes).
	testproc.Register("produce", func() {
		jq := inherit()
		first, n := intArg(0), intArg(1)
		for i := range n {
			testproc.Check(jq.Put(context.Background(), first+i), "put")
		}
		testproc.Check(jq.Close(), "close")
	})
	// work-and-exit N: get N items, TaskDone each, and return as a child's
	// main returns, leaving the flush to the atexit registry (process.Main
	// runs it): no Close.
	testproc.Register("work-and-exit", func() {
		jq := inherit()
		for range intArg(0) {
			_, err := jq.Get(context.Background())
			testproc.Check(err, "get")
			testproc.Check(jq.TaskDone(), "task done")
		}
		testproc.Check(atexit.Run(context.Background()), "atexit")
	})
	// put-and-exit N: put N items and return without Close (atexit only).
	testproc.Register("put-and-exit", func() {
		jq := inherit()
		for i := range intArg(0) {
			testproc.Check(jq.Put(context.Background(), i), "put")
		}
		testproc.Check(atexit.Run(context.Background()), "atexit")
	})
	// task-done: one TaskDone; print "ok" or "too-many".
	testproc.Register("task-done", func() {
		jq := inherit()
		err := jq.TaskDone()
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, joinable.ErrTooManyTaskDone):
			fmt.Println("too-many")
		default:
			testproc.Fatalf("task done: %v", err)
		}
		testproc.Check(jq.Close(), "close")
	})
	// get-hold: get one item, print "got" and wait to be killed.
	testproc.Register("get-hold", func() {
		jq := inherit()
		_, err := jq.Get(context.Background())
		testproc.Check(err, "get")
		fmt.Println("got")
		time.Sleep(time.Minute)
	})
	// inherit-kind: Inherit a name shared by package queue; print
	// "wrong-kind" when refused so.
	testproc.Register("inherit-kind", func() {
		_, err := joinable.Inherit[int](qname)
		if !errors.Is(err, joinable.ErrWrongKind) {
			testproc.Fatalf("Inherit of a queue.Queue: %v, want ErrWrongKind", err)
		}
		fmt.Println("wrong-kind")
	})
	// join: Join; print "start" once it waits for the count (or has
	// returned), then "joined" and the unix nanoseconds; Close.
	testproc.Register("join", func() {
		jq := inherit()
		joined := make(chan error, 1)
		go func() { joined <- jq.Join(context.Background()) }()
		// Print "start" once the Join waits for the count (or has
		// returned: then "joined" follows at once).
		for !joinWaiting() {
			select {
			case err := <-joined:
				joined <- err
			case <-time.After(time.Millisecond):
				continue
			}
			break
		}
		fmt.Println("start")
		testproc.Check(<-joined, "join")
		fmt.Printf("joined %d\n", time.Now().UnixNano())
		testproc.Check(jq.Close(), "close")
	})
}

// joinWaiting reports whether a Join of this process has registered and
// waits for the count to reach zero (not for the count's baton).
func joinWaiting() bool {
	return testproc.BlockedIn("counter.(*Counter).Join") > testproc.BlockedIn("counter.(*Counter).take")
}

// child is a helper process that reports by printing lines.
type child = testproc.Child

// start runs helper with jq shared.
func start(t *testing.T, jq *joinable.Queue[int], helper string, args ...string) *child {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	require.NoError(t, jq.Share(cmd, qname))
	return testproc.StartLines(t, cmd)
}

func newQueue(t *testing.T, maxsize int) *joinable.Queue[int] {
	t.Helper()
	jq, err := joinable.New[int](maxsize)
	require.NoError(t, err)
	t.Cleanup(func() { jq.Close() })
	return jq
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// consumerReport parses a consume helper's line.
func consumerReport(t *testing.T, line string) (n, sum int, last time.Time) {
	t.Helper()
	f := strings.Fields(line)
	require.Len(t, f, 3, "consumer report %q", line)
	n, err := strconv.Atoi(f[0])
	require.NoError(t, err)
	sum, err = strconv.Atoi(f[1])
	require.NoError(t, err)
	ns, err := strconv.ParseInt(f[2], 10, 64)
	require.NoError(t, err)
	return n, sum, time.Unix(0, ns)
}

// Join returns after the last TaskDone of consumers in other processes,
// and within milliseconds of it.
func TestJoinAfterLastTaskDoneAcrossProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	for _, consumers := range []int{1, 2} {
		t.Run(strconv.Itoa(consumers), func(t *testing.T) {
			jq := newQueue(t, 0)
			const items = 2000
			var cs []*child
			for range consumers {
				cs = append(cs, start(t, jq, "consume"))
			}
			ctx := ctxT(t, 60*time.Second)
			for i := range items {
				require.NoError(t, jq.Put(ctx, i))
			}
			require.NoError(t, jq.Join(ctx))
			joined := time.Now()
			for range consumers {
				require.NoError(t, jq.Put(ctx, stop))
			}
			var total, sum int
			var last time.Time
			for _, c := range cs {
				n, s, l := consumerReport(t, c.Line(t))
				total += n
				sum += s
				if l.After(last) {
					last = l
				}
				c.Wait(t)
			}
			require.Equal(t, items, total, "every item got once")
			require.Equal(t, items*(items-1)/2, sum)
			require.False(t, joined.Before(last), "Join returned %v before the last TaskDone", last.Sub(joined))
			lat := joined.Sub(last)
			t.Logf("%d consumer(s): Join returned %v after the last TaskDone", consumers, lat)
			assert.Less(t, lat, 5*time.Second, "Join returns soon after the last TaskDone")
		})
	}
}

// Joins in other processes wait while a task is unfinished and return
// within milliseconds of its TaskDone.
func TestJoinInOtherProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	jq := newQueue(t, 0)
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, jq.Put(ctx, 1))
	_, err := jq.Get(ctx)
	require.NoError(t, err)
	var js []*child
	for range 3 {
		c := start(t, jq, "join")
		require.Equal(t, "start", c.Line(t))
		js = append(js, c)
	}
	// Every Join has registered and waits: none may have returned.
	for _, c := range js {
		select {
		case l := <-c.Lines:
			t.Fatalf("a Join returned (%q) with a task unfinished", l)
		default:
		}
	}
	done := time.Now()
	require.NoError(t, jq.TaskDone())
	for _, c := range js {
		l := c.Line(t)
		ns, err := strconv.ParseInt(strings.TrimPrefix(l, "joined "), 10, 64)
		require.NoError(t, err, "joiner printed %q", l)
		lat := time.Unix(0, ns).Sub(done)
		t.Logf("Join in another process returned %v after the TaskDone", lat)
		assert.Less(t, lat, 5*time.Second)
		c.Wait(t)
	}
}

// An extra TaskDone is an error in its caller, in this process and in
// another; it changes nothing.
func TestTooManyTaskDone(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := ctxT(t, 30*time.Second)
	jq := newQueue(t, 0)
	require.ErrorIs(t, jq.TaskDone(), joinable.ErrTooManyTaskDone)
	c := start(t, jq, "task-done")
	assert.Equal(t, "too-many", c.Line(t))
	c.Wait(t)

	require.NoError(t, jq.Put(ctx, 1))
	_, err := jq.Get(ctx)
	require.NoError(t, err)
	require.NoError(t, jq.TaskDone())
	require.ErrorIs(t, jq.TaskDone(), joinable.ErrTooManyTaskDone, "the second TaskDone for one item")
	require.NoError(t, jq.Join(ctx))

	// An item got here, marked done in another process: the checked path.
	require.NoError(t, jq.Put(ctx, 2))
	require.NoError(t, jq.Put(ctx, 3))
	_, err = jq.Get(ctx)
	require.NoError(t, err)
	c = start(t, jq, "task-done")
	assert.Equal(t, "ok", c.Line(t))
	c.Wait(t)
	c = start(t, jq, "task-done")
	assert.Equal(t, "ok", c.Line(t), "one item is still unfinished")
	c.Wait(t)
	c = start(t, jq, "task-done")
	assert.Equal(t, "too-many", c.Line(t))
	c.Wait(t)
	require.NoError(t, jq.Join(ctx), "the count is at zero")
	// This process's TaskDone for the item it got now finds nothing: its
	// tally is refused when it reaches the shared count, and Join says so.
	require.NoError(t, jq.TaskDone())
	require.ErrorIs(t, jq.Join(ctx), joinable.ErrTooManyTaskDone)
	require.NoError(t, jq.Join(ctx), "the refusal is reported once")
	_, err = jq.Get(ctx)
	require.NoError(t, err, "the queue still works")
}

func TestJoinHonoursContext(t *testing.T) {
	testproc.CheckFDs(t)
	jq := newQueue(t, 0)
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, jq.Put(ctx, 7))
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, jq.Join(short), context.DeadlineExceeded)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, jq.Join(cctx), context.Canceled)

	// Nothing changed: the item is there and still unfinished.
	require.Equal(t, 1, jq.Qsize())
	c := start(t, jq, "join")
	require.Equal(t, "start", c.Line(t))
	v, err := jq.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, v)
	select {
	case l := <-c.Lines:
		t.Fatalf("Join in a child returned (%q) with a task unfinished", l)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, jq.TaskDone())
	require.NoError(t, jq.Join(ctx))
	assert.True(t, strings.HasPrefix(c.Line(t), "joined"))
	c.Wait(t)
}

// Several producer and consumer processes: every item delivered once, and
// Join in the parent waits for all of them.
func TestProducersAndConsumers(t *testing.T) {
	testproc.CheckFDs(t)
	const producers, consumers, each = 3, 3, 3000
	jq := newQueue(t, 0)
	ctx := ctxT(t, 60*time.Second)
	var cs, ps []*child
	for range consumers {
		cs = append(cs, start(t, jq, "consume"))
	}
	for p := range producers {
		ps = append(ps, start(t, jq, "produce", strconv.Itoa(p*each), strconv.Itoa(each)))
	}
	for _, p := range ps {
		p.Wait(t) // Close flushed: every item is in the queue and counted
	}
	require.NoError(t, jq.Join(ctx))
	assert.True(t, jq.Empty(), "Join returned with items in the queue")
	for range consumers {
		require.NoError(t, jq.Put(ctx, stop))
	}
	var total, sum int
	for _, c := range cs {
		n, s, _ := consumerReport(t, c.Line(t))
		total += n
		sum += s
		c.Wait(t)
	}
	const all = producers * each
	require.Equal(t, all, total)
	require.Equal(t, all*(all-1)/2, sum)
	require.NoError(t, jq.Join(ctx))
}

// A child that returns from main without Close loses nothing: its puts
// are flushed and counted, its TaskDones reach the count.
func TestExitWithoutClose(t *testing.T) {
	testproc.CheckFDs(t)
	const n = 5000
	jq := newQueue(t, 0)
	// More items than the socket holds: the producer exits with some of
	// them still in its buffer, which the consumer must make room for.
	w := start(t, jq, "work-and-exit", strconv.Itoa(n))
	p := start(t, jq, "put-and-exit", strconv.Itoa(n))
	p.Wait(t)
	w.Wait(t) // it got all n items
	require.True(t, jq.Empty())
	require.NoError(t, jq.Join(ctxT(t, 10*time.Second)), "every TaskDone of the exited child counted")
}

// Close wakes every blocked call of this process; later calls fail.
func TestCloseWakesBlockedCalls(t *testing.T) {
	testproc.CheckFDs(t)
	jq, err := joinable.New[int](0)
	require.NoError(t, err)
	ctx := ctxT(t, 30*time.Second)

	// An item unfinished in a queue shared with a child, so that Join waits.
	require.NoError(t, jq.Put(ctx, 1))
	c := start(t, jq, "join")
	require.Equal(t, "start", c.Line(t))
	v, err := jq.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, v)

	errs := make(chan error, 2)
	go func() { _, err := jq.Get(ctx); errs <- err }()
	go func() { errs <- jq.Join(ctx) }()
	testproc.WaitBlocked(t, "joinable.(*Queue[...]).Get", 1)
	for !joinWaiting() {
		select {
		case err := <-errs:
			t.Fatalf("a call returned before Close: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	require.NoError(t, jq.Close())
	for range 2 {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, joinable.ErrClosed)
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not wake a blocked call")
		}
	}
	require.NoError(t, jq.Close(), "Close is idempotent")
	require.ErrorIs(t, jq.TaskDone(), joinable.ErrClosed)
	require.ErrorIs(t, jq.Join(ctx), joinable.ErrClosed)
	require.ErrorIs(t, jq.Put(ctx, 2), joinable.ErrClosed)
	_, err = jq.TryGet()
	require.ErrorIs(t, err, joinable.ErrClosed)

	// The child's Join still waits on the shared count: kill it.
	select {
	case l := <-c.Lines:
		t.Fatalf("child Join returned (%q) with a task unfinished", l)
	default:
	}
	c.Cmd.Process.Kill()
	c.Cmd.Wait()
}

func TestShareInheritErrors(t *testing.T) {
	testproc.CheckFDs(t)
	_, err := joinable.Inherit[int]("nothing-here")
	require.ErrorIs(t, err, joinable.ErrNotInherited)

	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	cmd := testproc.Command(t, "inherit-kind")
	require.NoError(t, q.Share(cmd, qname))
	cmd.Stdout = nil
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.Output()
	require.NoError(t, err)
	require.Equal(t, "wrong-kind\n", string(out))

	jq, err := joinable.New[int](0)
	require.NoError(t, err)
	require.ErrorIs(t, jq.Share(exec.Command("true"), "no spaces"), joinable.ErrBadName)
	require.NoError(t, jq.Close())
	require.ErrorIs(t, jq.Share(exec.Command("true"), qname), joinable.ErrClosed)
}

// A bounded joinable queue: maxsize, TryPut, Full and Qsize as in queue.
func TestBounded(t *testing.T) {
	testproc.CheckFDs(t)
	jq := newQueue(t, 2)
	ctx := ctxT(t, 30*time.Second)
	require.Equal(t, 2, jq.Maxsize())
	require.NoError(t, jq.Put(ctx, 1))
	require.NoError(t, jq.TryPut(2))
	require.ErrorIs(t, jq.TryPut(3), joinable.ErrFull)
	require.True(t, jq.Full())
	require.Equal(t, 2, jq.Qsize())
	c := start(t, jq, "consume")
	require.NoError(t, jq.Put(ctx, 3), "Put waits for room")
	require.NoError(t, jq.Join(ctx))
	require.NoError(t, jq.Put(ctx, stop))
	n, sum, _ := consumerReport(t, c.Line(t))
	require.Equal(t, 3, n)
	require.Equal(t, 6, sum)
	c.Wait(t)
	require.NoError(t, jq.Join(ctx))
	require.True(t, jq.Empty())
	_, err := jq.TryGet()
	require.ErrorIs(t, err, joinable.ErrEmpty)

	_, err = joinable.New[int](1 << 40)
	require.ErrorIs(t, err, joinable.ErrMaxsize)
}

// A consumer killed with an item it got leaves that task unfinished (as in
// Python); the other processes go on, Join honours ctx, and a TaskDone on
// the lost item's behalf releases it.
func TestKilledConsumer(t *testing.T) {
	testproc.CheckFDs(t)
	jq := newQueue(t, 0)
	ctx := ctxT(t, 30*time.Second)
	h := start(t, jq, "get-hold")
	require.NoError(t, jq.Put(ctx, 100))
	require.Equal(t, "got", h.Line(t))
	require.NoError(t, h.Cmd.Process.Kill())
	h.Cmd.Wait()

	c := start(t, jq, "consume")
	for i := range 10 {
		require.NoError(t, jq.Put(ctx, i))
	}
	require.NoError(t, jq.Put(ctx, stop))
	n, sum, _ := consumerReport(t, c.Line(t))
	require.Equal(t, 10, n)
	require.Equal(t, 45, sum)
	c.Wait(t)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, jq.Join(short), context.DeadlineExceeded, "the killed consumer's task is unfinished")
	require.NoError(t, jq.TaskDone())
	require.NoError(t, jq.Join(ctx))
}
