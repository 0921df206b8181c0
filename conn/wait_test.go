package conn_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

func TestWait(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := ctxTimeout(t, 20*time.Second)
	var near, far [4]*conn.Conn
	for i := range near {
		a, b, err := pipe.Duplex()
		require.NoError(t, err)
		near[i], far[i] = a, b
		defer a.Close()
		defer b.Close()
	}
	all := near[:]

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	ready, err := conn.Wait(short, all...)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "nothing to read")
	assert.Nil(t, ready)

	require.NoError(t, far[2].Send("x"))
	ready, err = conn.Wait(ctx, all...)
	require.NoError(t, err)
	assert.Equal(t, []*conn.Conn{near[2]}, ready, "the one with a message")

	require.NoError(t, far[0].Send("y"))
	ready, err = conn.Wait(ctx, all...)
	require.NoError(t, err)
	assert.Equal(t, []*conn.Conn{near[0], near[2]}, ready, "every ready one, in the order given")
	var s string
	require.NoError(t, near[0].Recv(&s))
	require.NoError(t, near[2].Recv(&s))

	// A message that comes while Wait waits.
	done := make(chan []*conn.Conn, 1)
	go func() {
		ready, err := conn.Wait(ctx, all...)
		assert.NoError(t, err)
		done <- ready
	}()
	require.NoError(t, far[3].Send("z"))
	assert.Equal(t, []*conn.Conn{near[3]}, <-done)
	require.NoError(t, near[3].Recv(&s))

	// A peer that closed, and a Conn closed here, are ready: Recv returns
	// at once.
	require.NoError(t, far[1].Close())
	ready, err = conn.Wait(ctx, all...)
	require.NoError(t, err)
	assert.Equal(t, []*conn.Conn{near[1]}, ready)
	require.NoError(t, near[3].Close())
	ready, err = conn.Wait(ctx, near[0], near[3])
	require.NoError(t, err)
	assert.Equal(t, []*conn.Conn{near[3]}, ready)

	// The write end of a Simplex pipe cannot be waited on; no conns waits
	// for ctx.
	r, w, err := pipe.Simplex()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	_, err = conn.Wait(ctx, near[0], w)
	assert.ErrorIs(t, err, conn.ErrWriteOnly)
	short, cancel = context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = conn.Wait(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestWaitServer: a server waits on many clients of its Listener at once,
// as a Python server does with multiprocessing.connection.wait, and
// answers each message as it comes.
func TestWaitServer(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := ctxTimeout(t, 30*time.Second)
	l := listen(t, "tcp", conn.WithAuthKey(testKey))
	const n = 8
	clients := make([]*conn.Conn, n)
	servers := make([]*conn.Conn, n)
	for i := range n {
		c, err := conn.Dial(ctx, "tcp", l.Addr().String(), conn.WithAuthKey(testKey))
		require.NoError(t, err)
		defer c.Close()
		clients[i] = c
		s, err := l.Accept(ctx)
		require.NoError(t, err)
		defer s.Close()
		servers[i] = s
	}
	served := make(chan int, 1)
	go func() {
		open := append([]*conn.Conn(nil), servers...)
		count := 0
		for len(open) > 0 {
			ready, err := conn.Wait(ctx, open...)
			if !assert.NoError(t, err) {
				break
			}
			for _, s := range ready {
				var v int
				if err := s.Recv(&v); err != nil {
					open = remove(open, s) // the client closed
					continue
				}
				count++
				assert.NoError(t, s.Send(v*v))
			}
		}
		served <- count
	}()
	for round := range 3 {
		for i := n - 1; i >= 0; i-- {
			require.NoError(t, clients[i].Send(i+round))
		}
		for i, c := range clients {
			var sq int
			require.NoError(t, c.Recv(&sq))
			assert.Equal(t, (i+round)*(i+round), sq)
		}
	}
	for _, c := range clients {
		require.NoError(t, c.Close())
	}
	assert.Equal(t, 3*n, <-served)
}

func remove(cs []*conn.Conn, c *conn.Conn) []*conn.Conn {
	for i := range cs {
		if cs[i] == c {
			return append(cs[:i], cs[i+1:]...)
		}
	}
	return cs
}
