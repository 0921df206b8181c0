package condition

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/record"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/value"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func init() {
	testproc.Register("peer", helperPeer)
	testproc.Register("consumer", helperConsumer)
}

// helperPeer inherits "c" and obeys one command per line of stdin: "wait
// ms" answers "waiting" once its ticket is in, then the result.
func helperPeer() {
	c, err := Inherit("c")
	testproc.Check(err, "inherit")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "wait":
			ms, _ := strconv.Atoi(arg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			c.L.Lock()
			fmt.Println("waiting")
			err := c.Wait(ctx)
			held := !c.L.TryLock() // Wait took it again: TryLock must fail
			c.L.Unlock()
			cancel()
			fmt.Println(errName(err), held)
		case "notify":
			n, _ := strconv.Atoi(arg)
			c.L.Lock()
			err := c.Notify(n)
			c.L.Unlock()
			fmt.Println(errName(err))
		default:
			testproc.Fatalf("unknown command %q", cmd)
		}
	}
	testproc.Check(c.Close(), "close")
}

func errName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	}
	return err.Error()
}

func startPeer(t *testing.T, c *Condition) *testproc.Child {
	cmd := testproc.Command(t, "peer")
	require.NoError(t, c.Share(cmd, "c"))
	return testproc.StartLines(t, cmd)
}

func do(t *testing.T, p *testproc.Child, command string) string {
	t.Helper()
	_, err := fmt.Fprintln(p.Stdin, command)
	require.NoError(t, err)
	return p.Line(t)
}

func queued(t *testing.T, c *Condition, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		data, err := c.rec.Load(context.Background())
		if err != nil {
			return false
		}
		st, err := decode(data)
		return err == nil && len(st.waiters) == n
	}, 30*time.Second, time.Millisecond, "%d waiters queued", n)
}

// Notify(n) wakes n waiters of other processes, the oldest first, and they
// return holding the lock; NotifyAll wakes the rest.
func TestNotifyAcrossProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	c, err := New(nil)
	require.NoError(t, err)
	defer c.L.Close()
	defer c.Close()
	var peers []*testproc.Child
	for i := range 4 {
		p := startPeer(t, c)
		require.Equal(t, "waiting", do(t, p, "wait 30000"))
		queued(t, c, i+1) // in this order
		peers = append(peers, p)
	}
	c.L.Lock()
	require.NoError(t, c.Notify(2))
	c.L.Unlock()
	assert.Equal(t, "ok true", peers[0].Line(t))
	assert.Equal(t, "ok true", peers[1].Line(t))
	queued(t, c, 2)
	c.L.Lock()
	require.NoError(t, c.NotifyAll())
	c.L.Unlock()
	assert.Equal(t, "ok true", peers[2].Line(t))
	assert.Equal(t, "ok true", peers[3].Line(t))

	// A child notifies this process.
	got := make(chan error, 1)
	go func() {
		c.L.Lock()
		defer c.L.Unlock()
		got <- c.Wait(context.Background())
	}()
	queued(t, c, 1)
	assert.Equal(t, "ok", do(t, peers[0], "notify 1"))
	require.NoError(t, <-got)
}

// A waiter killed in its Wait does not take a Notify(1) from a living one.
func TestKilledWaiterSkipped(t *testing.T) {
	testproc.CheckFDs(t)
	c, err := New(nil)
	require.NoError(t, err)
	defer c.L.Close()
	defer c.Close()
	dead := startPeer(t, c)
	require.Equal(t, "waiting", do(t, dead, "wait 30000"))
	queued(t, c, 1)
	alive := startPeer(t, c)
	require.Equal(t, "waiting", do(t, alive, "wait 30000"))
	queued(t, c, 2)
	require.NoError(t, dead.Cmd.Process.Kill())
	dead.Cmd.Wait()
	c.L.Lock()
	require.NoError(t, c.Notify(1))
	c.L.Unlock()
	assert.Equal(t, "ok true", alive.Line(t))
	queued(t, c, 0)
}

// Wait's ctx: ctx.Err(), the lock held again, the ticket gone.
func TestWaitCtx(t *testing.T) {
	testproc.CheckFDs(t)
	c, err := New(nil)
	require.NoError(t, err)
	defer c.L.Close()
	defer c.Close()
	p := startPeer(t, c)
	require.Equal(t, "waiting", do(t, p, "wait 50"))
	assert.Equal(t, "DeadlineExceeded true", p.Line(t))
	queued(t, c, 0)
	assert.ErrorIs(t, c.Wait(context.Background()), ErrNotHeld, "without the lock")
	queued(t, c, 0)
}

// helperConsumer takes 10 items from a shared count, waiting on the
// condition while it is zero, and reports their sum.
func helperConsumer() {
	c, err := Inherit("c")
	testproc.Check(err, "inherit")
	n, err := value.Inherit[int]("n")
	testproc.Check(err, "inherit n")
	ctx := context.Background()
	for range 10 {
		c.L.Lock()
		testproc.Check(c.WaitFor(ctx, func() bool {
			x, err := n.Load(ctx)
			testproc.Check(err, "load")
			return x > 0
		}), "wait for")
		_, err := n.Update(ctx, func(x int) int { return x - 1 })
		testproc.Check(err, "update")
		c.L.Unlock()
	}
	fmt.Println("done")
}

// The classic use: consumers wait for a shared count to be positive, a
// producer raises it and notifies; nothing is lost, nobody hangs.
func TestProducerConsumers(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	c, err := New(nil)
	require.NoError(t, err)
	defer c.L.Close()
	defer c.Close()
	n, err := value.New(0)
	require.NoError(t, err)
	defer n.Close()
	var consumers []*testproc.Child
	for range 3 {
		cmd := testproc.Command(t, "consumer")
		require.NoError(t, c.Share(cmd, "c"))
		require.NoError(t, n.Share(cmd, "n"))
		consumers = append(consumers, testproc.StartLines(t, cmd))
	}
	for range 30 {
		c.L.Lock()
		_, err := n.Update(ctx, func(x int) int { return x + 1 })
		require.NoError(t, err)
		require.NoError(t, c.Notify(1))
		c.L.Unlock()
	}
	for _, p := range consumers {
		assert.Equal(t, []string{"done"}, p.Wait(t))
	}
	x, err := n.Load(ctx)
	require.NoError(t, err)
	assert.Zero(t, x)
}

func TestGoroutinesAndClose(t *testing.T) {
	testproc.CheckFDs(t)
	c, err := New(nil)
	require.NoError(t, err)
	defer c.L.Close()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			c.L.Lock()
			defer c.L.Unlock()
			assert.ErrorIs(t, c.Wait(context.Background()), ErrClosed)
		})
	}
	queued(t, c, 3)
	require.NoError(t, c.Close())
	wg.Wait()
	assert.ErrorIs(t, c.Share(exec.Command("true"), "c"), ErrClosed)
	assert.NoError(t, c.Close())
	_ = record.ErrClosed
}
