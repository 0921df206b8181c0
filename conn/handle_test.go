package conn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/queue"
	"github.com/mproc-go/mproc/simplequeue"
	"github.com/mproc-go/mproc/value"
)

// shareReport is what the share worker says about each object it received.
type shareReport struct {
	Name      string `msgpack:"name"`
	Sum       int    `msgpack:"sum"`
	Err       string `msgpack:"err"`
	WrongKind bool   `msgpack:"wrong_kind"`
}

func init() {
	// conn-share-worker gets its control Conn by inheriting "c" or, given
	// an address, by dialing it (with testKey); then it receives objects
	// with RecvShare until EOF and uses each according to its name's
	// prefix, reporting on the control Conn.
	testproc.Register("conn-share-worker", func() {
		ctx := context.Background()
		var ctl *conn.Conn
		var err error
		if args := testproc.Args(); len(args) > 0 {
			ctl, err = conn.Dial(ctx, "unix", args[0], conn.WithAuthKey(testKey))
		} else {
			ctl, err = conn.Inherit("c")
		}
		testproc.Check(err, "control conn")
		for {
			name, err := ctl.RecvShare(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				testproc.Check(ctl.Send(shareReport{Err: err.Error()}), "report")
				continue
			}
			r := shareReport{Name: name}
			r.Sum, err = useShared(ctx, name)
			if err != nil {
				r.Err = err.Error()
				r.WrongKind = errors.Is(err, conn.ErrWrongKind)
			}
			testproc.Check(ctl.Send(r), "report")
		}
	})
}

// useShared inherits the object received as name and uses it: a queue's
// items are summed up to a -1; a lock is taken and released; a conn
// echoes one message.
func useShared(ctx context.Context, name string) (int, error) {
	sum := func(get func(context.Context) (int, error), done func() error) (int, error) {
		s := 0
		for {
			v, err := get(ctx)
			if err != nil {
				return s, err
			}
			if done != nil {
				if err := done(); err != nil {
					return s, err
				}
			}
			if v == -1 {
				return s, nil
			}
			s += v
		}
	}
	switch kind, _, _ := cut(name); kind {
	case "queue":
		q, err := queue.Inherit[int](name)
		if err != nil {
			return 0, err
		}
		defer q.Close()
		return sum(q.Get, nil)
	case "simplequeue":
		q, err := simplequeue.Inherit[int](name)
		if err != nil {
			return 0, err
		}
		defer q.Close()
		return sum(q.Get, nil)
	case "joinable":
		q, err := joinable.Inherit[int](name)
		if err != nil {
			return 0, err
		}
		defer q.Close()
		return sum(q.Get, q.TaskDone)
	case "lock":
		l, err := lock.Inherit(name)
		if err != nil {
			return 0, err
		}
		defer l.Close()
		if err := l.LockContext(ctx); err != nil {
			return 0, err
		}
		l.Unlock()
		return 1, nil
	case "conn":
		c, err := conn.Inherit(name)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		var v int
		if err := c.Recv(&v); err != nil {
			return 0, err
		}
		return v, c.Send(v * 2)
	case "value":
		v, err := value.Inherit[int](name)
		if err != nil {
			return 0, err
		}
		defer v.Close()
		return v.Update(ctx, func(old int) int { return old + 1 })
	case "wrongtype":
		// A Value[string] asked for as a Value[int]: the item type is
		// checked, as it is for an inherited one.
		v, err := value.Inherit[int](name)
		if err == nil {
			v.Close()
			return 0, fmt.Errorf("a Value[string] inherited as a Value[int]")
		}
		return 0, err
	case "wrongqueue":
		// A Queue[string] asked for as a Queue[int].
		q, err := queue.Inherit[int](name)
		if err == nil {
			q.Close()
			return 0, fmt.Errorf("a Queue[string] inherited as a Queue[int]")
		}
		return 0, err
	case "hold":
		// Inherited and kept open: the name stays taken.
		_, err := lock.Inherit(name)
		return 0, err
	case "wrongkind":
		q, err := queue.Inherit[int](name)
		if err == nil {
			q.Close()
			return 0, fmt.Errorf("a %s inherited as a queue", name)
		}
		return 0, err
	}
	return 0, fmt.Errorf("no use for %q", name)
}

func cut(name string) (string, string, bool) {
	for i := range name {
		if name[i] == '-' {
			return name[:i], name[i+1:], true
		}
	}
	return name, "", false
}

// TestSendShareAcrossProcesses: a worker is running; then the parent
// creates queues of every kind, a lock and a conn, sends each over a unix
// socket Conn, and the worker uses it. Over a pipe.Duplex the worker
// inherited, and over a Conn the worker dialed.
func TestSendShareAcrossProcesses(t *testing.T) {
	for _, via := range []string{"duplex", "dial"} {
		t.Run(via, func(t *testing.T) {
			testproc.CheckFDs(t)
			ctx := ctxTimeout(t, 60*time.Second)
			var ctl *conn.Conn
			var cmd = testproc.Command(t, "conn-share-worker")
			if via == "duplex" {
				a, b, err := pipe.Duplex()
				require.NoError(t, err)
				ctl = a
				cmd = startWith(t, "conn-share-worker", b)
			} else {
				l := listen(t, "unix", conn.WithAuthKey(testKey))
				cmd = testproc.Command(t, "conn-share-worker", l.Addr().String())
				require.NoError(t, cmd.Start())
				var err error
				ctl, err = l.Accept(ctx)
				require.NoError(t, err)
			}
			defer ctl.Close()
			report := func() shareReport {
				t.Helper()
				var r shareReport
				require.NoError(t, ctl.RecvContext(ctx, &r))
				return r
			}
			items := []int{1, 2, 3, 4, -1}

			q, err := queue.New[int](0)
			require.NoError(t, err)
			defer q.Close()
			require.NoError(t, ctl.SendShare(ctx, q, "queue-1"))
			for _, v := range items {
				require.NoError(t, q.Put(ctx, v))
			}
			assert.Equal(t, shareReport{Name: "queue-1", Sum: 10}, report(), "the worker used the queue")

			sq, err := simplequeue.New[int]()
			require.NoError(t, err)
			defer sq.Close()
			require.NoError(t, ctl.SendShare(ctx, sq, "simplequeue-1"))
			for _, v := range items {
				require.NoError(t, sq.Put(ctx, v))
			}
			assert.Equal(t, shareReport{Name: "simplequeue-1", Sum: 10}, report())

			jq, err := joinable.New[int](0)
			require.NoError(t, err)
			defer jq.Close()
			require.NoError(t, ctl.SendShare(ctx, jq, "joinable-1"))
			for _, v := range items {
				require.NoError(t, jq.Put(ctx, v))
			}
			require.NoError(t, jq.Join(ctx), "the worker's TaskDones reach us")
			assert.Equal(t, shareReport{Name: "joinable-1", Sum: 10}, report())

			// A lock we hold: the worker gets it once we let go.
			l, err := lock.New()
			require.NoError(t, err)
			defer l.Close()
			l.Lock()
			require.NoError(t, ctl.SendShare(ctx, l, "lock-1"))
			l.Unlock()
			assert.Equal(t, shareReport{Name: "lock-1", Sum: 1}, report())

			// A new connection between the two processes.
			x, y, err := pipe.Duplex()
			require.NoError(t, err)
			defer x.Close()
			require.NoError(t, ctl.SendShare(ctx, y, "conn-1"))
			require.NoError(t, y.Close())
			require.NoError(t, x.Send(21))
			var v int
			require.NoError(t, x.Recv(&v))
			assert.Equal(t, 42, v, "the worker answered on the conn it was sent")
			assert.Equal(t, shareReport{Name: "conn-1", Sum: 21}, report())

			// A Value: the worker's Update is seen here.
			val, err := value.New(41)
			require.NoError(t, err)
			defer val.Close()
			require.NoError(t, ctl.SendShare(ctx, val, "value-1"))
			assert.Equal(t, shareReport{Name: "value-1", Sum: 42}, report())
			got, err := val.Load(ctx)
			require.NoError(t, err)
			assert.Equal(t, 42, got, "the worker updated our Value")

			// The item type is checked: a Value[string] asked for as a
			// Value[int].
			sval, err := value.New("text")
			require.NoError(t, err)
			defer sval.Close()
			require.NoError(t, ctl.SendShare(ctx, sval, "wrongtype-1"))
			r := report()
			assert.True(t, r.WrongKind, "ErrWrongKind in the worker: %s", r.Err)

			sq2, err := queue.New[string](0)
			require.NoError(t, err)
			defer sq2.Close()
			require.NoError(t, ctl.SendShare(ctx, sq2, "wrongqueue-1"))
			r = report()
			assert.True(t, r.WrongKind, "ErrWrongKind in the worker: %s", r.Err)
			assert.Contains(t, r.Err, "string", "the error names the queue's item type")

			// The same checks as Inherit: a lock asked for as a queue.
			l2, err := lock.New()
			require.NoError(t, err)
			defer l2.Close()
			require.NoError(t, ctl.SendShare(ctx, l2, "wrongkind-1"))
			r = report()
			assert.True(t, r.WrongKind, "ErrWrongKind in the worker: %s", r.Err)
			// A name the worker already has (and has not closed).
			require.NoError(t, ctl.SendShare(ctx, l2, "hold-1"))
			assert.Equal(t, shareReport{Name: "hold-1"}, report())
			require.NoError(t, ctl.SendShare(ctx, l2, "hold-1"))
			r = report()
			assert.Contains(t, r.Err, "already has an object by that name")

			require.NoError(t, ctl.Close())
			require.NoError(t, testproc.WaitTimeout(cmd, 20*time.Second), "the worker exits cleanly")
		})
	}
}

// TestSendShareOnlyOverUnix: over tcp, TLS and a Simplex pipe SendShare
// fails with ErrNotUnixSocket and sends nothing.
func TestSendShareOnlyOverUnix(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := lock.New()
	require.NoError(t, err)
	defer l.Close()
	srvTLS, cliTLS := testTLS(t)
	for name, opts := range map[string][2][]conn.Option{
		"tcp":      {{conn.WithAuthKey(testKey)}, {conn.WithAuthKey(testKey)}},
		"unix+tls": {{conn.WithTLS(srvTLS)}, {conn.WithTLS(cliTLS)}},
	} {
		network := "tcp"
		if name == "unix+tls" {
			network = "unix"
		}
		ln := listen(t, network, opts[0]...)
		c, err := conn.Dial(ctx, network, ln.Addr().String(), opts[1]...)
		require.NoError(t, err)
		s, err := ln.Accept(ctx)
		require.NoError(t, err)
		err = c.SendShare(ctx, l, "l")
		assert.ErrorIs(t, err, conn.ErrNotUnixSocket, name)
		require.NoError(t, c.Send("after"))
		var got string
		require.NoError(t, s.Recv(&got))
		assert.Equal(t, "after", got, "nothing was sent before")
		c.Close()
		s.Close()
	}
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.ErrorIs(t, w.SendShare(ctx, l, "l"), conn.ErrNotUnixSocket)
}

// TestShareFrameMisuse: Recv of a shared object, RecvShare of a message,
// and descriptors nobody claims: clear errors, no descriptor leaked.
func TestShareFrameMisuse(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := ctxTimeout(t, 20*time.Second)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	l, err := lock.New()
	require.NoError(t, err)
	defer l.Close()

	require.NoError(t, a.SendShare(ctx, l, "l1"))
	var v any
	assert.ErrorIs(t, b.Recv(&v), conn.ErrUnexpectedShare)
	require.NoError(t, a.SendShare(ctx, l, "l2"))
	_, err = b.RecvBytes()
	assert.ErrorIs(t, err, conn.ErrUnexpectedShare)

	require.NoError(t, a.Send("plain"))
	_, err = b.RecvShare(ctx)
	assert.ErrorIs(t, err, conn.ErrNotShared)

	// Still in step.
	require.NoError(t, a.Send("next"))
	var s string
	require.NoError(t, b.Recv(&s))
	assert.Equal(t, "next", s)

	// Sent but never received: closed with the Conn.
	require.NoError(t, a.SendShare(ctx, l, "l3"))
	require.NoError(t, b.Close())

	// A ctx that ends first.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = l2c(t).RecvShare(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// l2c returns one end of a new Duplex whose other end stays open until the
// test ends.
func l2c(t *testing.T) *conn.Conn {
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}
