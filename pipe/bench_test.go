package pipe_test

// In-process benchmarks of the pairs pipe makes, as a user gets them:
//
//	go test -run '^$' -bench . -benchmem ./pipe
//
// conn's benchmarks compare Conn with a hand-written framer; the
// two-process figures come from `go run ./bench conn`. Names here start
// with bm so as not to collide with the tests' helpers.

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
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

// bmLink is a connection both ways between a and z: a sends on aOut and z
// receives on zIn, z sends on zOut and a receives on aIn. A Duplex pair
// uses one Conn per side, a Simplex link two pipes.
type bmLink struct{ aIn, aOut, zIn, zOut *conn.Conn }

var bmKinds = []struct {
	name string
	link func(b *testing.B) bmLink
}{
	{"simplex", func(b *testing.B) bmLink {
		r1, w1 := bmSimplex(b)
		r2, w2 := bmSimplex(b)
		return bmLink{aIn: r2, aOut: w1, zIn: r1, zOut: w2}
	}},
	{"duplex", func(b *testing.B) bmLink {
		x, y, err := pipe.Duplex()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { x.Close(); y.Close() })
		return bmLink{aIn: x, aOut: x, zIn: y, zOut: y}
	}},
}

func bmSimplex(b *testing.B) (r, w *conn.Conn) {
	r, w, err := pipe.Simplex()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// bmEach runs f once per kind of pair.
func bmEach(b *testing.B, f func(b *testing.B, l bmLink)) {
	for _, k := range bmKinds {
		b.Run(k.name, func(b *testing.B) { f(b, k.link(b)) })
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

// BenchmarkNew: making and closing a pair.
func BenchmarkNew(b *testing.B) {
	for _, k := range []struct {
		name string
		make func() (*conn.Conn, *conn.Conn, error)
	}{{"simplex", pipe.Simplex}, {"duplex", pipe.Duplex}} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x, y, err := k.make()
				if err != nil {
					b.Fatal(err)
				}
				x.Close()
				y.Close()
			}
		})
	}
}

// BenchmarkSendRecv: one-way small structs, Send then Recv.
func BenchmarkSendRecv(b *testing.B) {
	bmEach(b, func(b *testing.B, l bmLink) {
		m := bmSample()
		var got bmMsg
		enc, err := msgpack.Marshal(&m)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(conn.HeaderLen(len(enc)) + len(enc)))
		bmOneWay(b, func() error { return l.aOut.Send(&m) }, func() error { return l.zIn.Recv(&got) })
	})
}

// BenchmarkSendRecvBytes: one-way raw payloads, SendBytes then RecvBytes.
func BenchmarkSendRecvBytes(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			bmEach(b, func(b *testing.B, l bmLink) {
				p := make([]byte, size.n)
				b.SetBytes(int64(size.n))
				bmOneWay(b, func() error { return l.aOut.SendBytes(p) }, func() error {
					_, err := l.zIn.RecvBytes()
					return err
				})
			})
		})
	}
}

// BenchmarkRoundTrip: a small struct there and back (an echo goroutine).
func BenchmarkRoundTrip(b *testing.B) {
	bmEach(b, func(b *testing.B, l bmLink) {
		b.ReportAllocs()
		done := make(chan error, 1)
		go func() {
			var m bmMsg
			for range b.N {
				if err := l.zIn.Recv(&m); err != nil {
					done <- err
					return
				}
				if err := l.zOut.Send(&m); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		m := bmSample()
		b.ResetTimer()
		for range b.N {
			if err := l.aOut.Send(&m); err != nil {
				b.Fatal(err)
			}
			if err := l.aIn.Recv(&m); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
}
