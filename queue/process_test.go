package queue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/testitem"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/queue"
)

// The tests of this file cross process boundaries: the test process shares
// a queue with helper processes (re-executions of the test binary, see
// testproc), which open it with queue.Inherit.

// item is what the tests send: a testitem.Item, whose body and checksum
// let any process tell a corrupted or misdelivered item.
type item = testitem.Item

// stop is the I of the item that tells a consumer to stop.
const stop = testitem.Stop

func newItem(p, i, size int) item { return testitem.New(p, i, size) }

const qname = "q"

func inherit() *queue.Queue[item] {
	q, err := queue.Inherit[item](qname)
	testproc.Check(err, "inherit "+qname)
	return q
}

func intArg(i int) int {
	n, err := strconv.Atoi(testproc.Args()[i])
	testproc.Check(err, "argument "+strconv.Itoa(i))
	return n
}

// helperCtx bounds every wait of a helper: a helper that hangs fails.
func helperCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func init() {
	// produce KIND P N SIZE END: open the queue of KIND (see crashKinds), put items P/0..P/N-1 with bodies of SIZE bytes,
	// print "put" once every Put has returned, then end by END: "close"
	// calls Close; "atexit" returns as a child's main does under
	// process.Main, leaving the flush to the atexit registry.
	testproc.Register("produce", func() {
		q := inheritKind(testproc.Args()[0])
		p, n, size := intArg(1), intArg(2), intArg(3)
		ctx, cancel := helperCtx()
		defer cancel()
		for i := range n {
			testproc.Check(q.Put(ctx, newItem(p, i, size)), "put")
		}
		fmt.Println("put")
		switch end := testproc.Args()[4]; end {
		case "close":
			testproc.Check(q.Close(), "close")
		case "atexit":
			testproc.Check(atexit.Run(ctx), "atexit")
		default:
			testproc.Fatalf("unknown end %q", end)
		}
	})
	// consume KIND: open the queue of KIND, get items until one with I == stop; check each, then Close
	// and print "P I" for each item received, in the order received.
	testproc.Register("consume", func() {
		q := inheritKind(testproc.Args()[0])
		ctx, cancel := helperCtx()
		defer cancel()
		var got []item
		for {
			v, err := q.Get(ctx)
			testproc.Check(err, "get")
			if v.I == stop {
				break
			}
			testproc.Check(v.Check(), "check")
			v.B = nil
			got = append(got, v)
		}
		testproc.Check(q.Close(), "close")
		w := bufio.NewWriter(os.Stdout)
		for _, v := range got {
			fmt.Fprintf(w, "%d %d\n", v.P, v.I)
		}
		testproc.Check(w.Flush(), "write")
	})
	// get N: get N items, print "P I" for each and Close.
	testproc.Register("get", func() {
		q := inherit()
		ctx, cancel := helperCtx()
		defer cancel()
		for range intArg(0) {
			v, err := q.Get(ctx)
			testproc.Check(err, "get")
			testproc.Check(v.Check(), "check")
			fmt.Printf("%d %d\n", v.P, v.I)
		}
		testproc.Check(q.Close(), "close")
	})
	// try-put P I: TryPut one item; print "ok" or "full".
	testproc.Register("try-put", func() {
		q := inherit()
		switch err := q.TryPut(newItem(intArg(0), intArg(1), 0)); {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, queue.ErrFull):
			fmt.Println("full")
		default:
			testproc.Fatalf("try-put: %v", err)
		}
		testproc.Check(q.Close(), "close")
	})
	// put-bad: put values that cannot be encoded, which must fail in Put,
	// then "good"; print each Put's outcome.
	testproc.Register("put-bad", func() {
		q, err := queue.Inherit[any](qname)
		testproc.Check(err, "inherit")
		ctx, cancel := helperCtx()
		defer cancel()
		for _, v := range []any{make(chan int), func() {}, "good"} {
			if err := q.Put(ctx, v); err != nil {
				fmt.Printf("%T refused: %v\n", v, err)
			} else {
				fmt.Printf("%T put\n", v)
			}
		}
		testproc.Check(q.Close(), "close")
	})
	// wait-get TIMEOUT: Get with a timeout of TIMEOUT milliseconds; print
	// "deadline" or "got P I".
	testproc.Register("wait-get", func() {
		q := inherit()
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(intArg(0))*time.Millisecond)
		defer cancel()
		v, err := q.Get(ctx)
		switch {
		case err == nil:
			fmt.Printf("got %d %d\n", v.P, v.I)
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Println("deadline")
		default:
			testproc.Fatalf("get: %v", err)
		}
		testproc.Check(q.Close(), "close")
	})
	// close-wakes: with "empty" (unbounded, empty) and "full" (bounded,
	// full) inherited, block a Get on the first and a Put on the second,
	// then Close both, twice and concurrently. Print "ok" when the blocked
	// calls returned ErrClosed and every later call does.
	testproc.Register("close-wakes", func() {
		empty, err := queue.Inherit[item]("empty")
		testproc.Check(err, "inherit empty")
		full, err := queue.Inherit[item]("full")
		testproc.Check(err, "inherit full")
		ctx, cancel := helperCtx()
		defer cancel()
		errs := make(chan error, 2)
		go func() { _, err := empty.Get(ctx); errs <- err }()
		go func() { errs <- full.Put(ctx, newItem(9, 9, 0)) }()
		testproc.WaitBlocked(nil, "queue.(*Queue[...]).Get", 1)
		testproc.WaitBlocked(nil, "queue.(*Queue[...]).Put", 1)
		var wg sync.WaitGroup
		for _, q := range []*queue.Queue[item]{empty, full, empty, full} {
			wg.Go(func() { testproc.Check(q.Close(), "close") })
		}
		wg.Wait()
		for range 2 {
			if err := <-errs; !errors.Is(err, queue.ErrClosed) {
				testproc.Fatalf("blocked call woken with %v, want ErrClosed", err)
			}
		}
		for _, q := range []*queue.Queue[item]{empty, full} {
			_, gerr := q.Get(ctx)
			_, tgerr := q.TryGet()
			for what, err := range map[string]error{
				"Put": q.Put(ctx, newItem(0, 0, 0)), "TryPut": q.TryPut(newItem(0, 0, 0)),
				"Get": gerr, "TryGet": tgerr, "Flush": q.Flush(ctx), "Close": q.Close(),
				"Share": q.Share(exec.Command("true"), "x"),
			} {
				if what == "Close" {
					if err != nil {
						testproc.Fatalf("second Close: %v, want nil", err)
					}
				} else if !errors.Is(err, queue.ErrClosed) {
					testproc.Fatalf("%s after Close: %v, want ErrClosed", what, err)
				}
			}
		}
		fmt.Println("ok")
	})
}

// child is a started helper whose standard output is read line by line.
// child is a helper process that reports by printing lines.
type child = testproc.Child

type sharer interface {
	Share(cmd *exec.Cmd, name string) error
}

// start runs helper with args and the queues of shares, under the names
// qname, then "empty", "full" (the names the helpers inherit).
func start(t *testing.T, helper string, shares []sharer, args ...string) *child {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	names := []string{qname, "empty", "full"}
	for i, s := range shares {
		if s != nil {
			require.NoError(t, s.Share(cmd, names[i]))
		}
	}
	return testproc.StartLines(t, cmd)
}

// id is an item's identity.
type id struct{ p, i int }

func parseIDs(t *testing.T, lines []string) []id {
	t.Helper()
	ids := make([]id, 0, len(lines))
	for _, l := range lines {
		var v id
		_, err := fmt.Sscanf(l, "%d %d", &v.p, &v.i)
		require.NoError(t, err, "line %q", l)
		ids = append(ids, v)
	}
	return ids
}

func newQueue[T any](t *testing.T, maxsize int) *queue.Queue[T] {
	t.Helper()
	q, err := queue.New[T](maxsize)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	return q
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// kinds are the queues the semantic tests shared by every queue kind run
// over: those of the crash matrix, with a bounded queue small enough to
// fill.
var kinds = []queueKind{
	{name: "simplequeue", sync: true},
	{name: "queue"},
	{name: "bounded", maxsize: 64},
	{name: "joinable"},
}

// TestManyProducersConsumers: 3 producer and 3 consumer processes on one
// queue, of every kind; every item arrives exactly once, intact.
func TestManyProducersConsumers(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			const producers, consumers, n = 3, 3, 5000
			q := k.create(t, 0)
			var cons, prods []*child
			for range consumers {
				cons = append(cons, start(t, "consume", []sharer{q}, k.name))
			}
			for p := range producers {
				prods = append(prods, start(t, "produce", []sharer{q}, k.name, strconv.Itoa(p), strconv.Itoa(n), "16", "close"))
			}
			for _, c := range prods {
				assert.Equal(t, []string{"put"}, c.Wait(t))
			}
			ctx := ctxT(t, 30*time.Second)
			for range consumers {
				require.NoError(t, q.Put(ctx, item{I: stop}))
			}
			seen := make(map[id]int)
			for c, ch := range cons {
				ids := parseIDs(t, ch.Wait(t))
				t.Logf("consumer %d got %d items", c, len(ids))
				for _, v := range ids {
					seen[v]++
				}
			}
			for p := range producers {
				for i := range n {
					require.Equal(t, 1, seen[id{p, i}], "deliveries of item %d/%d", p, i)
				}
			}
			require.Len(t, seen, producers*n, "items delivered")
			assert.True(t, q.Empty(), "the queue is empty at the end")
		})
	}
}

// TestFIFOPerProducer: with one consumer, each of 3 producers' items
// arrive in the order it put them, for every kind of queue.
func TestFIFOPerProducer(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			const producers, n = 3, 5000
			q := k.create(t, 0)
			cons := start(t, "consume", []sharer{q}, k.name)
			var prods []*child
			for p := range producers {
				prods = append(prods, start(t, "produce", []sharer{q}, k.name, strconv.Itoa(p), strconv.Itoa(n), "16", "close"))
			}
			for _, c := range prods {
				assert.Equal(t, []string{"put"}, c.Wait(t))
			}
			require.NoError(t, q.Put(ctxT(t, 30*time.Second), item{I: stop}))
			next := make([]int, producers)
			for _, v := range parseIDs(t, cons.Wait(t)) {
				require.Equal(t, next[v.p], v.i, "producer %d's next item", v.p)
				next[v.p]++
			}
			for p := range producers {
				assert.Equal(t, n, next[p], "items of producer %d", p)
			}
		})
	}
}

// TestUnencodable: a value that cannot be encoded fails in the Put of the
// process that puts it, and the queue goes on.
func TestUnencodable(t *testing.T) {
	testproc.CheckFDs(t)
	q := newQueue[any](t, 0)
	c := start(t, "put-bad", []sharer{q})
	lines := c.Wait(t)
	require.Len(t, lines, 3)
	assert.Contains(t, lines[0], "chan int refused:")
	assert.Contains(t, lines[0], "unsupported chan int")
	assert.Contains(t, lines[1], "func() refused:")
	assert.Equal(t, "string put", lines[2])

	// And in this process: the same, and the queue still works.
	ctx := ctxT(t, 10*time.Second)
	err := q.Put(ctx, struct{ F func() }{})
	require.Error(t, err)
	assert.False(t, errors.Is(err, queue.ErrClosed), "an encoding error, not %v", err)
	assert.Error(t, q.TryPut(make(chan int)))
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, "good", v, "the child's only item")
	require.NoError(t, q.Put(ctx, 42))
	v, err = q.Get(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 42, v)
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty, "nothing of the refused values was put")
}

// TestChildPutsAndExits: a child puts far more than the socket holds,
// while the consumer (this process) has not started, then ends: Close, or
// the atexit flush that process.Main runs, sends every item, as the
// consumer drains the queue.
func TestChildPutsAndExits(t *testing.T) {
	const n = 20000
	for _, end := range []string{"close", "atexit"} {
		for _, maxsize := range []int{0, n} {
			t.Run(fmt.Sprintf("%s/maxsize=%d", end, maxsize), func(t *testing.T) {
				testproc.CheckFDs(t)
				q := newQueue[item](t, maxsize)
				c := start(t, "produce", []sharer{q}, "queue", "7", strconv.Itoa(n), "32", end)
				if maxsize == 0 {
					require.Equal(t, "put", c.Line(t), "every Put returned")
				}
				// A bounded queue's producer buffers at most about one
				// packet of items (each holds a slot): its Puts return as
				// the consumer drains the queue.
				exited := make(chan []string, 1)
				go func() { exited <- c.Wait(t) }()
				ctx := ctxT(t, 30*time.Second)
				for i := range n {
					v, err := q.Get(ctx)
					require.NoError(t, err, "item %d", i)
					require.NoError(t, v.Check())
					require.Equal(t, id{7, i}, id{v.P, v.I}, "the items in order")
				}
				out := <-exited
				if maxsize > 0 {
					require.NotEmpty(t, out)
					assert.Equal(t, "put", out[0], "every Put returned")
					out = out[1:]
				}
				assert.Empty(t, out, "the child's output after put")
				_, err := q.TryGet()
				assert.ErrorIs(t, err, queue.ErrEmpty)
			})
		}
	}
}

// TestBoundedSizes: Qsize, Full and Empty are exact once the puts and
// gets of other processes have returned; TryPut and TryGet report a full
// and an empty queue.
func TestBoundedSizes(t *testing.T) {
	testproc.CheckFDs(t)
	const maxsize = 10
	q := newQueue[item](t, maxsize)
	assert.Equal(t, maxsize, q.Maxsize())
	sizes := func(qsize int, empty, full bool) {
		t.Helper()
		assert.Equal(t, qsize, q.Qsize(), "Qsize")
		assert.Equal(t, empty, q.Empty(), "Empty")
		assert.Equal(t, full, q.Full(), "Full")
	}
	sizes(0, true, false)
	_, err := q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)

	assert.Equal(t, []string{"put"}, start(t, "produce", []sharer{q}, "queue", "1", "7", "0", "close").Wait(t))
	sizes(7, false, false)
	assert.Equal(t, []string{"put"}, start(t, "produce", []sharer{q}, "queue", "2", "3", "0", "close").Wait(t))
	sizes(maxsize, false, true)
	assert.ErrorIs(t, q.TryPut(newItem(0, 0, 0)), queue.ErrFull)
	assert.Equal(t, []string{"full"}, start(t, "try-put", []sharer{q}, "3", "0").Wait(t))
	sizes(maxsize, false, true)

	got := parseIDs(t, start(t, "get", []sharer{q}, "4").Wait(t))
	assert.Equal(t, []id{{1, 0}, {1, 1}, {1, 2}, {1, 3}}, got, "the oldest items")
	sizes(6, false, false)
	assert.Equal(t, []string{"ok"}, start(t, "try-put", []sharer{q}, "3", "0").Wait(t))
	sizes(7, false, false)

	ctx := ctxT(t, 10*time.Second)
	var rest []id
	for range 7 {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		rest = append(rest, id{v.P, v.I})
	}
	assert.Equal(t, []id{{1, 4}, {1, 5}, {1, 6}, {2, 0}, {2, 1}, {2, 2}, {3, 0}}, rest)
	sizes(0, true, false)
	_, err = q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}

// TestUnboundedQsize: an unbounded queue's Qsize counts the items of
// another process once they are in the kernel (they encode to the same
// size here, where the estimate is exact).
func TestUnboundedQsize(t *testing.T) {
	testproc.CheckFDs(t)
	q := newQueue[item](t, 0)
	assert.Equal(t, 0, q.Qsize())
	assert.True(t, q.Empty())
	assert.Equal(t, []string{"put"}, start(t, "produce", []sharer{q}, "queue", "1", "100", "8", "close").Wait(t))
	assert.Equal(t, 100, q.Qsize())
	assert.False(t, q.Empty())
	assert.False(t, q.Full(), "an unbounded queue is never full")
	assert.Len(t, start(t, "get", []sharer{q}, "40").Wait(t), 40)
	assert.Equal(t, 60, q.Qsize())
	ctx := ctxT(t, 10*time.Second)
	for range 60 {
		_, err := q.Get(ctx)
		require.NoError(t, err)
	}
	assert.Equal(t, 0, q.Qsize())
	assert.True(t, q.Empty())
}

// TestMaxsizeRefused: New refuses a maxsize no token pipe can hold, with
// ErrMaxsize and a message that says what to do.
func TestMaxsizeRefused(t *testing.T) {
	testproc.CheckFDs(t)
	for _, maxsize := range []int{1 << 24, 1 << 30} {
		q, err := queue.New[int](maxsize)
		require.ErrorIs(t, err, queue.ErrMaxsize, "maxsize %d", maxsize)
		assert.Nil(t, q)
		assert.Contains(t, err.Error(), strconv.Itoa(maxsize), "the message names the maxsize")
	}
	q, err := queue.New[int](100000)
	require.NoError(t, err, "a maxsize a pipe holds")
	assert.Equal(t, 100000, q.Maxsize())
	require.NoError(t, q.Close())
}

// TestContext: a Get on an empty queue and a Put on a full one return
// ctx.Err() when ctx ends, in any process, and leave the queue as it was.
func TestContext(t *testing.T) {
	t.Run("get", func(t *testing.T) {
		testproc.CheckFDs(t)
		q := newQueue[item](t, 0)
		assert.Equal(t, []string{"deadline"}, start(t, "wait-get", []sharer{q}, "100").Wait(t))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := q.Get(ctx)
		assert.ErrorIs(t, err, context.Canceled)
		_, err = q.Get(ctx)
		assert.ErrorIs(t, err, context.Canceled, "a Get with an ended ctx")

		assert.Equal(t, []string{"put"}, start(t, "produce", []sharer{q}, "queue", "1", "1", "0", "close").Wait(t))
		assert.Equal(t, []string{"got 1 0"}, start(t, "wait-get", []sharer{q}, "10000").Wait(t))
	})
	t.Run("put", func(t *testing.T) {
		testproc.CheckFDs(t)
		const maxsize = 5
		q := newQueue[item](t, maxsize)
		assert.Equal(t, []string{"put"}, start(t, "produce", []sharer{q}, "queue", "1", strconv.Itoa(maxsize), "0", "close").Wait(t))
		require.True(t, q.Full())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := q.Put(ctx, newItem(2, 0, 0))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, maxsize, q.Qsize(), "the queue is unchanged")
		err = q.Put(ctx, newItem(2, 1, 0))
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a Put with an ended ctx")

		got := parseIDs(t, start(t, "get", []sharer{q}, strconv.Itoa(maxsize)).Wait(t))
		assert.Equal(t, []id{{1, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}}, got, "only the child's items")
		assert.Equal(t, 0, q.Qsize())
		_, err = q.TryGet()
		assert.ErrorIs(t, err, queue.ErrEmpty, "the timed-out Puts put nothing")
	})
}

// TestCloseWakes: Close in a child wakes its blocked Get and Put with
// ErrClosed and is idempotent; the queues go on for the other processes.
func TestCloseWakes(t *testing.T) {
	testproc.CheckFDs(t)
	empty := newQueue[item](t, 0)
	full := newQueue[item](t, 3)
	ctx := ctxT(t, 10*time.Second)
	for i := range 3 {
		require.NoError(t, full.Put(ctx, newItem(1, i, 0)))
	}
	assert.Equal(t, []string{"ok"}, start(t, "close-wakes", []sharer{nil, empty, full}).Wait(t))
	assert.Equal(t, 3, full.Qsize(), "the interrupted Put put nothing")
	v, err := full.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, id{1, 0}, id{v.P, v.I})
	require.NoError(t, empty.Put(ctx, newItem(2, 0, 0)))
	v, err = empty.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, id{2, 0}, id{v.P, v.I})

	// And in this process: Close wakes a blocked Get and Put.
	errs := make(chan error, 2)
	go func() { _, err := empty.Get(ctx); errs <- err }()
	go func() {
		err := full.Put(ctx, newItem(3, 0, 0)) // takes the free slot
		if err == nil {
			err = full.Put(ctx, newItem(3, 1, 0))
		}
		errs <- err
	}()
	testproc.WaitBlocked(t, "queue.(*Queue[...]).Get", 1)
	testproc.WaitBlocked(t, "queue.(*Queue[...]).Put", 1)
	require.NoError(t, empty.Close())
	require.NoError(t, full.Close())
	for range 2 {
		assert.ErrorIs(t, <-errs, queue.ErrClosed)
	}
	assert.NoError(t, empty.Close(), "Close again")
	_, err = empty.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrClosed)
	assert.ErrorIs(t, full.Put(ctx, newItem(0, 0, 0)), queue.ErrClosed)
}

// TestBigItemsInOrder: items of a few MiB, which travel through a pipe of
// their own and whose encoding buffers are reused, arrive intact and in
// order while their producer puts the next ones.
func TestBigItemsInOrder(t *testing.T) {
	testproc.CheckFDs(t)
	const n, size = 12, 3 << 20
	q := newQueue[item](t, 0)
	c := start(t, "produce", []sharer{q}, "queue", "5", strconv.Itoa(n), strconv.Itoa(size), "close")
	ctx := ctxT(t, 30*time.Second)
	for i := range n {
		v, err := q.Get(ctx)
		require.NoError(t, err, "item %d", i)
		require.NoError(t, v.Check())
		require.Equal(t, id{5, i}, id{v.P, v.I})
		require.Len(t, v.B, size)
	}
	assert.Equal(t, []string{"put"}, c.Wait(t))
}
