package simplequeue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
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
// testproc), which open it with simplequeue.Inherit.

// msg is what the tests send: a testitem.Item, whose body and checksum let
// any process tell a corrupted or misdelivered item.
type msg = testitem.Item

// last is the I of the item that tells a consumer to stop.
const last = testitem.Stop

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

// receipt is what a "receipts" consumer tells the test of each item.
type receipt struct {
	C   int    `msgpack:"c"` // consumer
	P   int    `msgpack:"p"`
	I   int    `msgpack:"i"` // last when the consumer got its stop item
	Err string `msgpack:"e"` // why the item is not intact; empty if it is
}

func init() {
	// sq-put P N SIZE END: put items P/0..P/N-1 with bodies of SIZE bytes,
	// printing "put K" after each N/20; then END: "close" calls Close,
	// "exit" leaves at once with os.Exit and no Close. A Put that fails
	// because the consumer that took a large item died while reading it
	// prints "lost I" and goes on.
	testproc.Register("sq-put", func() {
		q := inheritQ()
		p, n, size := arg(0), arg(1), arg(2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		step := max(1, n/20)
		for i := range n {
			err := q.Put(ctx, newMsg(p, i, size))
			if err != nil && size > 64<<10 && !errors.Is(err, simplequeue.ErrClosed) && ctx.Err() == nil {
				fmt.Printf("lost %d: %v\n", i, err)
			} else {
				testproc.Check(err, "put")
			}
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
	// sq-consume: get items until one with I == last; check each, Close,
	// and print "P I" for each item, in the order received.
	testproc.Register("sq-consume", func() {
		q := inheritQ()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var got []msg
		for {
			m, err := q.Get(ctx)
			testproc.Check(err, "get")
			if m.I == last {
				break
			}
			testproc.Check(m.Check(), "check")
			m.B = nil
			got = append(got, m)
		}
		testproc.Check(q.Close(), "close")
		w := bufio.NewWriter(os.Stdout)
		for _, m := range got {
			fmt.Fprintf(w, "%d %d\n", m.P, m.I)
		}
		testproc.Check(w.Flush(), "write")
	})
	// sq-receipts C: get items and send a receipt for each on "r" before
	// the next Get, until the stop item; then Close both.
	testproc.Register("sq-receipts", func() {
		q := inheritQ()
		r, err := simplequeue.Inherit[receipt]("r")
		testproc.Check(err, "inherit r")
		c := arg(0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			m, err := q.Get(ctx)
			testproc.Check(err, "get")
			rc := receipt{C: c, P: m.P, I: m.I}
			if err := m.Check(); err != nil {
				rc.Err = err.Error()
			}
			testproc.Check(r.Put(ctx, rc), "receipt")
			if m.I == last {
				break
			}
		}
		testproc.Check(q.Close(), "close q")
		testproc.Check(r.Close(), "close r")
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
		time.Sleep(50 * time.Millisecond) // let them block
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

func parseMsgIDs(t *testing.T, lines []string) []msgID {
	t.Helper()
	ids := make([]msgID, 0, len(lines))
	for _, l := range lines {
		var v msgID
		_, err := fmt.Sscanf(l, "%d %d", &v.p, &v.i)
		require.NoError(t, err, "line %q", l)
		ids = append(ids, v)
	}
	return ids
}

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

// TestProducersAndConsumers: 3 producer and 3 consumer processes on one
// queue; every item arrives exactly once, intact.
func TestProducersAndConsumers(t *testing.T) {
	testproc.CheckFDs(t)
	const producers, consumers, n = 3, 3, 3000
	q := newQ[msg](t)
	var cons, prods []*child
	for range consumers {
		cons = append(cons, run(t, "sq-consume", []sharer{q}))
	}
	for p := range producers {
		prods = append(prods, run(t, "sq-put", []sharer{q}, strconv.Itoa(p), strconv.Itoa(n), "16", "close"))
	}
	for _, c := range prods {
		assert.Len(t, c.Wait(t), 20, "progress lines")
	}
	for range consumers {
		require.NoError(t, q.Put(context.Background(), msg{I: last}))
	}
	seen := make(map[msgID]int)
	for c, ch := range cons {
		ids := parseMsgIDs(t, ch.Wait(t))
		t.Logf("consumer %d got %d items", c, len(ids))
		for _, v := range ids {
			seen[v]++
		}
	}
	for p := range producers {
		for i := range n {
			require.Equal(t, 1, seen[msgID{p, i}], "deliveries of item %d/%d", p, i)
		}
	}
	require.Len(t, seen, producers*n)
	assert.True(t, q.Empty())
}

// TestOrderPerProducer: with one consumer, each of 3 producers' items
// arrive in the order it put them.
func TestOrderPerProducer(t *testing.T) {
	testproc.CheckFDs(t)
	const producers, n = 3, 3000
	q := newQ[msg](t)
	cons := run(t, "sq-consume", []sharer{q})
	var prods []*child
	for p := range producers {
		prods = append(prods, run(t, "sq-put", []sharer{q}, strconv.Itoa(p), strconv.Itoa(n), "16", "close"))
	}
	for _, c := range prods {
		c.Wait(t)
	}
	require.NoError(t, q.Put(context.Background(), msg{I: last}))
	next := make([]int, producers)
	for _, v := range parseMsgIDs(t, cons.Wait(t)) {
		require.Equal(t, next[v.p], v.i, "producer %d's next item", v.p)
		next[v.p]++
	}
	for p := range producers {
		assert.Equal(t, n, next[p], "items of producer %d", p)
	}
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
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, empty.Close())
	assert.ErrorIs(t, <-got, simplequeue.ErrClosed)
	assert.NoError(t, empty.Close())
	assert.ErrorIs(t, empty.Put(context.Background(), newMsg(0, 0, 0)), simplequeue.ErrClosed)
}

// TestCrash: consumers and a producer are killed with SIGKILL during a
// stream. A SimpleQueue sends one item per packet, so a killed consumer
// loses at most the one item it was handling; and Put is synchronous, so
// a killed producer loses nothing its Put had returned for.
func TestCrash(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 3000
	}
	t.Run("consumers", func(t *testing.T) {
		sqCrash{producers: 2, n: n, size: 8, killAt: []float64{0.1, 0.4, 0.7}, killP: -1}.run(t)
	})
	t.Run("producer", func(t *testing.T) {
		sqCrash{producers: 2, n: n, size: 8, killP: 0, killPAt: 0.3}.run(t)
	})
	t.Run("8MiB", func(t *testing.T) {
		sqCrash{producers: 2, n: 4, size: 8 << 20, killAt: []float64{0.25}, jitter: 30 * time.Millisecond, killP: -1}.run(t)
	})
}

type sqCrash struct {
	producers, n, size int
	killAt             []float64 // fractions of the items delivered at which a consumer is killed
	jitter             time.Duration
	killP              int // the producer to kill, or -1
	killPAt            float64
}

func (cr sqCrash) run(t *testing.T) {
	testproc.CheckFDs(t)
	const consumers = 3
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	ctx := timeout(t, 60*time.Second)
	q := newQ[msg](t)
	r := newQ[receipt](t)

	receipts := make(chan receipt, 256)
	readErr := make(chan error, 1)
	quit := make(chan struct{})
	rctx, rcancel := context.WithCancel(ctx)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			rc, err := r.Get(rctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case receipts <- rc:
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(quit)
		rcancel()
		<-readDone
	})

	live := map[int]*exec.Cmd{}
	nextC := 0
	startConsumer := func() {
		cmd := testproc.Command(t, "sq-receipts", strconv.Itoa(nextC))
		require.NoError(t, q.Share(cmd, qname))
		require.NoError(t, r.Share(cmd, "r"))
		require.NoError(t, cmd.Start())
		live[nextC] = cmd
		nextC++
	}
	for range consumers {
		startConsumer()
	}
	kill := func(cmd *exec.Cmd, what string) {
		if cr.jitter > 0 {
			time.Sleep(time.Duration(rng.Int64N(int64(cr.jitter))))
		}
		require.NoError(t, cmd.Process.Kill())
		err := cmd.Wait()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%s died of the kill, not %v", what, err)
	}

	type line struct {
		p int
		s string // "" when the output ended
	}
	lines := make(chan line, 64)
	prods := make([]*child, cr.producers)
	for p := range prods {
		prods[p] = run(t, "sq-put", []sharer{q}, strconv.Itoa(p), strconv.Itoa(cr.n), strconv.Itoa(cr.size), "close")
		go func(c *child) {
			for l := range c.Lines {
				select {
				case lines <- line{p, l}:
				case <-quit:
					return
				}
			}
			select {
			case lines <- line{p, ""}:
			case <-quit:
			}
		}(prods[p])
	}

	total := cr.producers * cr.n
	seen := make([][]bool, cr.producers)
	for p := range seen {
		seen[p] = make([]bool, cr.n)
	}
	putLost := map[msgID]bool{} // items whose Put reported them lost
	delivered, kills, killedAfter := 0, 0, 0
	producing, stopsSent, stopsSeen := cr.producers, 0, 0
	for producing > 0 || stopsSent == 0 || stopsSeen < stopsSent {
		if producing == 0 && stopsSent == 0 && kills == len(cr.killAt) {
			for range live {
				require.NoError(t, q.Put(ctx, msg{I: last}))
				stopsSent++
			}
		}
		select {
		case rc := <-receipts:
			if rc.I == last {
				stopsSeen++
				require.NoError(t, testproc.WaitTimeout(live[rc.C], 30*time.Second), "consumer %d after its stop", rc.C)
				delete(live, rc.C)
				continue
			}
			require.Empty(t, rc.Err, "consumer %d got a corrupted item", rc.C)
			require.False(t, seen[rc.P][rc.I], "item %d/%d delivered twice", rc.P, rc.I)
			seen[rc.P][rc.I] = true
			delivered++
			if kills < len(cr.killAt) && float64(delivered) >= cr.killAt[kills]*float64(total) {
				ids := slices.Sorted(maps.Keys(live))
				c := ids[rng.IntN(len(ids))]
				kill(live[c], fmt.Sprintf("consumer %d", c))
				delete(live, c)
				kills++
				startConsumer()
			}
		case l := <-lines:
			var k int
			switch {
			case l.s == "":
				if l.p != cr.killP {
					require.NoError(t, testproc.WaitTimeout(prods[l.p].Cmd, 30*time.Second), "producer %d", l.p)
				}
				producing--
			case l.p == cr.killP:
				if _, err := fmt.Sscanf(l.s, "put %d", &k); err == nil && killedAfter == 0 && float64(k) >= cr.killPAt*float64(cr.n) {
					kill(prods[l.p].Cmd, "the producer")
					killedAfter = k
				}
			default:
				if _, err := fmt.Sscanf(l.s, "lost %d", &k); err == nil {
					putLost[msgID{l.p, k}] = true
				}
			}
		case err := <-readErr:
			require.NoError(t, err, "reading the receipts")
		case <-ctx.Done():
			require.FailNow(t, "the stream did not end", "%d of %d delivered", delivered, total)
		}
	}

	lost := 0
	for p := range cr.producers {
		if p == cr.killP {
			require.Positive(t, killedAfter, "the producer was killed while it put")
			k := slices.Index(seen[p], false)
			require.GreaterOrEqual(t, k, killedAfter, "every item whose Put returned arrived")
			require.False(t, slices.Contains(seen[p][k:], true), "nothing after the first item lost")
			t.Logf("producer killed after %d Puts returned: %d items delivered", killedAfter, k)
			continue
		}
		for i, ok := range seen[p] {
			if !ok {
				lost++
				t.Logf("lost %d/%d (its Put reported it: %v)", p, i, putLost[msgID{p, i}])
			}
		}
	}
	for v := range putLost {
		assert.False(t, seen[v.p][v.i], "item %d/%d, whose Put failed, was delivered", v.p, v.i)
	}
	// A consumer that handles items quickly takes up to 8 packets (one
	// item each) per receive (see the package documentation).
	assert.LessOrEqual(t, lost, 8*kills, "a killed consumer loses at most the items of its last receive")
	assert.True(t, q.Empty(), "the survivors got everything in the queue")
	t.Logf("%d items delivered, %d lost by %d consumer kills", delivered, lost, kills)
}

// TestBigItemKilledMidBody: a consumer killed while it reads the body of an
// 8 MiB item (its producer is stopped with SIGSTOP mid-body, so the moment
// is certain) loses that item alone: the producer's Put reports it lost,
// and 3 consumers then get the others intact.
func TestBigItemKilledMidBody(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := timeout(t, 60*time.Second)
	const n = 5
	q := newQ[msg](t)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				require.FailNow(t, "timed out waiting: "+what)
			case <-time.After(time.Millisecond):
			}
		}
	}
	p := run(t, "sq-put", []sharer{q}, "0", strconv.Itoa(n), strconv.Itoa(8<<20), "close")
	// The first Put sends the item's stub, then writes its body as a
	// consumer reads it: with none yet, it waits, and we stop it.
	waitFor("the first item", func() bool { return !q.Empty() })
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGSTOP))
	first := testproc.Command(t, "sq-consume")
	require.NoError(t, q.Share(first, qname))
	require.NoError(t, first.Start())
	waitFor("the consumer to take the item", q.Empty)
	time.Sleep(50 * time.Millisecond) // let it read what it can of the body
	require.NoError(t, first.Process.Kill())
	first.Wait()
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGCONT))

	var cons []*child
	for range 3 {
		cons = append(cons, run(t, "sq-consume", []sharer{q}))
	}
	out := p.Wait(t)
	require.NotEmpty(t, out)
	assert.Regexp(t, `^lost 0: `, out[0], "the producer's Put reports the item lost")
	for range cons {
		require.NoError(t, q.Put(ctx, msg{I: last}))
	}
	seen := map[msgID]int{}
	for _, c := range cons {
		for _, v := range parseMsgIDs(t, c.Wait(t)) {
			seen[v]++
		}
	}
	for i := 1; i < n; i++ {
		assert.Equal(t, 1, seen[msgID{0, i}], "deliveries of item %d", i)
	}
	assert.Zero(t, seen[msgID{0, 0}], "the item being read is lost")
}
