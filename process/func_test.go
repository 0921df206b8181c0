package process

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

type config struct {
	Name   string
	Tags   []string
	Limits map[string][]int
	Inner  struct{ Depth int }
}

type summary struct {
	Pid    int
	Name   string
	Tags   int
	Sums   map[string]int
	Depth  int
	Echoed config
}

var (
	// summarize runs in a child: it returns its pid and what it made of
	// the argument, and the argument itself.
	summarize = RegisterFunc("summarize", func(ctx context.Context, c config) (summary, error) {
		s := summary{Pid: os.Getpid(), Name: strings.ToUpper(c.Name), Tags: len(c.Tags), Sums: map[string]int{}, Depth: c.Inner.Depth, Echoed: c}
		for k, v := range c.Limits {
			s.Sums[k] += 0
			for _, x := range v {
				s.Sums[k] += x
			}
		}
		return s, nil
	})
	length = RegisterFunc("length", func(ctx context.Context, s string) (int, error) {
		if s == "fail" {
			return 0, errors.New("no length for you")
		}
		return len(s), nil
	})
	anything = RegisterFunc("anything", func(ctx context.Context, v any) (any, error) { return v, nil })
)

func TestTypedRoundTrip(t *testing.T) {
	testproc.CheckFDs(t)
	in := config{
		Name:   "resize",
		Tags:   []string{"a", "b", "c"},
		Limits: map[string][]int{"x": {1, 2, 3}, "y": {}, "z": {-4}},
	}
	in.Inner.Depth = 7
	cmd := summarize.Command(in)
	reap(t, cmd.Cmd)
	require.NoError(t, cmd.Start(context.Background()))
	got, err := cmd.Wait()
	require.NoError(t, err)
	assert.Equal(t, cmd.Pid(), got.Pid, "it ran in the child")
	assert.NotEqual(t, os.Getpid(), got.Pid)
	assert.Equal(t, summary{Pid: got.Pid, Name: "RESIZE", Tags: 3, Sums: map[string]int{"x": 6, "y": 0, "z": -4}, Depth: 7, Echoed: in}, got)
	again, err := cmd.Wait()
	require.NoError(t, err)
	assert.Equal(t, got, again, "Wait again returns the same result")
}

func TestTypedLargeArgument(t *testing.T) {
	testproc.CheckFDs(t)
	s := strings.Repeat("x", 4<<20) // more than a socket buffer holds
	n, err := length.Command(s).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, len(s), n)
}

func TestTypedError(t *testing.T) {
	testproc.CheckFDs(t)
	n, err := length.Command("fail").Run(context.Background())
	var perr *Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, "no length for you", perr.Msg)
	assert.Zero(t, n)
}

func TestTypedUnencodable(t *testing.T) {
	testproc.CheckFDs(t)
	cmd := anything.Command(make(chan int))
	err := cmd.Start(context.Background())
	require.ErrorIs(t, err, ErrEncode, "fails at Start, in the caller")
	assert.Zero(t, cmd.Pid(), "no child was started")
	assert.Nil(t, cmd.Done())
	require.ErrorIs(t, cmd.Start(context.Background()), ErrStarted, "a Cmd starts once")
	_, err = cmd.Wait()
	require.ErrorIs(t, err, ErrNotStarted)

	out, err := anything.Command(map[string]any{"k": []any{int8(1), "two"}}).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"k": []any{int8(1), "two"}}, out)
}

func TestTypedNeedsItsFunc(t *testing.T) {
	require.ErrorIs(t, Command("length").Start(context.Background()), ErrTyped)
	assert.Equal(t, "length", length.Name())
	assert.PanicsWithValue(t, "process: RegisterFunc length: the name is registered already", func() {
		RegisterFunc("length", func(ctx context.Context, s string) (int, error) { return 0, nil })
	})
	assert.Panics(t, func() { Register("summarize", func(ctx context.Context) error { return nil }) })
}

func TestTypedStopped(t *testing.T) {
	testproc.CheckFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	n, err := blockTyped.Command(1).Run(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, n)
}

var blockTyped = RegisterFunc("block-typed", func(ctx context.Context, x int) (int, error) {
	<-ctx.Done()
	return x, ctx.Err()
})
