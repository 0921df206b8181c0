package conn_test

// In-process benchmarks of Conn over a pipe and a socketpair, each next to
// a hand-written framer over the same kind of descriptor (sub-benchmark
// "hand"), the framed limit of bench/items.go: same header, reused buffer
// and encoder, one write per frame (header and payload in two writes over
// 64 KiB), a 64 KiB bufio.Reader, io.ReadFull of header then body,
// msgpack.Unmarshal. allocs/op is the receiver's and the sender's together
// (the sender allocates nothing). Compare with benchstat, e.g.
//
//	go test -run '^$' -bench . -benchmem -count 6 ./conn | tee new.txt
//
// The two-process figures, with ratios, come from `go run ./bench conn`.
// Names here start with bm so as not to collide with the tests' helpers.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/fd"
)

// bmMsg is the small struct of the benchmarks: 61 bytes of msgpack.
type bmMsg struct {
	ID    int64    `msgpack:"id"`
	Kind  string   `msgpack:"kind"`
	Score float64  `msgpack:"score"`
	Tags  []string `msgpack:"tags"`
	OK    bool     `msgpack:"ok"`
}

func bmSample() bmMsg {
	return bmMsg{ID: 123456, Kind: "sample", Score: 3.25, Tags: []string{"alpha", "beta"}, OK: true}
}

// bmEnd is one side of a link, a Conn or the hand-written framer.
type bmEnd interface {
	send(v any) error
	recv(v any) error
	sendBytes(p []byte) error
	recvBytes() ([]byte, error)
}

type bmConnEnd struct{ in, out *conn.Conn }

func (e bmConnEnd) send(v any) error           { return e.out.Send(v) }
func (e bmConnEnd) recv(v any) error           { return e.in.Recv(v) }
func (e bmConnEnd) sendBytes(p []byte) error   { return e.out.SendBytes(p) }
func (e bmConnEnd) recvBytes() ([]byte, error) { return e.in.RecvBytes() }

type bmHandEnd struct {
	in, out *os.File
	br      *bufio.Reader // over in
	wbuf    bytes.Buffer
	enc     *msgpack.Encoder
	rbuf    []byte
	hdr     [4]byte // read side
	whdr    [4]byte // write side
}

func newBmHandEnd(in, out *os.File) *bmHandEnd {
	e := &bmHandEnd{in: in, out: out, br: bufio.NewReaderSize(in, 64<<10)}
	e.enc = msgpack.NewEncoder(&e.wbuf)
	return e
}

func (e *bmHandEnd) send(v any) error {
	e.wbuf.Reset()
	e.wbuf.Write([]byte{0, 0, 0, 0})
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	b := e.wbuf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := e.out.Write(b)
	return err
}

func (e *bmHandEnd) sendBytes(p []byte) error {
	hdr := binary.BigEndian.AppendUint32(e.whdr[:0], uint32(len(p)))
	if len(p) > 64<<10 {
		// Copying a big payload costs more than a second write, and a
		// write this large is not atomic anyway.
		if _, err := e.out.Write(hdr); err != nil {
			return err
		}
		_, err := e.out.Write(p)
		return err
	}
	e.wbuf.Reset()
	e.wbuf.Write(hdr)
	e.wbuf.Write(p)
	_, err := e.out.Write(e.wbuf.Bytes())
	return err
}

func (e *bmHandEnd) readFrame(buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(e.br, e.hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(e.hdr[:]))
	if n > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(e.br, buf)
	return buf, err
}

func (e *bmHandEnd) recv(v any) error {
	b, err := e.readFrame(e.rbuf)
	if err != nil {
		return err
	}
	e.rbuf = b
	return msgpack.Unmarshal(b, v)
}

// recvBytes returns a fresh slice, as RecvBytes does.
func (e *bmHandEnd) recvBytes() ([]byte, error) { return e.readFrame(nil) }

// bmFiles are the descriptors of a link between a and b: a writes aOut,
// b reads bIn; b writes bOut, a reads aIn. A socketpair has one descriptor
// per side.
type bmFiles struct{ aIn, aOut, bIn, bOut *os.File }

var bmTransports = []struct {
	name  string
	files func(b *testing.B) bmFiles
}{
	{"pipe", func(b *testing.B) bmFiles {
		r1, w1, err := fd.Pipe("bench")
		if err != nil {
			b.Fatal(err)
		}
		r2, w2, err := fd.Pipe("bench")
		if err != nil {
			b.Fatal(err)
		}
		return bmFiles{aIn: r2, aOut: w1, bIn: r1, bOut: w2}
	}},
	{"socketpair", func(b *testing.B) bmFiles {
		sa, sb, err := fd.Socketpair(unix.SOCK_STREAM, "bench")
		if err != nil {
			b.Fatal(err)
		}
		return bmFiles{aIn: sa, aOut: sa, bIn: sb, bOut: sb}
	}},
}

// bmLinks runs f over every transport, with Conns ("conn") and with the
// hand-written framer ("hand").
func bmLinks(b *testing.B, f func(b *testing.B, a, z bmEnd)) {
	for _, tr := range bmTransports {
		b.Run(tr.name+"/conn", func(b *testing.B) {
			fs := tr.files(b)
			wrap := func(in, out *os.File) bmConnEnd {
				c := map[*os.File]*conn.Conn{}
				for _, f := range []*os.File{in, out} {
					if c[f] != nil {
						continue
					}
					cn, err := conn.New(f)
					if err != nil {
						b.Fatal(err)
					}
					f.Close()
					b.Cleanup(func() { cn.Close() })
					c[f] = cn
				}
				return bmConnEnd{in: c[in], out: c[out]}
			}
			f(b, wrap(fs.aIn, fs.aOut), wrap(fs.bIn, fs.bOut))
		})
		b.Run(tr.name+"/hand", func(b *testing.B) {
			fs := tr.files(b)
			b.Cleanup(func() {
				for _, f := range []*os.File{fs.aIn, fs.aOut, fs.bIn, fs.bOut} {
					f.Close()
				}
			})
			f(b, newBmHandEnd(fs.aIn, fs.aOut), newBmHandEnd(fs.bIn, fs.bOut))
		})
	}
}

// bmOneWay sends b.N messages from a goroutine and receives them here.
func bmOneWay(b *testing.B, send, recv func() error) {
	b.ReportAllocs()
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for range b.N {
			if err := send(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := recv(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSendRecv: one-way small structs (msgpack both ends).
func BenchmarkSendRecv(b *testing.B) {
	bmLinks(b, func(b *testing.B, a, z bmEnd) {
		m := bmSample()
		enc, _ := msgpack.Marshal(&m)
		b.SetBytes(int64(conn.HeaderLen(len(enc)) + len(enc)))
		var got bmMsg
		bmOneWay(b, func() error { return a.send(&m) }, func() error { return z.recv(&got) })
	})
}

// bmItem is the item of issue 8's measurements (bench/items.go).
type bmItem struct {
	ID     int       `msgpack:"id"`
	Name   string    `msgpack:"name"`
	Values []float64 `msgpack:"values"`
}

// BenchmarkRecvItem: one-way items, each decoded into a fresh value, as a
// queue's Get does: allocs/op is what the value needs (its Name and its
// Values) plus what the receive path adds.
func BenchmarkRecvItem(b *testing.B) {
	bmLinks(b, func(b *testing.B, a, z bmEnd) {
		m := bmItem{ID: 7, Name: "task-7", Values: []float64{1.5, 2.5, 3.5}}
		var got bmItem
		bmOneWay(b, func() error { return a.send(&m) }, func() error {
			got = bmItem{}
			return z.recv(&got)
		})
	})
}

// BenchmarkSendRecvBytes: one-way raw payloads.
func BenchmarkSendRecvBytes(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			bmLinks(b, func(b *testing.B, a, z bmEnd) {
				p := make([]byte, size.n)
				b.SetBytes(int64(size.n))
				bmOneWay(b, func() error { return a.sendBytes(p) }, func() error {
					_, err := z.recvBytes()
					return err
				})
			})
		})
	}
}

// BenchmarkRoundTrip: a small struct there and back (an echo goroutine).
func BenchmarkRoundTrip(b *testing.B) {
	bmLinks(b, func(b *testing.B, a, z bmEnd) {
		b.ReportAllocs()
		done := make(chan error, 1)
		go func() {
			var m bmMsg
			for range b.N {
				if err := z.recv(&m); err != nil {
					done <- err
					return
				}
				if err := z.send(&m); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		m := bmSample()
		b.ResetTimer()
		for range b.N {
			if err := a.send(&m); err != nil {
				b.Fatal(err)
			}
			if err := a.recv(&m); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkReadFrame: the frame parser alone, from memory, reusing the
// buffer.
func BenchmarkReadFrame(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"64B", 64}, {"1KiB", 1 << 10}, {"1MiB", 1 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			frame := append(conn.AppendHeader(nil, size.n), make([]byte, size.n)...)
			r := bytes.NewReader(frame)
			buf := make([]byte, size.n)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(frame)
				if _, err := conn.ReadFrame(r, 0, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
