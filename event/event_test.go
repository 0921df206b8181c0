package event

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

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func init() {
	testproc.Register("peer", helperPeer)
}

// helperPeer inherits "e" and obeys one command per line of stdin,
// answering one line.
func helperPeer() {
	e, err := Inherit("e")
	testproc.Check(err, "inherit")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "wait": // answers "waiting", then the time it woke
			ms, _ := strconv.Atoi(arg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			fmt.Println("waiting")
			err := e.Wait(ctx)
			at := testproc.Monotonic()
			cancel()
			if err != nil {
				fmt.Println(errName(err))
			} else {
				fmt.Println("woke", at)
			}
		case "isset":
			fmt.Println(e.IsSet())
		case "set":
			fmt.Println(errName(e.Set()))
		case "spin": // Set and Clear until killed
			fmt.Println("spinning")
			for {
				testproc.Check(e.Set(), "set")
				testproc.Check(e.Clear(), "clear")
			}
		default:
			testproc.Fatalf("unknown command %q", cmd)
		}
	}
	testproc.Check(e.Close(), "close")
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

func startPeer(t *testing.T, e *Event) *testproc.Child {
	cmd := testproc.Command(t, "peer")
	require.NoError(t, e.Share(cmd, "e"))
	return testproc.StartLines(t, cmd)
}

func do(t *testing.T, c *testproc.Child, command string) string {
	t.Helper()
	_, err := fmt.Fprintln(c.Stdin, command)
	require.NoError(t, err)
	return c.Line(t)
}

// 5 processes Wait, the parent Sets, all wake; Clear then Wait blocks
// again; IsSet in another process sees Set.
func TestSetWakesEveryProcess(t *testing.T) {
	testproc.CheckFDs(t)
	e, err := New()
	require.NoError(t, err)
	defer e.Close()
	var peers []*testproc.Child
	for range 5 {
		p := startPeer(t, e)
		assert.Equal(t, "false", do(t, p, "isset"))
		peers = append(peers, p)
	}
	for round := range 3 {
		for _, p := range peers {
			require.Equal(t, "waiting", do(t, p, "wait 30000"))
		}
		// The waiters are about to wait or waiting: either way each must
		// wake on this Set.
		set := testproc.Monotonic()
		require.NoError(t, e.Set())
		var worst time.Duration
		for _, p := range peers {
			var at int64
			_, err := fmt.Sscanf(p.Line(t), "woke %d", &at)
			require.NoError(t, err)
			worst = max(worst, time.Duration(at-set))
		}
		t.Logf("round %d: the last of 5 processes woke %v after Set", round, worst)
		// The issue asks for 100 ms; a loaded test machine can stall a
		// process longer, so the test holds a looser bound and the
		// benchmark reports the latency.
		assert.Less(t, worst, 500*time.Millisecond, "every waiter woke soon after Set")
		for _, p := range peers {
			assert.Equal(t, "true", do(t, p, "isset"), "IsSet in another process sees Set")
		}
		assert.True(t, e.IsSet())
		require.NoError(t, e.Clear())
		assert.False(t, e.IsSet())
		p := peers[round]
		require.Equal(t, "waiting", do(t, p, "wait 50"))
		assert.Equal(t, "DeadlineExceeded", p.Line(t), "after Clear, Wait blocks again")
		assert.Equal(t, "false", do(t, p, "isset"))
	}
	// Set in a child wakes the parent.
	got := make(chan error, 1)
	go func() { got <- e.Wait(context.Background()) }()
	assert.Equal(t, "ok", do(t, peers[0], "set"))
	require.NoError(t, <-got)
	require.NoError(t, e.Wait(context.Background()), "returns at once when set")
}

// A Set followed at once by a Clear still wakes a waiter (as in Python).
func TestSetThenClearWakes(t *testing.T) {
	testproc.CheckFDs(t)
	e, err := New()
	require.NoError(t, err)
	defer e.Close()
	got := make(chan error, 1)
	go func() { got <- e.Wait(context.Background()) }()
	require.Never(t, func() bool { return len(got) > 0 }, 20*time.Millisecond, 2*time.Millisecond)
	require.NoError(t, e.Set())
	require.NoError(t, e.Clear())
	require.NoError(t, <-got)
}

func TestCloseWakesWait(t *testing.T) {
	testproc.CheckFDs(t)
	e, err := New()
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.ErrorIs(t, e.Wait(context.Background()), ErrClosed) })
	}
	require.NoError(t, e.Close()) // before or during their Wait: ErrClosed either way
	wg.Wait()
	assert.ErrorIs(t, e.Set(), ErrClosed)
	assert.ErrorIs(t, e.Clear(), ErrClosed)
	assert.False(t, e.IsSet())
	assert.ErrorIs(t, e.Share(exec.Command("true"), "e"), ErrClosed)
	assert.NoError(t, e.Close())
}

func TestWaitCtx(t *testing.T) {
	testproc.CheckFDs(t)
	e, err := New()
	require.NoError(t, err)
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, e.Wait(ctx), context.Canceled)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, e.Wait(ctx), context.DeadlineExceeded)
	assert.False(t, e.IsSet(), "unchanged")
}

// A process killed at any moment of its Sets and Clears leaves a working
// Event: no lock held, the flag readable, Set still waking waiters.
func TestKilledWhileSetting(t *testing.T) {
	testproc.CheckFDs(t)
	e, err := New()
	require.NoError(t, err)
	defer e.Close()
	for round := range 5 {
		p := startPeer(t, e)
		require.Equal(t, "spinning", do(t, p, "spin"))
		time.Sleep(time.Duration(round) * time.Millisecond)
		require.NoError(t, p.Cmd.Process.Kill())
		p.Cmd.Wait()
		require.NoError(t, e.Clear())
		assert.False(t, e.IsSet())
		got := make(chan error, 1)
		go func() { got <- e.Wait(context.Background()) }()
		require.NoError(t, e.Set())
		require.NoError(t, <-got)
		assert.True(t, e.IsSet())
	}
}
