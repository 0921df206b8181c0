package pool_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/barrier"
	"github.com/mproc-go/mproc/condition"
	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/event"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/pool"
	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/queue"
	"github.com/mproc-go/mproc/semaphore"
	"github.com/mproc-go/mproc/simplequeue"
	"github.com/mproc-go/mproc/value"
)

// holders are values that hold an mproc object in each way a caller may
// put one in a message: a pointer field, a field by value (where the type
// can be copied), an any, a slice element. Each must fail in the caller
// with ErrNotSendable and a text naming the type; none may go out as {}.
func holders(t *testing.T, p *pool.Pool[any, any]) []struct {
	name, typ string
	v         any
} {
	t.Helper()
	l, err := lock.New()
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	q, err := queue.New[int](0)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	sq, err := simplequeue.New[int]()
	require.NoError(t, err)
	t.Cleanup(func() { sq.Close() })
	jq, err := joinable.New[int](0)
	require.NoError(t, err)
	t.Cleanup(func() { jq.Close() })
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(); b.Close() })
	cmd := process.Command("nothing")
	v, err := value.New(1)
	require.NoError(t, err)
	t.Cleanup(func() { v.Close() })
	sem, err := semaphore.New(1)
	require.NoError(t, err)
	t.Cleanup(func() { sem.Close() })
	ev, err := event.New()
	require.NoError(t, err)
	t.Cleanup(func() { ev.Close() })
	bar, err := barrier.New(2)
	require.NoError(t, err)
	t.Cleanup(func() { bar.Close() })
	cond, err := condition.New(l)
	require.NoError(t, err)
	t.Cleanup(func() { cond.Close() })
	ln, err := conn.Listen("unix", filepath.Join(t.TempDir(), "sock"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })

	type lockPtr struct{ L *lock.Lock }
	type queueByValue struct{ Q queue.Queue[int] }
	type simpleByValue struct {
		N int
		Q simplequeue.Queue[int]
	}
	type joinablePtr struct{ Q *joinable.Queue[int] }
	type connPtr struct{ C *conn.Conn }
	type poolPtr struct{ P *pool.Pool[any, any] }
	type cmdPtr struct{ C *process.Cmd }
	return []struct {
		name, typ string
		v         any
	}{
		{"*lock.Lock field", "lock.Lock", lockPtr{l}},
		{"*lock.Lock field, struct by pointer", "lock.Lock", &lockPtr{l}},
		{"queue.Queue field by value", "queue.Queue", queueByValue{*q}},
		{"queue.Queue field by value, addressable", "queue.Queue", &queueByValue{*q}},
		{"simplequeue.Queue field by value", "simplequeue.Queue", simpleByValue{1, *sq}},
		{"*joinable.Queue field", "joinable.Queue", joinablePtr{jq}},
		{"*conn.Conn field", "conn.Conn", connPtr{a}},
		{"*conn.Conn in an any", "conn.Conn", map[string]any{"c": b}},
		{"*lock.Lock in a slice", "lock.Lock", []*lock.Lock{l}},
		{"*pool.Pool field", "pool.Pool", poolPtr{p}},
		{"*process.Cmd field", "process.Cmd", cmdPtr{cmd}},
		{"*queue.Queue alone", "queue.Queue", q},
		{"*value.Value in a map", "value.Value", map[string]any{"v": v}},
		{"*semaphore.Semaphore alone", "semaphore.Semaphore", sem},
		{"*event.Event in a slice", "event.Event", []any{1, ev}},
		{"*barrier.Barrier alone", "barrier.Barrier", bar},
		{"*condition.Condition alone", "condition.Condition", cond},
		{"*conn.Listener alone", "conn.Listener", ln},
	}
}

// typedEcho is a typed process function: its argument is encoded by Start.
var typedEcho = process.RegisterFunc("sendable-typed-echo", func(ctx context.Context, v any) (any, error) { return v, nil })

func requireNotSendable(t *testing.T, err error, typ string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, pool.ErrNotSendable)
	assert.Contains(t, err.Error(), "a "+typ+" cannot be sent")
}

// TestNotSendable: every way of sending a value fails in the caller when
// the value holds a lock, a queue, a Conn, a pool or a Cmd; nothing
// reaches the other side (it would get an empty object that hangs).
func TestNotSendable(t *testing.T) {
	testproc.CheckFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	defer theirs.Close()
	q, err := queue.New[any](0)
	require.NoError(t, err)
	defer q.Close()
	sq, err := simplequeue.New[any]()
	require.NoError(t, err)
	defer sq.Close()
	jq, err := joinable.New[any](0)
	require.NoError(t, err)
	defer jq.Close()
	p := newPool(t, echo, pool.Config{Workers: 1, ChunkSize: 3})
	hs := holders(t, p)

	for _, h := range hs {
		t.Run(h.name, func(t *testing.T) {
			_, err := msgpack.Marshal(h.v)
			requireNotSendable(t, err, h.typ)
			requireNotSendable(t, mine.Send(h.v), h.typ)
			requireNotSendable(t, q.Put(ctx, h.v), h.typ)
			requireNotSendable(t, sq.Put(ctx, h.v), h.typ)
			requireNotSendable(t, jq.Put(ctx, h.v), h.typ)
			_, err = p.Apply(ctx, h.v)
			requireNotSendable(t, err, h.typ)
			_, err = p.Submit(ctx, h.v).Wait(ctx)
			requireNotSendable(t, err, h.typ)
			_, err = typedEcho.Command(h.v).Run(ctx)
			requireNotSendable(t, err, h.typ)
			assert.ErrorIs(t, err, process.ErrEncode, "Start fails before any child starts")
			out, err := p.Map(ctx, []any{1, h.v, 3})
			requireNotSendable(t, err, h.typ)
			var me *pool.MapError
			require.ErrorAs(t, err, &me)
			assert.Len(t, me.Tasks, 3, "the chunk fails whole, in the caller")
			assert.Len(t, out, 3)
		})
	}

	// Nothing went out: the other ends are empty, the pool still works.
	ok, err := theirs.Poll(0)
	require.NoError(t, err)
	assert.False(t, ok, "nothing was sent on the conn")
	assert.True(t, q.Empty(), "nothing was put on the queue")
	assert.NoError(t, jq.Join(ctx), "nothing was counted on the joinable queue")
	v, err := p.Apply(ctx, "still works")
	require.NoError(t, err)
	assert.Equal(t, "still works", v)
}

// TestNotReceivable: a message from another process (here any writer of
// msgpack) that would decode into one of these objects fails, instead of
// giving the receiver an empty Lock or Conn that hangs or panics.
func TestNotReceivable(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{"L": map[string]any{}, "C": map[string]any{}})
	require.NoError(t, err)
	var intoLock struct{ L *lock.Lock }
	err = msgpack.Unmarshal(b, &intoLock)
	assert.ErrorIs(t, err, lock.ErrNotSendable)
	assert.Contains(t, err.Error(), "a lock.Lock cannot be received")
	var intoConn struct{ C conn.Conn }
	err = msgpack.Unmarshal(b, &intoConn)
	assert.ErrorIs(t, err, conn.ErrNotSendable)

	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	defer theirs.Close()
	require.NoError(t, mine.SendBytes(b))
	assert.ErrorIs(t, theirs.Recv(&intoLock), lock.ErrNotSendable)

	for _, e := range []error{queue.ErrNotSendable, simplequeue.ErrNotSendable, joinable.ErrNotSendable, process.ErrNotSendable} {
		assert.True(t, errors.Is(e, pool.ErrNotSendable), "one sentinel, re-exported")
	}
}
