package semaphore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
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
	testproc.Register("inside", helperInside)
	testproc.Register("peer", helperPeer)
}

// helperInside acquires, records its time inside, releases, args[0] times.
func helperInside() {
	s, err := Inherit("s")
	testproc.Check(err, "inherit")
	n, _ := strconv.Atoi(testproc.Args()[0])
	w := bufio.NewWriter(os.Stdout)
	for range n {
		testproc.Check(s.Acquire(context.Background()), "acquire")
		enter := testproc.Monotonic()
		time.Sleep(time.Millisecond)
		leave := testproc.Monotonic()
		testproc.Check(s.Release(), "release")
		fmt.Fprintf(w, "%d %d\n", enter, leave)
	}
	testproc.Check(w.Flush(), "flush")
	testproc.Check(s.Close(), "close")
}

// Semaphore(3) held by 8 processes: never more than 3 inside at once.
func TestAtMostNInside(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := New(3)
	require.NoError(t, err)
	defer s.Close()
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	var children []*testproc.Child
	for range 8 {
		cmd := testproc.Command(t, "inside", "30")
		require.NoError(t, s.Share(cmd, "s"))
		children = append(children, testproc.StartLines(t, cmd))
	}
	for _, c := range children {
		lines := c.Wait(t)
		require.Len(t, lines, 30)
		for _, l := range lines {
			var enter, leave int64
			_, err := fmt.Sscanf(l, "%d %d", &enter, &leave)
			require.NoError(t, err)
			evs = append(evs, ev{enter, +1}, ev{leave, -1})
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta // a leave before an enter at the same instant
	})
	inside, most := 0, 0
	for _, e := range evs {
		inside += e.delta
		most = max(most, inside)
	}
	assert.LessOrEqual(t, most, 3, "never more than 3 inside")
	assert.Equal(t, 3, most, "and 3 at once at some point, with 8 processes contending")
	v, err := s.Value(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, v)
}

// helperPeer inherits "s" and obeys one command per line of stdin,
// answering one line.
func helperPeer() {
	s, err := Inherit("s")
	testproc.Check(err, "inherit")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		var reply string
		switch cmd {
		case "acquire":
			ms, _ := strconv.Atoi(arg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			reply = errName(s.Acquire(ctx))
			cancel()
		case "try":
			reply = strconv.FormatBool(s.TryAcquire())
		case "release":
			reply = errName(s.Release())
		default:
			testproc.Fatalf("unknown command %q", cmd)
		}
		fmt.Println(reply)
	}
	testproc.Check(s.Close(), "close")
}

func errName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrTooManyReleases):
		return "ErrTooManyReleases"
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	}
	return err.Error()
}

func startPeer(t *testing.T, s *Semaphore) *testproc.Child {
	cmd := testproc.Command(t, "peer")
	require.NoError(t, s.Share(cmd, "s"))
	return testproc.StartLines(t, cmd)
}

func do(t *testing.T, c *testproc.Child, command string) string {
	t.Helper()
	_, err := fmt.Fprintln(c.Stdin, command)
	require.NoError(t, err)
	return c.Line(t)
}

func value(t *testing.T, s *Semaphore) int {
	t.Helper()
	v, err := s.Value(context.Background())
	require.NoError(t, err)
	return v
}

// A bounded semaphore refuses to go past n, in whichever process releases.
func TestBoundedRelease(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := NewBounded(2)
	require.NoError(t, err)
	defer s.Close()
	p := startPeer(t, s)
	assert.Equal(t, "ErrTooManyReleases", do(t, p, "release"), "in another process")
	assert.ErrorIs(t, s.Release(), ErrTooManyReleases, "in this one")
	assert.Equal(t, 2, value(t, s), "unchanged")

	// A token taken in the child may be given back by the parent (as in
	// Python); the child's own Release is then the one too many.
	assert.Equal(t, "ok", do(t, p, "acquire 1000"))
	assert.Equal(t, 1, value(t, s))
	require.NoError(t, s.Release())
	assert.Equal(t, 2, value(t, s))
	assert.Equal(t, "ErrTooManyReleases", do(t, p, "release"))

	require.True(t, s.TryAcquire())
	require.True(t, s.TryAcquire())
	assert.False(t, s.TryAcquire())
	assert.Equal(t, "false", do(t, p, "try"))
	require.NoError(t, s.Release())
	require.NoError(t, s.Release())
	assert.ErrorIs(t, s.Release(), ErrTooManyReleases)

	z, err := NewBounded(0)
	require.NoError(t, err)
	defer z.Close()
	assert.ErrorIs(t, z.Release(), ErrTooManyReleases, "bounded at zero")
}

// An unbounded semaphore signals between processes: one releases, the
// other acquires (Python's Semaphore(0)).
func TestSignalAcrossProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := New(0)
	require.NoError(t, err)
	defer s.Close()
	p := startPeer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	assert.ErrorIs(t, s.Acquire(ctx), context.DeadlineExceeded)
	cancel()
	assert.Equal(t, 0, value(t, s), "a failed Acquire takes nothing")
	got := make(chan error, 1)
	go func() { got <- s.Acquire(context.Background()) }()
	assert.Equal(t, "ok", do(t, p, "release"))
	require.NoError(t, <-got)
	assert.Equal(t, "ok", do(t, p, "release"))
	assert.Equal(t, "ok", do(t, p, "release"))
	assert.Equal(t, 2, value(t, s), "past the initial count")
}

// A process killed while it holds tokens gives them back: at once for a
// new call, within a second for an Acquire already waiting.
func TestHolderKilled(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := New(2)
	require.NoError(t, err)
	defer s.Close()
	p := startPeer(t, s)
	require.Equal(t, "ok", do(t, p, "acquire 1000"))
	require.Equal(t, "ok", do(t, p, "acquire 1000"))
	assert.False(t, s.TryAcquire())
	got := make(chan error, 1)
	go func() { got <- s.Acquire(context.Background()) }()
	require.Never(t, func() bool { return len(got) > 0 }, 50*time.Millisecond, 5*time.Millisecond)
	require.NoError(t, p.Cmd.Process.Kill())
	killed := time.Now()
	p.Cmd.Wait()
	require.NoError(t, <-got)
	assert.Less(t, time.Since(killed), time.Second)
	assert.True(t, s.TryAcquire(), "the second dead token too")
	assert.False(t, s.TryAcquire())
	require.NoError(t, s.Release())
	require.NoError(t, s.Release())
	assert.Equal(t, 2, value(t, s))
}

func TestCloseWakesAcquire(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := New(0)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() { got <- s.Acquire(context.Background()) }()
	require.Never(t, func() bool { return len(got) > 0 }, 20*time.Millisecond, 2*time.Millisecond)
	require.NoError(t, s.Close())
	assert.ErrorIs(t, <-got, ErrClosed)
	assert.ErrorIs(t, s.Acquire(context.Background()), ErrClosed)
	assert.False(t, s.TryAcquire())
	assert.ErrorIs(t, s.Release(), ErrClosed)
	assert.ErrorIs(t, s.Share(exec.Command("true"), "s"), ErrClosed)
	assert.NoError(t, s.Close(), "idempotent")
}

func TestGoroutines(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := NewBounded(2)
	require.NoError(t, err)
	defer s.Close()
	var inside, most int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range 50 {
				require.NoError(t, s.Acquire(context.Background()))
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				require.NoError(t, s.Release())
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, most, 2)
	assert.Equal(t, 2, value(t, s))
}

func TestNewNegative(t *testing.T) {
	_, err := New(-1)
	assert.Error(t, err)
	_, err = NewBounded(-1)
	assert.Error(t, err)
}
