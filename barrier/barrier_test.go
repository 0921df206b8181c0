package barrier

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
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
	testproc.Register("rounds", helperRounds)
	testproc.Register("peer", helperPeer)
}

// helperRounds waits at the barrier args[0] times, printing for each round
// "round index arrived released".
func helperRounds() {
	b, err := Inherit("b")
	testproc.Check(err, "inherit")
	n, _ := strconv.Atoi(testproc.Args()[0])
	w := bufio.NewWriter(os.Stdout)
	for k := range n {
		arrived := testproc.Monotonic()
		i, err := b.Wait(context.Background())
		released := testproc.Monotonic()
		testproc.Check(err, "wait")
		fmt.Fprintf(w, "%d %d %d %d\n", k, i, arrived, released)
	}
	testproc.Check(w.Flush(), "flush")
	testproc.Check(b.Close(), "close")
}

// Barrier(4), 4 processes, 50 rounds: nobody leaves round k before all have
// arrived in it, and the indices of each round are 0..3.
func TestRounds(t *testing.T) {
	testproc.CheckFDs(t)
	const parties, rounds = 4, 50
	b, err := New(parties)
	require.NoError(t, err)
	defer b.Close()
	var children []*testproc.Child
	for range parties {
		cmd := testproc.Command(t, "rounds", strconv.Itoa(rounds))
		require.NoError(t, b.Share(cmd, "b"))
		children = append(children, testproc.StartLines(t, cmd))
	}
	idx := make([][]int, rounds)
	lastArrival := make([]int64, rounds)
	firstRelease := make([]int64, rounds)
	for k := range firstRelease {
		firstRelease[k] = 1 << 62
	}
	for _, c := range children {
		lines := c.Wait(t)
		require.Len(t, lines, rounds)
		for _, l := range lines {
			var k, i int
			var arrived, released int64
			_, err := fmt.Sscanf(l, "%d %d %d %d", &k, &i, &arrived, &released)
			require.NoError(t, err)
			idx[k] = append(idx[k], i)
			lastArrival[k] = max(lastArrival[k], arrived)
			firstRelease[k] = min(firstRelease[k], released)
		}
	}
	for k := range rounds {
		slices.Sort(idx[k])
		assert.Equal(t, []int{0, 1, 2, 3}, idx[k], "round %d: the indices are a permutation of 0..3", k)
		assert.LessOrEqual(t, lastArrival[k], firstRelease[k], "round %d: nobody left before the last arrived", k)
		if k > 0 {
			assert.LessOrEqual(t, firstRelease[k-1], lastArrival[k])
		}
	}
	n, err := b.Waiting()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// helperPeer inherits "b" and obeys one command per line of stdin: "wait
// ms" answers "waiting" and then the result of Wait.
func helperPeer() {
	b, err := Inherit("b")
	testproc.Check(err, "inherit")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "wait":
			ms, _ := strconv.Atoi(arg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			fmt.Println("waiting")
			i, err := b.Wait(ctx)
			cancel()
			if err != nil {
				fmt.Println(errName(err))
			} else {
				fmt.Println("index", i)
			}
		case "abort":
			fmt.Println(errName(b.Abort()))
		default:
			testproc.Fatalf("unknown command %q", cmd)
		}
	}
	testproc.Check(b.Close(), "close")
}

func errName(err error) string {
	var names []string
	for _, e := range []struct {
		err  error
		name string
	}{{ErrBroken, "ErrBroken"}, {context.DeadlineExceeded, "DeadlineExceeded"}, {ErrClosed, "ErrClosed"}} {
		if errors.Is(err, e.err) {
			names = append(names, e.name)
		}
	}
	if err == nil {
		return "ok"
	}
	if names == nil {
		return err.Error()
	}
	return strings.Join(names, "+")
}

func startPeer(t *testing.T, b *Barrier) *testproc.Child {
	cmd := testproc.Command(t, "peer")
	require.NoError(t, b.Share(cmd, "b"))
	return testproc.StartLines(t, cmd)
}

func do(t *testing.T, c *testproc.Child, command string) string {
	t.Helper()
	_, err := fmt.Fprintln(c.Stdin, command)
	require.NoError(t, err)
	return c.Line(t)
}

// waiting waits until n parties wait in the current round.
func waiting(t *testing.T, b *Barrier, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		w, err := b.Waiting()
		return err == nil && w == n
	}, 30*time.Second, time.Millisecond, "%d parties waiting", n)
}

// A party killed in the middle of a round breaks the barrier for the others,
// arrived or not; none hangs.
func TestPartyKilled(t *testing.T) {
	for _, arrived := range []bool{false, true} {
		t.Run(fmt.Sprintf("arrived=%v", arrived), func(t *testing.T) {
			testproc.CheckFDs(t)
			b, err := New(4)
			require.NoError(t, err)
			defer b.Close()
			var peers []*testproc.Child
			for range 4 {
				peers = append(peers, startPeer(t, b))
			}
			// A first full round, so that every party has waited once.
			for _, p := range peers {
				require.Equal(t, "waiting", do(t, p, "wait 30000"))
			}
			for _, p := range peers {
				assert.Contains(t, p.Line(t), "index")
			}
			n := 2
			if arrived {
				n = 3
			}
			for _, p := range peers[:n] {
				require.Equal(t, "waiting", do(t, p, "wait 30000"))
			}
			waiting(t, b, n)
			victim := peers[3]
			if arrived {
				victim = peers[2]
			}
			require.NoError(t, victim.Cmd.Process.Kill())
			killed := time.Now()
			victim.Cmd.Wait()
			for _, p := range peers[:n] {
				if p == victim {
					continue
				}
				assert.Equal(t, "ErrBroken", p.Line(t))
			}
			assert.Less(t, time.Since(killed), 5*time.Second)
			broken, err := b.Broken()
			require.NoError(t, err)
			assert.True(t, broken)
			_, err = b.Wait(context.Background())
			assert.ErrorIs(t, err, ErrBroken, "later Waits too")

			// Reset: usable again by the living.
			require.NoError(t, b.Reset())
			var living []*testproc.Child
			for _, p := range peers {
				if p != victim {
					living = append(living, p)
				}
			}
			for _, p := range living {
				require.Equal(t, "waiting", do(t, p, "wait 30000"))
			}
			i, err := b.Wait(context.Background())
			require.NoError(t, err, "three living children and this process make four")
			for _, p := range living {
				assert.Contains(t, p.Line(t), "index")
			}
			assert.Contains(t, []int{0, 1, 2, 3}, i)
		})
	}
}

// A Wait whose ctx ends breaks the barrier for every party.
func TestCtxBreaks(t *testing.T) {
	testproc.CheckFDs(t)
	b, err := New(3)
	require.NoError(t, err)
	defer b.Close()
	p := startPeer(t, b)
	require.Equal(t, "waiting", do(t, p, "wait 30000"))
	waiting(t, b, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = b.Wait(ctx)
	assert.ErrorIs(t, err, ErrBroken)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "ErrBroken", p.Line(t))
	require.Equal(t, "waiting", do(t, p, "wait 30000"))
	assert.Equal(t, "ErrBroken", p.Line(t), "until Reset")
}

// Abort in another process breaks the barrier; Reset mends it.
func TestAbortAndReset(t *testing.T) {
	testproc.CheckFDs(t)
	b, err := New(2)
	require.NoError(t, err)
	defer b.Close()
	p := startPeer(t, b)
	got := make(chan error, 1)
	go func() { _, err := b.Wait(context.Background()); got <- err }()
	waiting(t, b, 1)
	assert.Equal(t, "ok", do(t, p, "abort"))
	assert.ErrorIs(t, <-got, ErrBroken)
	require.NoError(t, b.Reset())
	broken, err := b.Broken()
	require.NoError(t, err)
	assert.False(t, broken)

	// A Reset while a party waits gives it ErrBroken.
	go func() { _, err := b.Wait(context.Background()); got <- err }()
	waiting(t, b, 1)
	require.NoError(t, b.Reset())
	assert.ErrorIs(t, <-got, ErrBroken)
	require.Equal(t, "waiting", do(t, p, "wait 30000"))
	waiting(t, b, 1)
	i, err := b.Wait(context.Background())
	require.NoError(t, err, "a fresh round after the Reset")
	assert.Equal(t, "index 0", p.Line(t))
	assert.Equal(t, 1, i)
}

// Goroutines of one process are parties too.
func TestGoroutines(t *testing.T) {
	testproc.CheckFDs(t)
	b, err := New(3)
	require.NoError(t, err)
	defer b.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make([][]int, 20)
	for range 3 {
		wg.Go(func() {
			for k := range 20 {
				i, err := b.Wait(context.Background())
				assert.NoError(t, err)
				mu.Lock()
				seen[k] = append(seen[k], i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for k := range seen {
		slices.Sort(seen[k])
		assert.Equal(t, []int{0, 1, 2}, seen[k])
	}
	assert.Equal(t, 3, b.Parties())
}

func TestClose(t *testing.T) {
	testproc.CheckFDs(t)
	b, err := New(2)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() { _, err := b.Wait(context.Background()); got <- err }()
	waiting(t, b, 1)
	require.NoError(t, b.Close())
	assert.ErrorIs(t, <-got, ErrClosed)
	_, err = b.Wait(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, b.Abort(), ErrClosed)
	assert.ErrorIs(t, b.Share(exec.Command("true"), "b"), ErrClosed)
	assert.NoError(t, b.Close())
	_, err = New(0)
	assert.Error(t, err)
}
