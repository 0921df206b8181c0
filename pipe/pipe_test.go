package pipe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func TestDuplex(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	for _, c := range []*conn.Conn{a, b} {
		assert.True(t, c.Readable(), "each end of a Duplex can receive")
		assert.True(t, c.Writable(), "each end of a Duplex can send")
	}
	require.NoError(t, a.Send("to b"))
	require.NoError(t, b.Send("to a"))
	var s string
	require.NoError(t, b.Recv(&s))
	assert.Equal(t, "to b", s)
	require.NoError(t, a.Recv(&s))
	assert.Equal(t, "to a", s)
}

// within fails the test if f does not return within a few seconds.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s hangs", what)
		return nil
	}
}

func TestSimplexDirections(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.True(t, r.Readable())
	assert.False(t, r.Writable(), "the read end cannot send")
	assert.True(t, w.Writable())
	assert.False(t, w.Readable(), "the write end cannot receive")

	ctx := context.Background()
	readOnly := map[string]func() error{
		"Send":             func() error { return r.Send(1) },
		"SendContext":      func() error { return r.SendContext(ctx, 1) },
		"SendBytes":        func() error { return r.SendBytes([]byte("x")) },
		"SendBytesContext": func() error { return r.SendBytesContext(ctx, nil) },
	}
	for name, f := range readOnly {
		assert.ErrorIs(t, within(t, name, f), conn.ErrReadOnly, "%s on the read end", name)
	}
	var v any
	writeOnly := map[string]func() error{
		"Recv":             func() error { return w.Recv(&v) },
		"RecvContext":      func() error { return w.RecvContext(ctx, &v) },
		"RecvBytes":        func() error { _, err := w.RecvBytes(); return err },
		"RecvBytesContext": func() error { _, err := w.RecvBytesContext(ctx); return err },
		"Poll(0)":          func() error { _, err := w.Poll(0); return err },
		"Poll(1h)":         func() error { _, err := w.Poll(time.Hour); return err },
		"Poll(-1)":         func() error { _, err := w.Poll(-1); return err },
		"PollContext":      func() error { _, err := w.PollContext(ctx); return err },
	}
	for name, f := range writeOnly {
		assert.ErrorIs(t, within(t, name, f), conn.ErrWriteOnly, "%s on the write end", name)
	}

	require.NoError(t, w.Send("one way"), "the write end sends")
	var s string
	require.NoError(t, r.Recv(&s), "the read end receives")
	assert.Equal(t, "one way", s)
}

// TestDescriptors looks at the files Share hands to exec: every end is
// nonblocking and close-on-exec from creation, of the promised kind.
func TestDescriptors(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	want := map[string]fd.Info{
		"a": {Readable: true, Writable: true, Socket: true, SockType: unix.SOCK_STREAM, Domain: unix.AF_UNIX},
		"b": {Readable: true, Writable: true, Socket: true, SockType: unix.SOCK_STREAM, Domain: unix.AF_UNIX},
		"r": {Readable: true},
		"w": {Writable: true},
	}
	cmd := exec.Command("true")
	for name, c := range map[string]*conn.Conn{"a": a, "b": b, "r": r, "w": w} {
		n := len(cmd.ExtraFiles)
		require.NoError(t, c.Share(cmd, name))
		f := cmd.ExtraFiles[n]
		info, err := fd.FileStat(f)
		require.NoError(t, err)
		assert.Equal(t, want[name], info, "end %s", name)
		rc, err := f.SyscallConn()
		require.NoError(t, err)
		rc.Control(func(d uintptr) {
			fl, err := fd.GetFlags(int(d))
			require.NoError(t, err)
			assert.True(t, fd.Nonblocking(fl), "end %s is nonblocking", name)
			fdfl, err := unix.FcntlInt(d, unix.F_GETFD, 0)
			require.NoError(t, err)
			assert.NotZero(t, fdfl&unix.FD_CLOEXEC, "end %s is close-on-exec", name)
		})
	}
}

func TestNoLeak(t *testing.T) {
	testproc.CheckFDs(t)
	for range 100 {
		a, b, err := pipe.Duplex()
		require.NoError(t, err)
		r, w, err := pipe.Simplex()
		require.NoError(t, err)
		for _, c := range []*conn.Conn{a, b, r, w} {
			require.NoError(t, c.Close())
		}
	}
}

func init() {
	// pipe-producer inherits the write end "w" and sends args[0] messages
	// of 100 bytes tagged with args[1].
	testproc.Register("pipe-producer", func() {
		w, err := conn.Inherit("w")
		testproc.Check(err, "Inherit")
		n, _ := strconv.Atoi(testproc.Args()[0])
		for i := range n {
			testproc.Check(w.Send(message(testproc.Args()[1], i)), "Send")
		}
	})
	// pipe-consumer inherits the read end "r", receives until EOF and
	// checks that it got args[0] messages in order.
	testproc.Register("pipe-consumer", func() {
		r, err := conn.Inherit("r")
		testproc.Check(err, "Inherit")
		n, _ := strconv.Atoi(testproc.Args()[0])
		for i := 0; ; i++ {
			var m msg
			err := r.Recv(&m)
			if errors.Is(err, io.EOF) {
				if i != n {
					testproc.Fatalf("got %d messages, want %d", i, n)
				}
				return
			}
			testproc.Check(err, "Recv")
			if want := message("parent", i); m.From != want.From || m.Seq != want.Seq || !bytes.Equal(m.Body, want.Body) {
				testproc.Fatalf("message %d: %+v", i, m)
			}
		}
	})
}

type msg struct {
	From string
	Seq  int
	Body []byte
}

func message(from string, i int) msg {
	return msg{from, i, bytes.Repeat([]byte{byte(i)}, 100)}
}

// Several processes writing small frames to one pipe: each frame is one
// write of less than PIPE_BUF bytes, so none interleave.
func TestSimplexFromChildren(t *testing.T) {
	testproc.CheckFDs(t)
	const children, each = 3, 300
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	var cmds []*exec.Cmd
	for c := range children {
		cmd := testproc.Command(t, "pipe-producer", strconv.Itoa(each), fmt.Sprint("child", c))
		require.NoError(t, w.Share(cmd, "w"))
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	require.NoError(t, w.Close(), "our copy of the write end: EOF comes when every child has exited")
	next := map[string]int{}
	for {
		var m msg
		err := r.Recv(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		want := message(m.From, next[m.From])
		require.Equal(t, want, m, "each child's messages arrive whole and in order")
		next[m.From]++
	}
	for c := range children {
		assert.Equal(t, each, next[fmt.Sprint("child", c)], "messages from child %d", c)
	}
	for _, cmd := range cmds {
		require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second))
	}
}

func TestSimplexToChild(t *testing.T) {
	testproc.CheckFDs(t)
	const n = 500
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer w.Close()
	cmd := testproc.Command(t, "pipe-consumer", strconv.Itoa(n))
	require.NoError(t, r.Share(cmd, "r"))
	require.NoError(t, cmd.Start())
	require.NoError(t, r.Close())
	for i := range n {
		require.NoError(t, w.Send(message("parent", i)))
	}
	require.NoError(t, w.Close(), "EOF for the child")
	require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second), "the child got every message (see its stderr)")
}

func TestSendToDeadChild(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer w.Close()
	cmd := testproc.Command(t, "pipe-consumer", "0")
	require.NoError(t, r.Share(cmd, "r"))
	require.NoError(t, cmd.Start())
	require.NoError(t, r.Close())
	require.NoError(t, cmd.Process.Kill())
	testproc.WaitTimeout(cmd, 10*time.Second)
	err = w.Send("nobody reads this")
	assert.ErrorIs(t, err, conn.ErrPeerClosed, "Send to a pipe whose only reader died")
}
