package simplequeue_test

import (
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

	"github.com/mproc-go/mproc/internal/testitem"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/simplequeue"
)

// The tests of this file cross process boundaries: the test process shares
// a queue with helper processes (re-executions of the test binary, see
// testproc), which open it with simplequeue.Inherit. What every queue kind
// shares (exactly-once delivery to many processes, FIFO per producer, what
// a crash costs) is tested for all kinds at once in package queue's tests
// (queue/process_test.go, queue/crash_test.go); this file tests what is
// simplequeue's own.

// msg is what the tests send: a testitem.Item, whose body and checksum let
// any process tell a corrupted or misdelivered item.
type msg = testitem.Item

func newMsg(p, i, size int) msg { return testitem.New(p, i, size) }

const qname = "q"

func inheritQ() *simplequeue.Queue[msg] {
	q, err := simplequeue.Inherit[msg](qname)
	testproc.Check(err, "inherit "+qname)
	return q
}

func arg(i int) int {
	n, err := strconv.Atoi(testproc.Args()[i])
	testproc.Check(err, "argument "+strconv.Itoa(i))
	return n
}

func init() {
	// sq-put P N SIZE END: put items P/0..P/N-1 with bodies of SIZE bytes,
	// printing "put K" after each N/20; then END: "close" calls Close,
	// "exit" leaves at once with os.Exit and no Close.
	testproc.Register("sq-put", func() {
		q := inheritQ()
		p, n, size := arg(0), arg(1), arg(2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		step := max(1, n/20)
		for i := range n {
			testproc.Check(q.Put(ctx, newMsg(p, i, size)), "put")
			if (i+1)%step == 0 {
				fmt.Printf("put %d\n", i+1)
			}
		}
		switch end := testproc.Args()[3]; end {
		case "close":
			testproc.Check(q.Close(), "close")
		case "exit":
			os.Exit(0)
		default:
			testproc.Fatalf("unknown end %q", end)
		}
	})
	// sq-put-bad: put values that cannot be encoded, then "good"; print
	// each Put's outcome.
	testproc.Register("sq-put-bad", func() {
		q, err := simplequeue.Inherit[any](qname)
		testproc.Check(err, "inherit")
		for _, v := range []any{make(chan int), func() {}, "good"} {
			if err := q.Put(context.Background(), v); err != nil {
				fmt.Printf("%T refused: %v\n", v, err)
			} else {
				fmt.Printf("%T put\n", v)
			}
		}
		testproc.Check(q.Close(), "close")
	})
	// sq-fill: Put items 0/0, 0/1, ... with a 100 ms timeout each
	// until one times out, which is when the socket is full; print how many
	// were put, and exit without Close.
	testproc.Register("sq-fill", func() {
		q := inheritQ()
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			err := q.Put(ctx, newMsg(0, i, 0))
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				fmt.Println(i)
				return
			}
			testproc.Check(err, "put")
		}
	})
	// sq-wait-get TIMEOUT: Get with a timeout of TIMEOUT ms; print
	// "deadline" or "got P I".
	testproc.Register("sq-wait-get", func() {
		q := inheritQ()
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(arg(0))*time.Millisecond)
		defer cancel()
		m, err := q.Get(ctx)
		switch {
		case err == nil:
			fmt.Printf("got %d %d\n", m.P, m.I)
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Println("deadline")
		default:
			testproc.Fatalf("get: %v", err)
		}
		testproc.Check(q.Close(), "close")
	})
	// sq-close-wakes: block a Get on "q" (empty) and a Put on "full" (its
	// socket full), then Close both, twice and concurrently; print "ok"
	// when the blocked calls returned ErrClosed and every later call does.
	testproc.Register("sq-close-wakes", func() {
		empty := inheritQ()
		full, err := simplequeue.Inherit[msg]("full")
		testproc.Check(err, "inherit full")
		errs := make(chan error, 2)
		go func() { _, err := empty.Get(context.Background()); errs <- err }()
		go func() { errs <- full.Put(context.Background(), newMsg(9, 9, 0)) }()
		testproc.WaitBlocked(nil, "simplequeue.(*Queue[...]).Get", 1)
		testproc.WaitBlocked(nil, "simplequeue.(*Queue[...]).Put", 1)
		var wg sync.WaitGroup
		for _, q := range []*simplequeue.Queue[msg]{empty, full, empty, full} {
			wg.Go(func() { testproc.Check(q.Close(), "close") })
		}
		wg.Wait()
		for range 2 {
			if err := <-errs; !errors.Is(err, simplequeue.ErrClosed) {
				testproc.Fatalf("blocked call woken with %v, want ErrClosed", err)
			}
		}
		ctx := context.Background()
		for _, q := range []*simplequeue.Queue[msg]{empty, full} {
			_, gerr := q.Get(ctx)
			for what, err := range map[string]error{
				"Put": q.Put(ctx, newMsg(0, 0, 0)), "Get": gerr, "Share": q.Share(exec.Command("true"), "x"),
			} {
				if !errors.Is(err, simplequeue.ErrClosed) {
					testproc.Fatalf("%s after Close: %v, want ErrClosed", what, err)
				}
			}
			if err := q.Close(); err != nil {
				testproc.Fatalf("Close again: %v", err)
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

// run starts helper with args and the queues of shares under the names
// "q", then "full".
func run(t *testing.T, helper string, shares []sharer, args ...string) *child {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	for i, s := range shares {
		require.NoError(t, s.Share(cmd, []string{qname, "full"}[i]))
	}
	return testproc.StartLines(t, cmd)
}

type msgID struct{ p, i int }

func newQ[T any](t *testing.T) *simplequeue.Queue[T] {
	t.Helper()
	q, err := simplequeue.New[T]()
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	return q
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestUnencodableRefused: a value that cannot be encoded fails in the Put
// of the process that puts it, and the queue goes on.
func TestUnencodableRefused(t *testing.T) {
	testproc.CheckFDs(t)
	q := newQ[any](t)
	lines := run(t, "sq-put-bad", []sharer{q}).Wait(t)
	require.Len(t, lines, 3)
	assert.Contains(t, lines[0], "chan int refused:")
	assert.Contains(t, lines[1], "func() refused:")
	assert.Equal(t, "string put", lines[2])
	v, err := q.Get(timeout(t, 10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, "good", v)
	assert.True(t, q.Empty(), "nothing of the refused values was put")
}

// TestPutSynchronous: when Put returns, the item is in the kernel: a
// producer that exits at once, without Close, loses nothing, whether the
// consumer runs meanwhile or only after the producer is gone.
func TestPutSynchronous(t *testing.T) {
	t.Run("consumer-after", func(t *testing.T) {
		testproc.CheckFDs(t)
		const n = 50 // fits in the socket
		q := newQ[msg](t)
		assert.True(t, q.Empty())
		run(t, "sq-put", []sharer{q}, "1", strconv.Itoa(n), "16", "exit").Wait(t)
		assert.False(t, q.Empty())
		ctx := timeout(t, 10*time.Second)
		for i := range n {
			m, err := q.Get(ctx)
			require.NoError(t, err)
			require.NoError(t, m.Check())
			require.Equal(t, msgID{1, i}, msgID{m.P, m.I})
		}
		assert.True(t, q.Empty())
	})
	t.Run("consumer-meanwhile", func(t *testing.T) {
		testproc.CheckFDs(t)
		const n = 20000
		q := newQ[msg](t)
		c := run(t, "sq-put", []sharer{q}, "2", strconv.Itoa(n), "16", "exit")
		ctx := timeout(t, 30*time.Second)
		for i := range n {
			m, err := q.Get(ctx)
			require.NoError(t, err, "item %d", i)
			require.NoError(t, m.Check())
			require.Equal(t, msgID{2, i}, msgID{m.P, m.I})
		}
		assert.Len(t, c.Wait(t), 20)
		assert.True(t, q.Empty())
	})
}

// TestContextEnds: a Get on an empty queue and a Put on a full socket
// return ctx.Err() when ctx ends, in any process, and put or take nothing.
func TestContextEnds(t *testing.T) {
	testproc.CheckFDs(t)
	q := newQ[msg](t)
	assert.Equal(t, []string{"deadline"}, run(t, "sq-wait-get", []sharer{q}, "100").Wait(t))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := q.Get(ctx)
	assert.ErrorIs(t, err, context.Canceled)

	// A child fills the socket until a Put times out.
	lines := run(t, "sq-fill", []sharer{q}).Wait(t)
	require.Len(t, lines, 1)
	k, err := strconv.Atoi(lines[0])
	require.NoError(t, err)
	require.Greater(t, k, 0)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, q.Put(short, newMsg(1, 0, 0)), context.DeadlineExceeded, "a Put on the full socket")
	ctx = timeout(t, 10*time.Second)
	for i := range k {
		m, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, msgID{0, i}, msgID{m.P, m.I})
	}
	assert.True(t, q.Empty(), "the timed-out Puts put nothing")
	assert.Equal(t, []string{"deadline"}, run(t, "sq-wait-get", []sharer{q}, "100").Wait(t))
}

// TestCloseWakesCalls: Close in a child wakes its blocked Get and Put with
// ErrClosed and is idempotent; the queues go on for the other processes.
func TestCloseWakesCalls(t *testing.T) {
	testproc.CheckFDs(t)
	empty := newQ[msg](t)
	full := newQ[msg](t)
	k, err := strconv.Atoi(run(t, "sq-fill", []sharer{full}).Wait(t)[0])
	require.NoError(t, err)
	assert.Equal(t, []string{"ok"}, run(t, "sq-close-wakes", []sharer{empty, full}).Wait(t))
	ctx := timeout(t, 10*time.Second)
	for i := range k {
		m, err := full.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, msgID{0, i}, msgID{m.P, m.I})
	}
	assert.True(t, full.Empty(), "the interrupted Put put nothing")
	require.NoError(t, empty.Put(context.Background(), newMsg(2, 0, 0)))
	m, err := empty.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, msgID{2, 0}, msgID{m.P, m.I})

	// And in this process.
	got := make(chan error)
	go func() { _, err := empty.Get(context.Background()); got <- err }()
	testproc.WaitBlocked(t, "simplequeue.(*Queue[...]).Get", 1)
	require.NoError(t, empty.Close())
	assert.ErrorIs(t, <-got, simplequeue.ErrClosed)
	assert.NoError(t, empty.Close())
	assert.ErrorIs(t, empty.Put(context.Background(), newMsg(0, 0, 0)), simplequeue.ErrClosed)
}
