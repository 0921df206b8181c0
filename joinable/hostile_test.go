package joinable_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/joinable"
)

func init() {
	// hold-count END: take the task count's baton (read its record from
	// the baton pipe, as a process in the middle of an update does) and
	// print "held"; then END: "die" exits holding it (a process killed
	// mid-update), "release" waits for a line on stdin and gives it back.
	testproc.Register("hold-count", func() {
		e, ok := share.Lookup(qname)
		if !ok {
			testproc.Fatalf("no %s", qname)
		}
		var rec [16]byte
		for {
			n, err := unix.Read(e.FDs[0], rec[:])
			if err == unix.EAGAIN || err == unix.EINTR {
				time.Sleep(time.Millisecond) // the baton is busy
				continue
			}
			testproc.Check(err, "read the record")
			if n != len(rec) {
				testproc.Fatalf("read %d bytes of the record", n)
			}
			break
		}
		fmt.Println("held")
		if testproc.Args()[0] == "release" {
			bufio.NewReader(os.Stdin).ReadString('\n')
			_, err := unix.Write(e.FDs[1], rec[:])
			testproc.Check(err, "give the record back")
			fmt.Println("released")
		}
	})
}

// within runs f in a goroutine and fails t unless it returns within d.
func within[V any](t *testing.T, d time.Duration, what string, f func() V) V {
	t.Helper()
	done := make(chan V, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// Another process holds the count (it died holding it, or holds it for
// long): every call returns on its ctx, Qsize and Empty do not wait behind
// a blocked Put, Close wakes that Put at once and ends within its bound;
// once the count comes back, calls go on.
func TestCountHeldElsewhere(t *testing.T) {
	for _, end := range []string{"die", "release"} {
		t.Run(end, func(t *testing.T) {
			testproc.CheckFDs(t)
			jq, err := joinable.New[int](0)
			require.NoError(t, err)
			cmd := testproc.Command(t, "hold-count", end)
			require.NoError(t, jq.Share(cmd, qname))
			c := testproc.StartLines(t, cmd)
			require.Equal(t, "held", c.Line(t))
			if end == "die" {
				c.Wait(t)
			}

			short := func() context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			}
			assert.ErrorIs(t, within(t, 5*time.Second, "Put", func() error { return jq.Put(short(), 1) }), context.DeadlineExceeded)
			assert.ErrorIs(t, within(t, 5*time.Second, "TryPut", func() error { return jq.TryPut(1) }), context.DeadlineExceeded)
			assert.ErrorIs(t, within(t, 5*time.Second, "Join", func() error { return jq.Join(short()) }), context.DeadlineExceeded)
			assert.NoError(t, within(t, 5*time.Second, "Flush", func() error { return jq.Flush(short()) }), "nothing buffered")

			// A Put without a deadline waits for the count; the rest of
			// the process does not wait behind it.
			blocked := make(chan error, 1)
			go func() { blocked <- jq.Put(context.Background(), 2) }()
			testproc.WaitBlocked(t, "counter.(*Counter).read", 1)
			assert.Equal(t, 0, within(t, 5*time.Second, "Qsize", jq.Qsize))
			assert.True(t, within(t, 5*time.Second, "Empty", jq.Empty))

			if end == "release" {
				_, err := fmt.Fprintln(c.Stdin, "go")
				require.NoError(t, err)
				require.Equal(t, "released", c.Line(t))
				require.NoError(t, within(t, 5*time.Second, "the blocked Put", func() error { return <-blocked }))
				v, err := jq.Get(short())
				require.NoError(t, err)
				assert.Equal(t, 2, v)
				require.NoError(t, jq.TaskDone())
				require.NoError(t, within(t, 5*time.Second, "Join", func() error { return jq.Join(short()) }))
				require.NoError(t, jq.Close())
				return
			}
			start := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- jq.Close() }()
			err = within(t, 5*time.Second, "the blocked Put, woken by Close", func() error { return <-blocked })
			assert.ErrorIs(t, err, joinable.ErrClosed)
			err = within(t, 30*time.Second, "Close", func() error { return <-closed })
			t.Logf("Close took %v: %v", time.Since(start), err)
			if err != nil {
				assert.False(t, errors.Is(err, joinable.ErrTooManyTaskDone), "%v", err)
			}
		})
	}
}

func init() {
	// forge-short-stub: send on the queue's socket a large item's stub
	// (marker -2, a size of 100 KiB, no inline bytes) with a pipe whose
	// body ends after 10 bytes; print "sent".
	testproc.Register("forge-short-stub", func() {
		e, ok := share.Lookup(qname)
		if !ok {
			testproc.Fatalf("no %s", qname)
		}
		snd := e.FDs[4] // after the task count's 4
		var p [2]int
		testproc.Check(unix.Pipe2(p[:], unix.O_CLOEXEC), "pipe")
		unix.Write(p[1], make([]byte, 10))
		unix.Close(p[1])
		stub := binary.BigEndian.AppendUint32(nil, 0xfffffffe)
		stub = binary.BigEndian.AppendUint64(stub, 100<<10)
		testproc.Check(unix.Sendmsg(snd, stub, unix.UnixRights(p[0]), nil, 0), "sendmsg")
		fmt.Println("sent")
	})
}

// A forged large-item stub whose body ends early takes nothing off the
// count of unfinished tasks: Join still waits for the genuine task.
func TestForgedStubLeavesTheCount(t *testing.T) {
	testproc.CheckFDs(t)
	jq, err := joinable.New[int](0)
	require.NoError(t, err)
	defer jq.Close()
	cmd := testproc.Command(t, "forge-short-stub")
	require.NoError(t, jq.Share(cmd, qname))
	c := testproc.StartLines(t, cmd)
	require.Equal(t, "sent", c.Line(t))
	c.Wait(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, jq.Put(ctx, 42))
	v, err := jq.Get(ctx)
	require.NoError(t, err, "the forged item is dropped, the genuine one comes")
	assert.Equal(t, 42, v)
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	assert.ErrorIs(t, jq.Join(short), context.DeadlineExceeded, "the genuine task is unfinished")
	require.NoError(t, jq.TaskDone())
	assert.NoError(t, jq.Join(ctx))
}

// Consumers SIGKILLed and replaced every few milliseconds, some of them in
// the middle of a count update (which loses the count for good): the
// producer's Puts and Join still return, each by its ctx at the latest,
// and Close ends within its bound.
func TestConsumersKilledUnderwayNeverHangTheProducer(t *testing.T) {
	testproc.CheckFDs(t)
	jq, err := joinable.New[int](64)
	require.NoError(t, err)
	stopKills := make(chan struct{})
	enough := make(chan struct{})
	killed := make(chan int, 1)
	go func() {
		n := 0
		defer func() { killed <- n }()
		var live []*testproc.Child
		for {
			select {
			case <-stopKills:
				for _, c := range live {
					testproc.Reap(c.Cmd)
				}
				return
			default:
			}
			for len(live) < 4 {
				cmd := testproc.Command(t, "consume")
				if jq.Share(cmd, qname) != nil {
					return
				}
				live = append(live, testproc.StartLines(t, cmd))
			}
			time.Sleep(time.Duration(2+n%5) * time.Millisecond) // the kill's moment, not a condition
			testproc.Reap(live[0].Cmd)
			live = live[1:]
			n++
			if n == 100 {
				close(enough)
			}
		}
	}()
	const perPut = 2 * time.Second
	for i := 0; ; i++ {
		if isClosed(enough) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), perPut)
		start := time.Now()
		err := jq.Put(ctx, i)
		cancel()
		require.Less(t, time.Since(start), perPut+2*time.Second, "Put %d returned by its ctx", i)
		if err != nil {
			// The queue was full of items the killed consumers took, or
			// the count was lost with one of them.
			require.ErrorIs(t, err, context.DeadlineExceeded, "Put %d", i)
		}
	}
	close(stopKills)
	t.Logf("%d consumers killed", <-killed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err = jq.Join(ctx)
	assert.Less(t, time.Since(start), 3*time.Second, "Join returns by its ctx")
	if err != nil {
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	closed := within(t, 20*time.Second, "Close", func() error { return jq.Close() })
	t.Logf("Join: %v; Close: %v", err, closed)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
