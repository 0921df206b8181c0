package conn_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
)

// A receive reads ahead: one Recv takes every frame waiting in the
// descriptor, later Recvs return them from the buffer, Poll sees them, and
// Share refuses the Conn while they wait.
func TestReadAheadShareRefusesBuffered(t *testing.T) {
	eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
		var frames []byte
		for _, s := range []string{"one", "two", "three"} {
			frames = append(frames, frame([]byte(s))...)
		}
		_, err := w.Write(frames)
		require.NoError(t, err)

		p, err := rx.RecvBytes()
		require.NoError(t, err)
		assert.Equal(t, "one", string(p))
		for _, d := range []time.Duration{0, time.Minute, -1} {
			ok, err := rx.Poll(d)
			require.NoError(t, err)
			assert.True(t, ok, "Poll(%v) sees the frames in the buffer, though the descriptor is empty", d)
		}
		assert.ErrorIs(t, rx.Share(exec.Command("true"), "c"), conn.ErrBuffered, "Share of a Conn with buffered bytes")

		for _, want := range []string{"two", "three"} {
			p, err := rx.RecvBytes()
			require.NoError(t, err)
			assert.Equal(t, want, string(p))
		}
		ok, err := rx.Poll(0)
		require.NoError(t, err)
		assert.False(t, ok, "nothing waiting after the buffer is drained")
		cmd := exec.Command("true")
		require.NoError(t, rx.Share(cmd, "c"), "Share once the buffer is empty")
	})
}

// Once shared, a Conn reads exactly its frame: the bytes after it stay in
// the descriptor for whoever else reads it.
func TestSharedConnReadsExactly(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	rx, err := conn.New(r)
	require.NoError(t, err)
	defer rx.Close()
	require.NoError(t, rx.Share(exec.Command("true"), "c"))

	big := pattern(70000, 3) // larger than the read-ahead buffer
	after := frame([]byte("for someone else"))
	done := goSend(func() error {
		_, err := w.Write(append(append(frame([]byte("mine")), frame(big)...), after...))
		return err
	})
	p, err := rx.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "mine", string(p))
	p, err = rx.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, big, p)
	require.NoError(t, waitErr(t, done, "Write"))

	rest := make([]byte, len(after))
	_, err = io.ReadFull(r, rest) // r shares the open file description rx reads
	require.NoError(t, err)
	assert.Equal(t, after, rest, "the frame after the ones received is still in the pipe, whole")
}

// A decoded value never refers to the read-ahead buffer, which the next
// receive overwrites.
func TestRecvDoesNotAliasBuffer(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		first := record{Name: "first", Tags: []string{"a", "b"}, Data: bytes.Repeat([]byte{1}, 100)}
		require.NoError(t, tx.Send(first))
		var got record
		require.NoError(t, rx.Recv(&got))
		for i := range 50 {
			require.NoError(t, tx.Send(record{Name: "other-name", Tags: []string{"x", "y"}, Data: bytes.Repeat([]byte{9}, 100+i)}))
			var r record
			require.NoError(t, rx.Recv(&r))
		}
		assert.Equal(t, first, got, "the first value is unchanged after the buffer was reused")
	})
}

// Frames of every size around the buffer's, one after another in one
// write, arrive whole and in order, over each transport.
func TestReadAheadSizes(t *testing.T) {
	sizes := []int{0, 1, 4, 100, 4092, 4096, 65000, 65532, 65536 - 4, 65536, 65537, 70000, 200000, 3}
	eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
		var all []byte
		for i, n := range sizes {
			all = append(all, frame(pattern(n, byte(i)))...)
		}
		done := goSend(func() error { _, err := w.Write(all); return err })
		for i, n := range sizes {
			p, err := rx.RecvBytes()
			require.NoError(t, err, "frame %d", i)
			require.True(t, bytes.Equal(pattern(n, byte(i)), p), "frame %d of %d bytes", i, n)
		}
		require.NoError(t, waitErr(t, done, "Write"))
		require.NoError(t, w.Close())
		_, err := rx.RecvBytes()
		assert.ErrorIs(t, err, io.EOF)
	})
}

// The read-ahead buffer starts small and grows only when reads fill it or
// a frame needs more: a Conn that receives little keeps 4 KiB.
func TestReadAheadBufferGrows(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		assert.Equal(t, 0, conn.ReadBufLen(rx), "no buffer before the first receive")
		for i := range 20 {
			require.NoError(t, tx.Send(i))
			var got int
			require.NoError(t, rx.Recv(&got))
			require.Equal(t, i, got)
		}
		assert.Equal(t, 4<<10, conn.ReadBufLen(rx), "small messages one at a time")
		assert.False(t, conn.HasBuffered(rx))

		p := pattern(20000, 5)
		require.NoError(t, tx.SendBytes(p))
		require.NoError(t, tx.Send("next"))
		got, err := rx.RecvBytes()
		require.NoError(t, err)
		require.Equal(t, p, got)
		assert.GreaterOrEqual(t, conn.ReadBufLen(rx), 20004, "grown for a frame that needs it")
		assert.LessOrEqual(t, conn.ReadBufLen(rx), 64<<10)
		require.Eventually(t, func() bool {
			ok, err := rx.Poll(0)
			return err == nil && ok
		}, 10*time.Second, time.Millisecond)
		var s string
		require.NoError(t, rx.Recv(&s))
		assert.Equal(t, "next", s)
	})
}

// A receive whose ctx has ended takes nothing, even when the message is
// already in the Conn's buffer.
func TestRecvContextEndedTakesBuffered(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		require.NoError(t, tx.Send("a"))
		require.NoError(t, tx.Send("b"))
		var s string
		require.NoError(t, rx.Recv(&s))
		require.Eventually(t, func() bool { return conn.HasBuffered(rx) || func() bool { ok, _ := rx.Poll(0); return ok }() }, 10*time.Second, time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, rx.RecvContext(ctx, &s), context.Canceled)
		require.NoError(t, rx.Recv(&s))
		assert.Equal(t, "b", s, "the message the cancelled receive left")
	})
}
