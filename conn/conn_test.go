package conn_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// A transport makes a connected pair: tx sends to rx. duplex says that rx
// can send back to tx.
type transport struct {
	name   string
	duplex bool
	pair   func(t *testing.T) (tx, rx *conn.Conn)
}

var transports = []transport{
	{"duplex", true, func(t *testing.T) (tx, rx *conn.Conn) {
		a, b, err := pipe.Duplex()
		require.NoError(t, err, "pipe.Duplex")
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}},
	{"simplex", false, func(t *testing.T) (tx, rx *conn.Conn) {
		r, w, err := pipe.Simplex()
		require.NoError(t, err, "pipe.Simplex")
		t.Cleanup(func() { r.Close(); w.Close() })
		return w, r
	}},
	{"new-socketpair", true, func(t *testing.T) (tx, rx *conn.Conn) {
		fa, fb := socketpair(t)
		a := newConn(t, fa)
		b := newConn(t, fb)
		return a, b
	}},
}

// rawTransports feed a Conn from a raw file, to write frames by hand.
var rawTransports = []struct {
	name string
	make func(t *testing.T) (rx *conn.Conn, w *os.File)
}{
	{"socket", func(t *testing.T) (*conn.Conn, *os.File) {
		fa, fb := socketpair(t)
		t.Cleanup(func() { fb.Close() })
		return newConn(t, fa), fb
	}},
	{"pipe", func(t *testing.T) (*conn.Conn, *os.File) {
		r, w, err := os.Pipe()
		require.NoError(t, err, "os.Pipe")
		t.Cleanup(func() { w.Close() })
		return newConn(t, r), w
	}},
}

// socketpair returns a plain blocking stream socketpair, made the way a
// user of conn.New would.
func socketpair(t *testing.T) (a, b *os.File) {
	t.Helper()
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err, "socketpair")
	return os.NewFile(uintptr(p[0]), "test-a"), os.NewFile(uintptr(p[1]), "test-b")
}

// newConn wraps f with conn.New and closes f, which New duplicated.
func newConn(t *testing.T, f *os.File) *conn.Conn {
	t.Helper()
	c, err := conn.New(f)
	require.NoError(t, err, "conn.New(%s)", f.Name())
	require.NoError(t, f.Close(), "closing the file conn.New duplicated")
	t.Cleanup(func() { c.Close() })
	return c
}

// eachTransport runs f as a subtest over every transport, with an fd leak
// check.
func eachTransport(t *testing.T, f func(t *testing.T, tx, rx *conn.Conn)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			tx, rx := tr.pair(t)
			f(t, tx, rx)
		})
	}
}

func eachRaw(t *testing.T, f func(t *testing.T, rx *conn.Conn, w *os.File)) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			rx, w := tr.make(t)
			f(t, rx, w)
		})
	}
}

// pattern returns n bytes that depend on seed and on their position.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7+i>>8) ^ seed
	}
	return p
}

// goSend runs send in a goroutine (a big message does not fit in the
// kernel's buffer before the receiver reads) and returns its result.
func goSend(send func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- send() }()
	return done
}

func waitErr(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return within 10s", what)
		return nil
	}
}

type record struct {
	Name   string             `msgpack:"name"`
	Age    int                `msgpack:"age"`
	Tags   []string           `msgpack:"tags"`
	Data   []byte             `msgpack:"data"`
	Scores map[string]float64 `msgpack:"scores"`
	Next   *record            `msgpack:"next"`
}

func TestSendRecv(t *testing.T) {
	rec := record{
		Name: "Ada Lovelace", Age: 36, Tags: []string{"math", "analytical engine"},
		Data: []byte{0, 1, 0xfe, 0xff}, Scores: map[string]float64{"pi": 3.14159, "e": 2.71828},
		Next: &record{Name: "Babbage"},
	}
	cases := []struct {
		name string
		v    any
		into func() any // a pointer to decode into
	}{
		{"struct", rec, func() any { return new(record) }},
		{"bytes", []byte{0, 1, 2, 0x80, 0xff}, func() any { return new([]byte) }},
		{"non-ASCII string", "héllo, wörld, 世界, 🎉, \u0000", func() any { return new(string) }},
		{"empty string", "", func() any { return new(string) }},
		{"nil", nil, func() any { return new(any) }},
		{"over 16KiB", pattern(20<<10, 1), func() any { return new([]byte) }},
		{"over 1MiB", pattern(1<<20+12345, 2), func() any { return new([]byte) }},
		{"several MiB", pattern(5<<20, 3), func() any { return new([]byte) }},
	}
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				done := goSend(func() error { return tx.Send(tc.v) })
				got := tc.into()
				require.NoError(t, rx.Recv(got), "Recv")
				require.NoError(t, waitErr(t, done, "Send"), "Send")
				want := tc.into()
				b, err := msgpack.Marshal(tc.v)
				require.NoError(t, err)
				require.NoError(t, msgpack.Unmarshal(b, want), "local msgpack round trip of %T", tc.v)
				assert.Equal(t, want, got, "Recv must decode what Send encoded")
			})
		}
	})
}

func TestSendRecvBytes(t *testing.T) {
	sizes := []int{0, 1, 4096 - 4, 4096, 16<<10 + 1, 64 << 10, 1 << 20, 1<<20 + 1, 3<<20 + 17, 6 << 20}
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		for i, n := range sizes {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				p := pattern(n, byte(i))
				done := goSend(func() error { return tx.SendBytes(p) })
				got, err := rx.RecvBytes()
				require.NoError(t, err, "RecvBytes")
				require.NoError(t, waitErr(t, done, "SendBytes"), "SendBytes")
				require.Len(t, got, n, "payload length")
				assert.True(t, bytes.Equal(p, got), "payload of %d bytes must arrive unchanged", n)
			})
		}
		t.Run("nil", func(t *testing.T) {
			require.NoError(t, tx.SendBytes(nil), "SendBytes(nil)")
			got, err := rx.RecvBytes()
			require.NoError(t, err, "RecvBytes of an empty payload")
			assert.Empty(t, got, "an empty payload arrives empty")
		})
	})
}

func TestDuplexBothWays(t *testing.T) {
	for _, tr := range transports {
		if !tr.duplex {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			a, b := tr.pair(t)
			for i := range 100 {
				require.NoError(t, a.Send(i), "a.Send")
				var got int
				require.NoError(t, b.Recv(&got), "b.Recv")
				require.NoError(t, b.Send(got*2), "b.Send")
				require.NoError(t, a.Recv(&got), "a.Recv")
				require.Equal(t, 2*i, got, "the answer to %d", i)
			}
		})
	}
}

func TestRecvDecodeError(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		require.NoError(t, tx.Send("not a number"))
		require.NoError(t, tx.Send(42))
		var n int
		err := rx.Recv(&n)
		require.Error(t, err, "a string does not decode into an int")
		assert.Contains(t, err.Error(), "conn: decode", "the error says decoding failed")
		require.NoError(t, rx.Recv(&n), "the Conn stays usable after a decode error")
		assert.Equal(t, 42, n)
	})
}

func TestSendEncodeError(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		err := tx.Send(make(chan int))
		require.Error(t, err, "a channel cannot be encoded")
		assert.Contains(t, err.Error(), "conn: encode")
		ok, err := rx.Poll(0)
		require.NoError(t, err)
		assert.False(t, ok, "nothing is written when encoding fails")
	})
}

func TestEOF(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			require.NoError(t, tx.Send("last"))
			require.NoError(t, tx.Close())
			var s string
			require.NoError(t, rx.Recv(&s), "the frame sent before Close arrives")
			assert.Equal(t, "last", s)
			assert.ErrorIs(t, rx.Recv(&s), io.EOF, "EOF between frames is io.EOF")
			_, err := rx.RecvBytes()
			assert.ErrorIs(t, err, io.EOF, "and stays io.EOF")
		})
	})
	// Each input is written, then the writer closes.
	truncated := []struct {
		name string
		data []byte
	}{
		{"inside header", []byte{0, 0}},
		{"after header", []byte{0, 0, 0, 10}},
		{"inside payload", append([]byte{0, 0, 0, 10}, "hello"...)},
		{"inside long header", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0}},
		{"after long header", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 5}},
		{"inside long payload", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, 'h', 'i'}},
		{"inside big payload", append([]byte{0, 0x30, 0, 0}, pattern(2<<20, 9)...)},
	}
	for _, tc := range truncated {
		t.Run(tc.name, func(t *testing.T) {
			eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
				done := goSend(func() error {
					_, err := w.Write(append(frame([]byte("whole")), tc.data...))
					w.Close()
					return err
				})
				got, err := rx.RecvBytes()
				require.NoError(t, err, "the whole frame before the truncated one")
				assert.Equal(t, "whole", string(got))
				_, err = rx.RecvBytes()
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "EOF inside a frame")
				var v any
				assert.ErrorIs(t, rx.Recv(&v), io.ErrUnexpectedEOF, "the error is sticky")
				require.NoError(t, waitErr(t, done, "writer"))
			})
		})
	}
}

// frame returns p framed as Python's Connection.send_bytes frames it.
func frame(p []byte) []byte { return append(conn.AppendHeader(nil, len(p)), p...) }

func longFrame(p []byte) []byte {
	h := binary.BigEndian.AppendUint32(nil, 0xffffffff)
	h = binary.BigEndian.AppendUint64(h, uint64(len(p)))
	return append(h, p...)
}

func TestLongHeaderRead(t *testing.T) {
	eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
		// A writer may use the long header for any length; what follows
		// must still be read from the right place.
		var stream []byte
		stream = append(stream, longFrame([]byte("hello"))...)
		stream = append(stream, frame([]byte("short"))...)
		stream = append(stream, longFrame(nil)...)
		stream = append(stream, longFrame(pattern(100<<10, 4))...)
		stream = append(stream, frame([]byte("end"))...)
		done := goSend(func() error { _, err := w.Write(stream); w.Close(); return err })
		for _, want := range [][]byte{[]byte("hello"), []byte("short"), {}, pattern(100<<10, 4), []byte("end")} {
			got, err := rx.RecvBytes()
			require.NoError(t, err, "RecvBytes")
			require.True(t, bytes.Equal(want, got), "want %d bytes, got %d", len(want), len(got))
		}
		require.NoError(t, waitErr(t, done, "writer"))
	})
}

func TestProtocolError(t *testing.T) {
	for _, length := range []uint32{0xfffffffe, 0x80000000, 0xfffffff0} {
		t.Run(fmt.Sprintf("%d", int32(length)), func(t *testing.T) {
			eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
				bad := binary.BigEndian.AppendUint32(nil, length)
				bad = append(bad, frame([]byte("a valid frame after the bad one"))...)
				_, err := w.Write(bad)
				require.NoError(t, err)
				_, err = rx.RecvBytes()
				require.ErrorIs(t, err, conn.ErrProtocol, "negative length %d", int32(length))
				// w stays open, for Poll below; a ctx keeps a reader that
				// reads on past the error from hanging.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var s string
				assert.ErrorIs(t, rx.RecvContext(ctx, &s), conn.ErrProtocol, "the protocol error is sticky")
				_, err = rx.RecvBytesContext(ctx)
				assert.ErrorIs(t, err, conn.ErrProtocol, "still sticky")
				ok, err := rx.Poll(0)
				assert.NoError(t, err, "Poll on a broken Conn")
				assert.True(t, ok, "Poll reports a broken Conn as ready: Recv returns at once")
			})
		})
	}
}

func TestMessageTooLarge(t *testing.T) {
	t.Run("receive", func(t *testing.T) {
		eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
			rx.SetMaxMessageSize(100)
			var stream []byte
			stream = append(stream, frame(pattern(100, 1))...)
			stream = append(stream, frame(pattern(101, 2))...)
			stream = append(stream, frame([]byte("after"))...)
			_, err := w.Write(stream)
			require.NoError(t, err)
			w.Close() // a reader that reads on past the error fails instead of hanging
			got, err := rx.RecvBytes()
			require.NoError(t, err, "a payload of exactly the maximum")
			assert.Len(t, got, 100)
			_, err = rx.RecvBytes()
			require.ErrorIs(t, err, conn.ErrMessageTooLarge, "101 bytes with a maximum of 100")
			_, err = rx.RecvBytes()
			assert.ErrorIs(t, err, conn.ErrMessageTooLarge, "sticky: the stream position is lost")
		})
	})
	t.Run("receive long header", func(t *testing.T) {
		eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
			h := binary.BigEndian.AppendUint32(nil, 0xffffffff)
			h = binary.BigEndian.AppendUint64(h, 1<<63+5) // over MaxInt64
			_, err := w.Write(h)
			require.NoError(t, err)
			w.Close() // a reader that reads on past the error fails instead of hanging
			_, err = rx.RecvBytes()
			require.ErrorIs(t, err, conn.ErrMessageTooLarge)
		})
	})
	t.Run("receive default maximum", func(t *testing.T) {
		eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
			_, err := w.Write(conn.AppendHeader(nil, conn.DefaultMaxMessageSize+1))
			require.NoError(t, err)
			w.Close() // a reader that reads on past the error fails instead of hanging
			_, err = rx.RecvBytes()
			require.ErrorIs(t, err, conn.ErrMessageTooLarge)
		})
	})
	t.Run("send", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			tx.SetMaxMessageSize(100)
			err := tx.SendBytes(pattern(101, 1))
			require.ErrorIs(t, err, conn.ErrMessageTooLarge, "SendBytes over the maximum")
			err = tx.Send(record{Name: string(pattern(200, 'a'))})
			require.ErrorIs(t, err, conn.ErrMessageTooLarge, "Send whose encoding is over the maximum")
			ok, err := rx.Poll(0)
			require.NoError(t, err)
			require.False(t, ok, "a refused Send writes nothing")
			require.NoError(t, tx.SendBytes(pattern(100, 2)), "exactly the maximum")
			got, err := rx.RecvBytes()
			require.NoError(t, err)
			assert.Equal(t, pattern(100, 2), got, "the first frame on the wire is the one that fit")
		})
	})
}

func TestSetMaxMessageSize(t *testing.T) {
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	assert.EqualValues(t, conn.DefaultMaxMessageSize, a.MaxMessageSize(), "the default")
	a.SetMaxMessageSize(10)
	assert.EqualValues(t, 10, a.MaxMessageSize())
	assert.EqualValues(t, conn.DefaultMaxMessageSize, b.MaxMessageSize(), "each end has its own maximum")
	a.SetMaxMessageSize(0)
	assert.EqualValues(t, conn.DefaultMaxMessageSize, a.MaxMessageSize(), "0 restores the default")
	a.SetMaxMessageSize(-3)
	assert.EqualValues(t, conn.DefaultMaxMessageSize, a.MaxMessageSize(), "a negative size restores the default")
	a.SetMaxMessageSize(1 << 40)
	assert.EqualValues(t, 1<<40, a.MaxMessageSize(), "above the default")
}

// allocated returns the bytes the Go heap handed out while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allocSlack covers what a receive allocates besides the payload buffers
// (error values, a goroutine or two of the test, the runtime).
const allocSlack = 256 << 10

func TestLyingHeader(t *testing.T) {
	cases := []struct {
		name   string
		max    int64
		header []byte
		sent   int
	}{
		{"1GiB says, 10 bytes come", 0, conn.AppendHeader(nil, 1<<30), 10},
		{"1GiB says, 2.5MiB come", 0, conn.AppendHeader(nil, 1<<30), 5 << 19},
		{"long header says 256GiB, 10 bytes come", 1 << 40, conn.AppendHeader(nil, 1<<38), 10},
		{"long header says 256GiB, 3MiB come", 1 << 40, conn.AppendHeader(nil, 1<<38), 3 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachRaw(t, func(t *testing.T, rx *conn.Conn, w *os.File) {
				rx.SetMaxMessageSize(tc.max)
				data := append(append([]byte(nil), tc.header...), pattern(tc.sent, 5)...)
				var err error
				alloc := allocated(func() {
					done := goSend(func() error {
						_, err := w.Write(data)
						w.Close()
						return err
					})
					_, err = rx.RecvBytes()
					<-done
				})
				require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the writer stopped inside the frame")
				limit := uint64(2*tc.sent) + 1<<20 + allocSlack
				assert.LessOrEqual(t, alloc, limit,
					"a lying header followed by %d bytes must not make the reader allocate more than 2x what arrived + 1MiB", tc.sent)
			})
		})
	}
}

func TestClosed(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		for _, c := range []*conn.Conn{tx, rx} {
			require.NoError(t, c.Close(), "Close")
			assert.NoError(t, c.Close(), "a second Close returns the first's result")
			ctx := context.Background()
			var v any
			assert.ErrorIs(t, c.Send(1), conn.ErrClosed, "Send")
			assert.ErrorIs(t, c.SendContext(ctx, 1), conn.ErrClosed, "SendContext")
			assert.ErrorIs(t, c.SendBytes(nil), conn.ErrClosed, "SendBytes")
			assert.ErrorIs(t, c.SendBytesContext(ctx, nil), conn.ErrClosed, "SendBytesContext")
			assert.ErrorIs(t, c.Recv(&v), conn.ErrClosed, "Recv")
			assert.ErrorIs(t, c.RecvContext(ctx, &v), conn.ErrClosed, "RecvContext")
			_, err := c.RecvBytes()
			assert.ErrorIs(t, err, conn.ErrClosed, "RecvBytes")
			_, err = c.RecvBytesContext(ctx)
			assert.ErrorIs(t, err, conn.ErrClosed, "RecvBytesContext")
			for _, d := range []time.Duration{0, time.Second, -1} {
				ok, err := c.Poll(d)
				assert.ErrorIs(t, err, conn.ErrClosed, "Poll(%v)", d)
				assert.False(t, ok, "Poll(%v)", d)
			}
			_, err = c.PollContext(ctx)
			assert.ErrorIs(t, err, conn.ErrClosed, "PollContext")
		}
	})
}

func TestConcurrentClose(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = rx.Close() })
		}
		wg.Wait()
		for i, err := range errs {
			assert.NoError(t, err, "Close %d", i)
		}
	})
}

// fill sends small frames on c until its kernel buffer is full, so that the
// next Send blocks, and returns how many it sent; frame i is the byte i.
// Full means three sends in a row timed out: on a loaded machine one can
// time out before it has tried.
func fill(t *testing.T, c *conn.Conn) int {
	t.Helper()
	sent := 0
	for timeouts := 0; timeouts < 3; {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := c.SendBytesContext(ctx, []byte{byte(sent)})
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			timeouts++
		case err == nil:
			sent++
			timeouts = 0
		default:
			require.NoError(t, err, "filling the buffer")
		}
	}
	return sent
}

// blocked runs f in a goroutine and checks that it has not returned after a
// moment, i.e. that it is blocked.
func blocked(t *testing.T, what string, f func() error) <-chan error {
	t.Helper()
	done := goSend(f)
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) but should block", what, err)
	case <-time.After(50 * time.Millisecond):
	}
	return done
}

func TestCloseWakesBlocked(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			full, _ := tr.pair(t)  // nobody reads its peer
			_, empty := tr.pair(t) // nobody writes to it
			fill(t, full)
			send := blocked(t, "Send on a full connection", func() error { return full.Send("x") })
			recv := blocked(t, "Recv on an empty connection", func() error { var v any; return empty.Recv(&v) })
			poll := blocked(t, "Poll(-1) on an empty connection", func() error { _, err := empty.Poll(-1); return err })
			pollCtx := blocked(t, "PollContext on an empty connection", func() error {
				_, err := empty.PollContext(context.Background())
				return err
			})
			go full.Close()
			go empty.Close()
			for what, done := range map[string]<-chan error{"Send": send, "Recv": recv, "Poll": poll, "PollContext": pollCtx} {
				select {
				case err := <-done:
					assert.ErrorIs(t, err, conn.ErrClosed, "a blocked %s woken by Close", what)
				case <-time.After(5 * time.Second):
					t.Fatalf("Close did not wake a blocked %s", what)
				}
			}
		})
	}
}

func TestCloseWakesAllOnOneConn(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer b.Close()
	fill(t, a)
	send := blocked(t, "Send", func() error { return a.SendBytes([]byte("x")) })
	recv := blocked(t, "RecvBytes", func() error { _, err := a.RecvBytes(); return err })
	poll := blocked(t, "Poll", func() error { _, err := a.Poll(time.Hour); return err })
	require.NoError(t, a.Close())
	for what, done := range map[string]<-chan error{"Send": send, "Recv": recv, "Poll": poll} {
		assert.ErrorIs(t, waitErr(t, done, what), conn.ErrClosed, "%s woken by Close", what)
	}
}

func TestPeerClosed(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		require.NoError(t, rx.Close())
		err := tx.Send("anyone there?")
		assert.ErrorIs(t, err, conn.ErrPeerClosed, "Send to a closed peer")
		assert.NotErrorIs(t, err, conn.ErrClosed, "this end is not closed")
	})
}

func TestContext(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expiring := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("recv consumes nothing", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			var s string
			require.NoError(t, tx.Send("first"))
			assert.ErrorIs(t, rx.RecvContext(cancelled, &s), context.Canceled, "a cancelled ctx, a message waiting")
			_, err := rx.RecvBytesContext(cancelled)
			assert.ErrorIs(t, err, context.Canceled, "RecvBytesContext")
			require.NoError(t, rx.Recv(&s), "the message is still there")
			assert.Equal(t, "first", s)

			assert.ErrorIs(t, rx.RecvContext(expiring(), &s), context.DeadlineExceeded, "nothing arrives in time")
			_, err = rx.RecvBytesContext(expiring())
			assert.ErrorIs(t, err, context.DeadlineExceeded, "RecvBytesContext")
			require.NoError(t, tx.Send("second"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, rx.RecvContext(ctx, &s), "an expired ctx leaves no deadline behind")
			assert.Equal(t, "second", s)
		})
	})

	t.Run("recv cancelled while blocked", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			ctx, cancel := context.WithCancel(context.Background())
			done := blocked(t, "RecvContext", func() error { var v any; return rx.RecvContext(ctx, &v) })
			cancel()
			assert.ErrorIs(t, waitErr(t, done, "RecvContext"), context.Canceled)
			require.NoError(t, tx.Send(7))
			var n int
			require.NoError(t, rx.Recv(&n), "usable after a cancelled receive")
			assert.Equal(t, 7, n)
		})
	})

	t.Run("poll", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			ok, err := rx.PollContext(cancelled)
			assert.ErrorIs(t, err, context.Canceled)
			assert.False(t, ok)
			ok, err = rx.PollContext(expiring())
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.False(t, ok)
			require.NoError(t, tx.Send(1))
			ok, err = rx.PollContext(context.Background())
			require.NoError(t, err)
			assert.True(t, ok, "a message is waiting")
			ok, err = rx.PollContext(expiring())
			require.NoError(t, err)
			assert.True(t, ok, "Poll consumes nothing")
		})
	})

	t.Run("send writes nothing", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			assert.ErrorIs(t, tx.SendContext(cancelled, "x"), context.Canceled)
			assert.ErrorIs(t, tx.SendBytesContext(cancelled, []byte("x")), context.Canceled)
			ok, err := rx.Poll(0)
			require.NoError(t, err)
			assert.False(t, ok, "a cancelled Send writes nothing")
		})
	})

	t.Run("send on a full connection", func(t *testing.T) {
		eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
			n := fill(t, tx)
			require.Greater(t, n, 0)
			assert.ErrorIs(t, tx.SendContext(expiring(), "never"), context.DeadlineExceeded)
			assert.ErrorIs(t, tx.SendBytesContext(expiring(), []byte("never")), context.DeadlineExceeded)
			done := goSend(func() error { return tx.SendBytes([]byte("after")) })
			for i := range n {
				got, err := rx.RecvBytes()
				require.NoError(t, err, "filler frame %d", i)
				require.Equal(t, []byte{byte(i)}, got, "filler frame %d", i)
			}
			got, err := rx.RecvBytes()
			require.NoError(t, err)
			assert.Equal(t, "after", string(got), "the timed-out sends left nothing on the wire")
			require.NoError(t, waitErr(t, done, "SendBytes"))
		})
	})
}

func TestPoll(t *testing.T) {
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		ok, err := rx.Poll(0)
		require.NoError(t, err)
		assert.False(t, ok, "Poll(0) with nothing waiting")
		ok, err = rx.Poll(20 * time.Millisecond)
		require.NoError(t, err)
		assert.False(t, ok, "Poll(20ms) with nothing arriving")

		require.NoError(t, tx.Send("a"))
		for range 2 {
			ok, err = rx.Poll(0)
			require.NoError(t, err)
			assert.True(t, ok, "Poll(0) with a message waiting, and it consumes nothing")
		}
		var s string
		require.NoError(t, rx.Recv(&s))
		ok, err = rx.Poll(0)
		require.NoError(t, err)
		assert.False(t, ok, "Poll(0) after the message was received")

		for _, d := range []time.Duration{time.Minute, -1} {
			done := goSend(func() error {
				// Poll waits, then the message comes.
				for deadline := time.Now().Add(10 * time.Second); testproc.BlockedIn("conn.(*Conn).Poll") == 0; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						return errors.New("Poll did not wait")
					}
				}
				return tx.Send("later")
			})
			ok, err = rx.Poll(d)
			require.NoError(t, err)
			assert.True(t, ok, "Poll(%v) returns when a message arrives", d)
			require.NoError(t, waitErr(t, done, "Send"))
			require.NoError(t, rx.Recv(&s))
		}

		require.NoError(t, tx.Close())
		for _, d := range []time.Duration{0, time.Minute, -1} {
			ok, err = rx.Poll(d)
			require.NoError(t, err)
			assert.True(t, ok, "Poll(%v) is true when the peer has closed", d)
		}
		assert.ErrorIs(t, rx.Recv(&s), io.EOF, "and Recv then returns io.EOF")
	})
}

func TestConcurrentSenders(t *testing.T) {
	const senders, each = 8, 40
	sizes := []int{0, 10, 3000, 5000, 70000} // some beyond PIPE_BUF and a pipe's capacity
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for s := range senders {
			wg.Go(func() {
				for i := range each {
					p := binary.BigEndian.AppendUint32(nil, uint32(s<<16|i))
					p = append(p, pattern(sizes[(s+i)%len(sizes)], byte(s*31+i))...)
					var err error
					if i%2 == 0 {
						err = tx.SendBytes(p)
					} else {
						err = tx.Send(p)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		next := make([]int, senders)
		for range senders * each {
			p, err := rx.RecvBytes()
			require.NoError(t, err)
			require.GreaterOrEqual(t, len(p), 4, "a frame too short to be one of ours")
			if p[0] != 0 { // a msgpack bin header: Send encoded a []byte
				var inner []byte
				require.NoError(t, msgpack.Unmarshal(p, &inner), "a frame sent with Send decodes whole")
				p = inner
			}
			id := binary.BigEndian.Uint32(p)
			s, i := int(id>>16), int(id&0xffff)
			require.Less(t, s, senders, "sender id in a frame")
			require.Equal(t, next[s], i, "sender %d's frames arrive in order, whole", s)
			next[s]++
			want := pattern(sizes[(s+i)%len(sizes)], byte(s*31+i))
			require.True(t, bytes.Equal(want, p[4:]), "frame %d of sender %d is intact", i, s)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "a sender")
		}
	})
}

func TestConcurrentReceivers(t *testing.T) {
	const receivers, total = 4, 400
	eachTransport(t, func(t *testing.T, tx, rx *conn.Conn) {
		var mu sync.Mutex
		seen := make(map[int]int)
		var wg sync.WaitGroup
		errs := make(chan error, receivers)
		for range receivers {
			wg.Go(func() {
				for {
					var m struct {
						N    int
						Body []byte
					}
					err := rx.Recv(&m)
					if errors.Is(err, io.EOF) {
						return
					}
					if err == nil && !bytes.Equal(m.Body, pattern(m.N%7*1000, byte(m.N))) {
						err = fmt.Errorf("message %d arrived damaged", m.N)
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seen[m.N]++
					mu.Unlock()
				}
			})
		}
		for n := range total {
			require.NoError(t, tx.Send(struct {
				N    int
				Body []byte
			}{n, pattern(n%7*1000, byte(n))}))
		}
		require.NoError(t, tx.Close())
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "a receiver")
		}
		require.Len(t, seen, total, "every message is received")
		for n, k := range seen {
			require.Equal(t, 1, k, "message %d is received exactly once", n)
		}
	})
}

func TestNewRejects(t *testing.T) {
	testproc.CheckFDs(t)
	f, err := os.Open(os.Args[0])
	require.NoError(t, err)
	defer f.Close()
	_, err = conn.New(f)
	assert.Error(t, err, "a regular file is neither a pipe nor a socket")
}

func TestNewLeavesFileToCaller(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	c, err := conn.New(w)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = w.Write(frame([]byte("still open")))
	require.NoError(t, err, "the file given to New stays open after the Conn is closed")
	require.NoError(t, w.Close())
	rc, err := conn.New(r)
	require.NoError(t, err)
	defer rc.Close()
	got, err := rc.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "still open", string(got))
	assert.True(t, rc.Readable())
	assert.False(t, rc.Writable(), "the read end of a pipe")
}
