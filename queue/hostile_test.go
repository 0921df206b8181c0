package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/queue"
)

func init() {
	// put-until-blocked N: put N small items into the bounded queue q from
	// a goroutine; print "blocked" once that Put waits (for room in this
	// process's backlog, or for a slot), then wait to be killed.
	testproc.Register("put-until-blocked", func() {
		q := inherit()
		go func() {
			for i := range intArg(0) {
				testproc.Check(q.Put(context.Background(), newItem(7, i, 16)), "put")
			}
		}()
		testproc.WaitBlocked(nil, "queue.(*Queue[...]).Put", 1)
		fmt.Println("blocked")
		time.Sleep(time.Hour)
	})
	// hold-then-drain: open q, print "holding", wait for a line on stdin,
	// then get every item until the queue stays empty for a second; print
	// how many.
	testproc.Register("hold-then-drain", func() {
		q := inherit()
		fmt.Println("holding")
		bufio.NewReader(os.Stdin).ReadString('\n')
		n := 0
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := q.Get(ctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			testproc.Check(err, "get")
			n++
		}
		fmt.Println(n)
		testproc.Check(q.Close(), "close")
	})
}

// A producer stopped (SIGSTOP) in the middle of an item larger than a
// packet: the consumer's Get returns on its ctx, and once the producer
// goes on, the next Get returns the item whole.
func TestStoppedProducerMidItem(t *testing.T) {
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			q := k.create(t, 0)
			c := start(t, "produce", []sharer{q}, k.name, "7", "1", strconv.Itoa(8<<20), "close")
			for q.Empty() { // the item's first packet is in the socket
				time.Sleep(time.Millisecond)
			}
			require.NoError(t, c.Cmd.Process.Signal(syscall.SIGSTOP))
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, err := q.Get(ctx)
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded, "Get returns on its ctx while the producer is stopped")
			require.NoError(t, c.Cmd.Process.Signal(syscall.SIGCONT))
			v, err := q.Get(ctxT(t, 30*time.Second))
			require.NoError(t, err)
			require.NoError(t, v.Check())
			assert.Equal(t, id{7, 0}, id{v.P, v.I})
			assert.Equal(t, []string{"put"}, c.Wait(t))
		})
	}
}

// A producer killed while its Puts wait costs a bounded queue at most the
// slots of the items in its backlog: at most 1024 (maxBuffered).
func TestKilledProducerCostsBoundedSlots(t *testing.T) {
	testproc.CheckFDs(t)
	const maxsize = 5000
	q := newQueue[item](t, maxsize)
	c := start(t, "put-until-blocked", []sharer{q}, strconv.Itoa(maxsize))
	require.Equal(t, "blocked", c.Line(t))
	taken := q.Qsize()
	testproc.Reap(c.Cmd) // SIGKILL, and wait until it is gone
	got := 0
	for {
		_, err := q.TryGet()
		if errors.Is(err, queue.ErrEmpty) {
			break
		}
		require.NoError(t, err)
		got++
	}
	lost := q.Qsize()
	t.Logf("the producer had %d slots, %d items reached the socket, %d slots lost with it", taken, got, lost)
	assert.Positive(t, got)
	assert.LessOrEqual(t, lost, 1024, "at most the 1024 items a bounded queue's producer buffers")
	assert.Equal(t, taken, got+lost)
}

// Close while a live consumer holds the queue but never gets: after a
// Flush whose ctx ended, Close does not wait again, drops what is left and
// says how many items; the consumer then gets exactly the others.
func TestCloseAfterFlushGaveUp(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := queue.New[item](0)
	require.NoError(t, err)
	c := start(t, "hold-then-drain", []sharer{q})
	require.Equal(t, "holding", c.Line(t))
	const n = 3000
	for i := range n {
		require.NoError(t, q.Put(context.Background(), newItem(1, i, 1000)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	require.ErrorIs(t, q.Flush(ctx), context.DeadlineExceeded, "the socket is full and nobody gets")
	cancel()
	start := time.Now()
	err = q.Close()
	assert.Less(t, time.Since(start), 5*time.Second, "Close does not wait again")
	require.ErrorIs(t, err, queue.ErrDropped)
	m := regexp.MustCompile(`dropped (\d+) item`).FindStringSubmatch(err.Error())
	require.NotNil(t, m, "the error says how many: %v", err)
	dropped, _ := strconv.Atoi(m[1])
	assert.Positive(t, dropped)
	_, err = fmt.Fprintln(c.Stdin, "drain")
	require.NoError(t, err)
	out := c.Wait(t)
	require.Len(t, out, 1)
	got, _ := strconv.Atoi(out[0])
	assert.Equal(t, n, got+dropped, "every item arrived or was counted as dropped")
}

// Calls racing Close in the queue's last holder (the child that shared it
// has exited) fail with ErrClosed, not with the socket's "broken pipe" or
// "connection reset".
func TestRacingCloseIsErrClosed(t *testing.T) {
	for _, maxsize := range []int{0, 8} {
		t.Run(fmt.Sprintf("maxsize=%d", maxsize), func(t *testing.T) {
			testproc.CheckFDs(t)
			for round := range 20 {
				q, err := queue.New[item](maxsize)
				require.NoError(t, err)
				c := start(t, "get", []sharer{q}, "0")
				c.Wait(t) // this process is now the last holder
				var wg sync.WaitGroup
				errs := make(chan error, 64)
				for g := range 4 {
					wg.Go(func() {
						ctx := context.Background()
						for i := 0; ; i++ {
							var err error
							if g%2 == 0 {
								err = q.Put(ctx, newItem(g, i, 100))
							} else {
								_, err = q.Get(ctx)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					})
				}
				testproc.WaitBlocked(t, "queue.(*Queue[...]).Get", 1)
				cerr := q.Close()
				wg.Wait()
				close(errs)
				for err := range errs {
					assert.ErrorIs(t, err, queue.ErrClosed, "round %d", round)
				}
				if cerr != nil {
					assert.ErrorIs(t, cerr, queue.ErrClosed, "round %d: Close", round)
				}
			}
		})
	}
}

func init() {
	// get-at-fd-limit KIND: open the queue, lower this process's
	// descriptor limit so that it can open no more, print "ready", get
	// (a large item, whose pipe the kernel cannot install: print "emfile"
	// when the error says so), restore the limit, get again and print
	// "got P I"; TaskDone both for a joinable queue; Close.
	testproc.Register("get-at-fd-limit", func() {
		q := inheritKind(testproc.Args()[0])
		var lim syscall.Rlimit
		testproc.Check(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim), "getrlimit")
		// The limit becomes the lowest free descriptor number: the next
		// descriptor this process would get.
		r, w, err := os.Pipe()
		testproc.Check(err, "pipe")
		free := r.Fd()
		r.Close()
		w.Close()
		low := lim
		low.Cur = uint64(free)
		testproc.Check(syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low), "setrlimit")
		fmt.Println("ready")
		ctx, cancel := helperCtx()
		defer cancel()
		done := func() {
			if jq, ok := q.(interface{ TaskDone() error }); ok {
				testproc.Check(jq.TaskDone(), "task done")
			}
		}
		_, err = q.Get(ctx)
		if errors.Is(err, syscall.EMFILE) {
			fmt.Println("emfile")
		} else {
			testproc.Fatalf("get at the descriptor limit: %v", err)
		}
		testproc.Check(syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim), "setrlimit")
		v, err := q.Get(ctx)
		testproc.Check(err, "get")
		done()
		fmt.Printf("got %d %d\n", v.P, v.I)
		testproc.Check(q.Close(), "close")
	})
}

// A consumer at its descriptor limit receives a large item: the kernel
// cannot give it the item's pipe, so the item is lost there; Get says so
// with EMFILE's meaning (errors.Is syscall.EMFILE), and the accounting
// stays right: the bounded queue's slot comes back, joinable's count
// forgets the item, so Join returns.
func TestConsumerAtDescriptorLimit(t *testing.T) {
	for _, k := range crashKinds {
		if k.name != "bounded" && k.name != "joinable" {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			q := k.create(t, 16)
			c := start(t, "get-at-fd-limit", []sharer{q}, k.name)
			require.Equal(t, "ready", c.Line(t))
			ctx := ctxT(t, 30*time.Second)
			require.NoError(t, q.Put(ctx, newItem(1, 0, 200<<10)))
			require.NoError(t, q.Put(ctx, newItem(1, 1, 10)))
			assert.Equal(t, []string{"emfile", "got 1 1"}, c.Wait(t))
			switch q := q.(type) {
			case *queue.Queue[item]:
				assert.Equal(t, 0, q.Qsize(), "the lost item's slot is back")
				assert.True(t, q.Empty())
			case interface{ Join(context.Context) error }:
				assert.NoError(t, q.Join(ctx), "the lost item is not waited for")
			}
		})
	}
}

// twin has item's msgpack shape under another name and field order, with
// other integer widths.
type twin struct {
	Sum uint64 `msgpack:"s"`
	B   []byte `msgpack:"b"`
	I   int32  `msgpack:"i"`
	P   int64  `msgpack:"p"`
}

// other is another shape: its fields are not item's.
type other struct {
	Name string
	Size int
}

func init() {
	// inherit-as TYPE: Inherit the queue with items of TYPE (twin, other,
	// any, item); print "ok" or "wrong-kind: <error>".
	testproc.Register("inherit-as", func() {
		var err error
		switch typ := testproc.Args()[0]; typ {
		case "twin":
			_, err = queue.Inherit[twin](qname)
		case "other":
			_, err = queue.Inherit[other](qname)
		case "any":
			_, err = queue.Inherit[any](qname)
		case "item":
			_, err = queue.Inherit[item](qname)
		default:
			testproc.Fatalf("type %q", typ)
		}
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, queue.ErrWrongKind):
			fmt.Println("wrong-kind:", err)
		default:
			testproc.Fatalf("inherit: %v", err)
		}
	})
}

// A child that opens the queue with another item type than the parent's
// fails at Inherit, saying which types; one with the same msgpack shape
// (another name, field order or integer width), or with any, succeeds.
func TestInheritChecksTheItemType(t *testing.T) {
	testproc.CheckFDs(t)
	q := newQueue[item](t, 0)
	for typ, want := range map[string]string{"twin": "ok", "any": "ok", "item": "ok", "other": "wrong-kind"} {
		out := start(t, "inherit-as", []sharer{q}, typ).Wait(t)
		require.Len(t, out, 1, typ)
		assert.True(t, strings.HasPrefix(out[0], want), "%s: %s", typ, out[0])
		if want != "ok" {
			assert.Contains(t, out[0], "testitem.Item", "the error names the parent's type")
			assert.Contains(t, out[0], "queue_test.other", "and the child's")
		}
	}
	anyQ := newQueue[any](t, 0)
	out := start(t, "inherit-as", []sharer{anyQ}, "other").Wait(t)
	assert.Equal(t, []string{"ok"}, out, "a queue of any takes every type")
}

func init() {
	// put-deep: put into the queue, as msgpack.RawMessage, an array nested
	// 8 Mi levels deep (one byte per level: a large item), a value followed
	// by other bytes, a struct with the deep array under a field the
	// consumer does not know, then a plain item.
	testproc.Register("put-deep", func() {
		q, err := queue.Inherit[msgpack.RawMessage](qname)
		testproc.Check(err, "inherit")
		ctx, cancel := helperCtx()
		defer cancel()
		deep := append(bytes.Repeat([]byte{0x91}, 8<<20), 0xc0)
		unknown := append([]byte{0x81, 0xa7}, "unknown"...)
		unknown = append(unknown, deep[len(deep)-20000:]...)
		good, err := msgpack.Marshal(newItem(3, 4, 10))
		testproc.Check(err, "marshal")
		for _, p := range [][]byte{deep, {0x2a, 0xc1, 0xc1, 0xc1}, unknown, good} {
			testproc.Check(q.Put(ctx, msgpack.RawMessage(p)), "put")
		}
		testproc.Check(q.Close(), "close")
	})
}

// A producer's item nested deeper than any real data (8 Mi levels, which
// overflowed the decoder's stack), or followed by other bytes, or with a
// deep value under an unknown struct field: each Get refuses it before
// decoding (ErrTooDeep, ErrCorrupt), and the queue goes on.
func TestGetRefusesHostileItems(t *testing.T) {
	testproc.CheckFDs(t)
	q := newQueue[item](t, 0)
	c := start(t, "put-deep", []sharer{q})
	ctx := ctxT(t, 30*time.Second)
	_, err := q.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrTooDeep, "8 Mi levels")
	assert.ErrorIs(t, err, queue.ErrCorrupt)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrCorrupt, "bytes after the value")
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, queue.ErrTooDeep, "20,000 levels under an unknown field")
	v, err := q.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, id{3, 4}, id{v.P, v.I})
	assert.Empty(t, c.Wait(t))
}
