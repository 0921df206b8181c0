package conn_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/mproc-go/mproc/conn"
)

// FuzzReadFrame feeds arbitrary bytes to ReadFrame: it must not panic,
// must not allocate more than about twice the input plus 1 MiB whatever
// the header claims, must consume exactly the frame it returns, and what
// it parses must round-trip through AppendHeader.
func FuzzReadFrame(f *testing.F) {
	long := func(n uint64, payload string) []byte {
		b := binary.BigEndian.AppendUint32(nil, 0xffffffff)
		return append(binary.BigEndian.AppendUint64(b, n), payload...)
	}
	short := func(n uint32, payload string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), payload...)
	}
	seeds := [][]byte{
		nil,
		{0},
		short(0, ""),
		short(5, "hello"),
		short(5, "hello-and-a-second-frame"),
		append(short(3, "abc"), short(3, "def")...),
		short(5, "hel"),                   // truncated payload
		{0, 0, 0},                         // truncated header
		short(0x7fffffff, "lying"),        // the largest short length
		short(1<<30, "lying"),             // the default maximum
		short(1<<30+1, "lying"),           // over it
		short(0xffffffff, ""),             // -1 and nothing after
		short(0xfffffffe, "x"),            // -2
		short(0x80000000, "x"),            // MinInt32
		long(5, "hello"),                  // long header, small length
		long(0, ""),                       // long header, empty payload
		long(0x80000000, "lying"),         // long header, > 0x7fffffff
		long(1<<62, "lying"),              // huge
		long(1<<63, "lying"),              // over MaxInt64
		long(0xffffffffffffffff, "x"),     // all ones
		long(5, "he"),                     // truncated long payload
		{0xff, 0xff, 0xff, 0xff, 0, 0, 0}, // truncated long header
	}
	for _, s := range seeds {
		f.Add(s, int64(0))
		f.Add(s, int64(4))
	}
	f.Add(short(1<<20+100, string(pattern(1<<12, 1))), int64(1<<40))
	f.Add(long(1<<40, string(pattern(1<<12, 2))), int64(1<<41))

	f.Fuzz(func(t *testing.T, data []byte, max int64) {
		effMax := max
		if effMax <= 0 {
			effMax = conn.DefaultMaxMessageSize
		}
		r := bytes.NewReader(data)
		var p []byte
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err = conn.ReadFrame(r, max, nil)
		runtime.ReadMemStats(&after)
		if alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(2*len(data))+1<<20+allocSlack; alloc > limit {
			t.Fatalf("ReadFrame of %d bytes allocated %d bytes, more than %d", len(data), alloc, limit)
		}

		// The same input read one byte at a time gives the same result.
		p1, err1 := conn.ReadFrame(iotest.OneByteReader(bytes.NewReader(data)), max, nil)
		if !bytes.Equal(p, p1) || errClass(err) != errClass(err1) {
			t.Fatalf("whole read: %d bytes, %v; one byte at a time: %d bytes, %v", len(p), err, len(p1), err1)
		}

		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				if len(data) != 0 {
					t.Fatalf("io.EOF after %d bytes: EOF is only for an empty stream", len(data))
				}
			case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, conn.ErrProtocol), errors.Is(err, conn.ErrMessageTooLarge):
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}

		if int64(len(p)) > effMax {
			t.Fatalf("payload of %d bytes over the maximum %d", len(p), effMax)
		}
		used := len(data) - r.Len()
		hlen := used - len(p)
		switch {
		case hlen == 4:
		case hlen == 12 && bytes.Equal(data[:4], []byte{0xff, 0xff, 0xff, 0xff}):
		default:
			t.Fatalf("consumed %d bytes for a %d-byte payload: not one frame", used, len(p))
		}
		if !bytes.Equal(p, data[hlen:used]) {
			t.Fatal("the payload is not the bytes after the header")
		}

		// Round trip: the payload framed again parses back to itself.
		again := append(conn.AppendHeader(nil, len(p)), p...)
		if len(again) != conn.HeaderLen(len(p))+len(p) {
			t.Fatalf("AppendHeader wrote %d bytes, HeaderLen says %d", len(again)-len(p), conn.HeaderLen(len(p)))
		}
		r2 := bytes.NewReader(again)
		p2, err := conn.ReadFrame(r2, max, nil)
		if err != nil || !bytes.Equal(p, p2) || r2.Len() != 0 {
			t.Fatalf("round trip of a %d-byte payload: %d bytes back, %d left, %v", len(p), len(p2), r2.Len(), err)
		}
	})
}

// errClass reduces an error to the sentinel it wraps.
func errClass(err error) error {
	for _, e := range []error{io.ErrUnexpectedEOF, io.EOF, conn.ErrProtocol, conn.ErrMessageTooLarge} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

// FuzzRecvBytes feeds arbitrary bytes through a socketpair to a Conn,
// which reads ahead into its buffer: it must return the same frames, then
// the same error, as ReadFrame reading the bytes exactly, frame by frame.
func FuzzRecvBytes(f *testing.F) {
	short := func(n uint32, payload string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), payload...)
	}
	f.Add([]byte{}, int64(0))
	f.Add(append(short(3, "abc"), short(0, "")...), int64(0))
	f.Add(append(short(3, "abc"), short(5, "de")...), int64(0))
	f.Add(append(short(3, "abc"), 0xff, 0xff, 0xff, 0xfe), int64(0))
	f.Add(append(short(3, "abc"), short(10, "0123456789")...), int64(4))
	f.Add(append(short(70000, string(pattern(70000, 1))), short(1, "x")...), int64(0))
	f.Add(append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'}, short(2, "ok")...), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, max int64) {
		fa, fb := socketpair(t)
		rx := newConn(t, fa)
		rx.SetMaxMessageSize(max)
		done := make(chan error, 1)
		go func() {
			_, err := fb.Write(data)
			fb.Close()
			done <- err
		}()
		r := bytes.NewReader(data)
		for i := 0; ; i++ {
			want, werr := conn.ReadFrame(r, max, nil)
			got, gerr := rx.RecvBytes()
			if errClass(werr) != errClass(gerr) || !bytes.Equal(want, got) {
				t.Fatalf("frame %d: ReadFrame %d bytes, %v; Conn %d bytes, %v", i, len(want), werr, len(got), gerr)
			}
			if werr != nil {
				break
			}
		}
		rx.Close() // the writer may still be blocked on what nobody reads
		if err := <-done; err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
	})
}
