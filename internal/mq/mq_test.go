package mq

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

type item struct {
	P int    `msgpack:"p"` // producer
	I int    `msgpack:"i"` // sequence number
	S string `msgpack:"s"`
}

const kind = "mq-test"

// inherit opens, in a helper, the queue shared under name.
func inherit[T any](name string, h Hooks) *Queue[T] {
	obj, err := share.Inherit(name, kind, func(files []*os.File) (any, error) { return FromFiles[T](files, h) })
	testproc.Check(err, "inherit "+name)
	return obj.(*Queue[T])
}

func init() {
	// echo: get items from "in" and put them to "out" until an item with
	// I < 0, which is forwarded too.
	testproc.Register("echo", func() {
		in := inherit[item]("in", Hooks{})
		out := inherit[item]("out", Hooks{})
		ctx := context.Background()
		for {
			v, err := in.Get(ctx)
			testproc.Check(err, "get")
			testproc.Check(out.Put(ctx, v), "put")
			if v.I < 0 {
				break
			}
		}
		testproc.Check(out.Close(), "close out")
		testproc.Check(in.Close(), "close in")
	})
}

func TestSmoke(t *testing.T) {
	testproc.CheckFDs(t)
	in, err := New[item](0, Hooks{})
	require.NoError(t, err)
	out, err := New[item](0, Hooks{})
	require.NoError(t, err)
	defer in.Close()
	defer out.Close()
	const consumers = 2
	var cmds []*exec.Cmd
	for c := 0; c < consumers; c++ {
		cmd := testproc.Command(t, "echo")
		require.NoError(t, share.Add(cmd, "in", kind, in.Files()...))
		require.NoError(t, share.Add(cmd, "out", kind, out.Files()...))
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 200000
	start := time.Now()
	for i := 0; i < n; i++ {
		require.NoError(t, in.Put(ctx, item{I: i, S: "x" + strconv.Itoa(i)}))
	}
	for c := 0; c < consumers; c++ {
		require.NoError(t, in.Put(ctx, item{I: -1}))
	}
	seen := make([]bool, n)
	for got, ends := 0, 0; got < n || ends < consumers; {
		v, err := out.Get(ctx)
		require.NoError(t, err)
		if v.I < 0 {
			ends++
			continue
		}
		require.False(t, seen[v.I], "item %d twice", v.I)
		seen[v.I] = true
		got++
	}
	t.Logf("%d items through two queues and %d processes in %v (%.0f/s)", n, consumers, time.Since(start), n/time.Since(start).Seconds())
	for _, cmd := range cmds {
		require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second))
	}
	assert.True(t, errors.Is(nil, nil))
}
