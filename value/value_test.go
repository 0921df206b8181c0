package value

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
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func init() {
	testproc.Register("adder", helperAdder)
	testproc.Register("negate", helperNegate)
	testproc.Register("spin", helperSpin)
	testproc.Register("wrongtype", helperWrongType)
	testproc.Register("updater", helperUpdater)
}

// helperAdder adds 1 to the shared int, args[1] times with a 10 ms pause
// (Python's seed program), with Update or (args[0] == "loadstore") with a
// Load then a Store.
func helperAdder() {
	args := testproc.Args()
	v, err := Inherit[int]("n")
	testproc.Check(err, "inherit")
	n, _ := strconv.Atoi(args[1])
	ctx := context.Background()
	for range n {
		time.Sleep(10 * time.Millisecond)
		if args[0] == "update" {
			_, err = v.Update(ctx, func(x int) int { return x + 1 })
			testproc.Check(err, "update")
			continue
		}
		x, err := v.Load(ctx)
		testproc.Check(err, "load")
		time.Sleep(time.Millisecond) // as Python's `v.value += 1` without the lock: read, then write
		testproc.Check(v.Store(ctx, x+1), "store")
	}
	testproc.Check(v.Close(), "close")
}

func runAdders(t *testing.T, how string) int {
	t.Helper()
	v, err := New(0)
	require.NoError(t, err)
	defer v.Close()
	var cmds []*exec.Cmd
	for range 10 {
		cmd := testproc.Command(t, "adder", how, "20")
		require.NoError(t, v.Share(cmd, "n"))
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		require.NoError(t, testproc.WaitTimeout(cmd, 60*time.Second))
	}
	n, err := v.Load(context.Background())
	require.NoError(t, err)
	return n
}

// The seed program: 10 processes add 1 twenty times each. With Update no
// update is lost, run after run.
func TestUpdateLosesNothing(t *testing.T) {
	testproc.CheckFDs(t)
	for range 5 {
		assert.Equal(t, 200, runAdders(t, "update"))
	}
}

// Load then Store is two steps: updates are lost, as with Python's
// `v.value += 1` outside get_lock(). Certain enough to assert: ten
// processes overlap constantly, each holding a read value for a
// millisecond.
func TestLoadThenStoreLosesUpdates(t *testing.T) {
	testproc.CheckFDs(t)
	n := runAdders(t, "loadstore")
	assert.Less(t, n, 200)
	assert.Positive(t, n)
}

// helperNegate sets n = 3.1415927 and negates every a[i] (Python's Value
// and Array example).
func helperNegate() {
	ctx := context.Background()
	n, err := Inherit[float64]("n")
	testproc.Check(err, "inherit n")
	a, err := Inherit[[]int32]("a")
	testproc.Check(err, "inherit a")
	testproc.Check(n.Store(ctx, 3.1415927), "store")
	_, err = a.Update(ctx, func(a []int32) []int32 {
		for i := range a {
			a[i] = -a[i]
		}
		return a
	})
	testproc.Check(err, "update")
	testproc.Check(n.Close(), "close")
	testproc.Check(a.Close(), "close")
}

func TestValueAndArrayInChild(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	n, err := New(0.0)
	require.NoError(t, err)
	defer n.Close()
	a, err := New([]int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	require.NoError(t, err)
	defer a.Close()
	cmd := testproc.Command(t, "negate")
	require.NoError(t, n.Share(cmd, "n"))
	require.NoError(t, a.Share(cmd, "a"))
	require.NoError(t, cmd.Run())
	x, err := n.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3.1415927, x)
	arr, err := a.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, -1, -2, -3, -4, -5, -6, -7, -8, -9}, arr)
}

// A Go array is Python's Array of fixed size.
func TestGoArray(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	v, err := New([3]int32{1, 2, 3})
	require.NoError(t, err)
	defer v.Close()
	got, err := v.Update(ctx, func(a [3]int32) [3]int32 { a[1] *= 10; return a })
	require.NoError(t, err)
	assert.Equal(t, [3]int32{1, 20, 3}, got)
	got, err = v.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, [3]int32{1, 20, 3}, got)
}

// helperSpin updates a large array forever: element i of every version
// holds the version number, so a torn write would show mixed numbers.
func helperSpin() {
	v, err := Inherit[[]int64]("a")
	testproc.Check(err, "inherit")
	fmt.Println("ready")
	for {
		_, err := v.Update(context.Background(), func(a []int64) []int64 {
			for i := range a {
				a[i]++
			}
			return a
		})
		testproc.Check(err, "update")
	}
}

// A process killed while it updates, many times at random moments of its
// Update (the array is over 1 MiB, so many kills land in the middle of the
// write), leaves a whole value, old or new, and the others go on at once.
func TestKilledInUpdate(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	const size = 128 << 10 // 9-byte elements: over 1 MiB encoded
	v, err := New(make([]int64, size))
	require.NoError(t, err)
	defer v.Close()
	prev := int64(-1)
	for round := range 5 {
		child := testproc.StartLines(t, func() *exec.Cmd {
			cmd := testproc.Command(t, "spin")
			require.NoError(t, v.Share(cmd, "a"))
			return cmd
		}())
		require.Equal(t, "ready", child.Line(t))
		// Let it update a few times, at a moment that varies per round.
		require.Eventually(t, func() bool {
			a, err := v.Load(ctx)
			return err == nil && a[0] > prev+int64(round%3)
		}, 30*time.Second, time.Millisecond)
		time.Sleep(time.Duration(round) * 3 * time.Millisecond)
		require.NoError(t, child.Cmd.Process.Kill())
		child.Cmd.Wait()

		a, err := v.Load(ctx)
		require.NoError(t, err, "readable after the kill")
		require.Len(t, a, size)
		for i := range a {
			if a[i] != a[0] {
				t.Fatalf("round %d: a torn value: a[0] = %d, a[%d] = %d", round, a[0], i, a[i])
			}
		}
		require.GreaterOrEqual(t, a[0], prev)
		prev = a[0]
		// The killed process's lock is gone: an Update goes through.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := v.Update(tctx, func(a []int64) []int64 {
			for i := range a {
				a[i]++
			}
			return a
		})
		cancel()
		require.NoError(t, err)
		prev = got[0]
	}
}

// helperUpdater holds the value's lock (inside Update) until its stdin
// closes, then adds 1.
func helperUpdater() {
	v, err := Inherit[int]("n")
	testproc.Check(err, "inherit")
	_, err = v.Update(context.Background(), func(x int) int {
		fmt.Println("inside")
		var b [1]byte
		os.Stdin.Read(b[:])
		return x + 1
	})
	testproc.Check(err, "update")
}

// An Update waiting while another process holds the lock returns ctx.Err()
// at its ctx's end and changes nothing; once the holder is killed inside
// its Update, waiters get the lock within a second and the value is the
// old one.
func TestUpdateWaitsCtxAndHolderKilled(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	v, err := New(41)
	require.NoError(t, err)
	defer v.Close()
	cmd := testproc.Command(t, "updater")
	require.NoError(t, v.Share(cmd, "n"))
	child := testproc.StartLines(t, cmd)
	require.Equal(t, "inside", child.Line(t))

	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = v.Update(tctx, func(x int) int { return x + 100 })
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	x, err := v.Load(ctx)
	require.NoError(t, err, "Load does not wait for the lock")
	assert.Equal(t, 41, x)

	done := make(chan error, 1)
	go func() {
		_, err := v.Update(ctx, func(x int) int { return x * 2 })
		done <- err
	}()
	require.NoError(t, cmd.Process.Kill())
	killed := time.Now()
	cmd.Wait()
	require.NoError(t, <-done)
	assert.Less(t, time.Since(killed), time.Second)
	x, err = v.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, 82, x, "the killed Update changed nothing")
}

func helperWrongType() {
	if _, err := Inherit[string]("n"); !errors.Is(err, ErrWrongKind) {
		testproc.Fatalf("Inherit[string] of a Value[int] = %v, want ErrWrongKind", err)
	}
	if _, err := Inherit[int]("nope"); !errors.Is(err, ErrNotInherited) {
		testproc.Fatalf("Inherit(nope) = %v, want ErrNotInherited", err)
	}
	m, err := Inherit[int]("m")
	testproc.Check(err, "inherit m")
	m2, err := Inherit[int]("m")
	testproc.Check(err, "inherit m again")
	if m != m2 {
		testproc.Fatalf("two Inherits of one name gave two Values")
	}
	if _, err := Inherit[int64]("m"); !errors.Is(err, ErrWrongKind) {
		testproc.Fatalf("Inherit[int64] of an inherited Value[int] = %v, want ErrWrongKind", err)
	}
	testproc.Check(m.Close(), "close")
}

func TestInheritWithAnotherType(t *testing.T) {
	testproc.CheckFDs(t)
	n, err := New(1)
	require.NoError(t, err)
	defer n.Close()
	m, err := New(2)
	require.NoError(t, err)
	defer m.Close()
	cmd := testproc.Command(t, "wrongtype")
	require.NoError(t, n.Share(cmd, "n"))
	require.NoError(t, m.Share(cmd, "m"))
	assert.ErrorIs(t, n.Share(cmd, "bad name"), ErrBadName)
	require.NoError(t, cmd.Run())
}

// Values that msgpack cannot encode fail in the caller and change nothing.
func TestUnencodable(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	_, err := New[any](make(chan int))
	require.Error(t, err)
	v, err := New[any](1)
	require.NoError(t, err)
	defer v.Close()
	require.Error(t, v.Store(ctx, func() {}))
	_, err = v.Update(ctx, func(any) any { return make(chan int) })
	require.Error(t, err)
	x, err := v.Load(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, x, "unchanged")
}

func TestGoroutines(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	v, err := New(0)
	require.NoError(t, err)
	defer v.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, err := v.Update(ctx, func(x int) int { return x + 1 })
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	x, err := v.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, 800, x)
}

func TestClose(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := context.Background()
	v, err := New(0)
	require.NoError(t, err)
	require.NoError(t, v.Close())
	require.NoError(t, v.Close(), "idempotent")
	_, err = v.Load(ctx)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, v.Store(ctx, 1), ErrClosed)
	_, err = v.Update(ctx, func(x int) int { return x })
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, v.Share(exec.Command("true"), "n"), ErrClosed)
}

// A Value is shared by inheritance, never inside a message.
func TestNotSendable(t *testing.T) {
	testproc.CheckFDs(t)
	v, err := New(1)
	require.NoError(t, err)
	defer v.Close()
	_, err = msgpack.Marshal(struct{ V *Value[int] }{v})
	assert.ErrorIs(t, err, ErrNotSendable)
}
