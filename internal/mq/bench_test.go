package mq

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
)

func init() {
	// produce SIZE N: put N items (item{I: i} when SIZE is 0, else SIZE
	// bytes whose first byte is i), then a last one (I -1, or empty), and
	// close. With MQ_PRODUCER_PROFILE set, write a CPU profile there.
	testproc.Register("produce", func() {
		size, n := argInt(0), argInt(1)
		if p := os.Getenv("MQ_PRODUCER_PROFILE"); p != "" {
			f, err := os.Create(p)
			testproc.Check(err, "profile")
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		ctx := context.Background()
		if size == 0 {
			q := inherit[item]("q", Hooks{})
			for i := 0; i < n; i++ {
				testproc.Check(q.Put(ctx, item{P: 1, I: i, S: "sample"}), "put")
			}
			testproc.Check(q.Put(ctx, item{I: -1}), "put")
			testproc.Check(q.Close(), "close")
			return
		}
		q := inherit[[]byte]("q", Hooks{})
		payload := make([]byte, size)
		for i := 0; i < n; i++ {
			payload[0] = byte(i)
			testproc.Check(q.Put(ctx, payload), "put")
		}
		testproc.Check(q.Put(ctx, []byte{}), "put")
		testproc.Check(q.Close(), "close")
	})
}

// streamCase is one kind of stream: items of size bytes (0: the small
// struct) through a queue (sync: NewSync).
type streamCase struct {
	name          string
	size, maxsize int
	sync          bool
}

var streamCases = []streamCase{
	{"small", 0, 0, false},
	{"small-sync", 0, 0, true},
	{"small-bounded1000", 0, 1000, false},
	{"1MiB-bounded8", 1 << 20, 8, false},
	{"1MiB", 1 << 20, 0, false},
	{"1MiB-sync", 1 << 20, 0, true},
}

// stream has a child process put n items and gets them in this process,
// checking their order. It returns the CPU time this process spent and
// the child's.
func stream(tb testing.TB, c streamCase, n int, started func()) (get, put time.Duration) {
	if c.size == 0 {
		return streamT(tb, c, n, started, func(i int, v item) bool {
			if v.I >= 0 && v.I != i {
				tb.Fatalf("item %d arrived as number %d", v.I, i)
			}
			return v.I < 0
		})
	}
	return streamT(tb, c, n, started, func(i int, v []byte) bool {
		if len(v) > 0 && (len(v) != c.size || v[0] != byte(i)) {
			tb.Fatalf("item %d: %d bytes starting with %d", i, len(v), v[0])
		}
		return len(v) == 0
	})
}

func streamT[T any](tb testing.TB, c streamCase, n int, started func(), check func(int, T) bool) (get, put time.Duration) {
	var q *Queue[T]
	var err error
	if c.sync {
		q, err = NewSync[T](Hooks{})
	} else {
		q, err = New[T](c.maxsize, Hooks{})
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer q.Close()
	cmd := testproc.Command(tb, "produce", strconv.Itoa(c.size), strconv.Itoa(n))
	if err := share.Add(cmd, "q", kind, q.Files()...); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	cpu0 := cpuTime()
	started()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	for i := 0; ; i++ {
		v, err := q.Get(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if check(i, v) {
			if i != n {
				tb.Fatalf("%d items, want %d", i, n)
			}
			break
		}
	}
	get = cpuTime() - cpu0
	if err := testproc.WaitTimeout(cmd, 30*time.Second); err != nil {
		tb.Fatal(err)
	}
	return get, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// One producer process, one consumer: every kind of stream arrives whole
// and in order.
func TestStreamInOrder(t *testing.T) {
	for _, c := range streamCases {
		t.Run(c.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			n := 5000
			if c.size > 0 {
				n = 20
			}
			stream(t, c, n, func() {})
		})
	}
}

// BenchmarkStream: a child process puts b.N items, this process gets them.
// get-cpu-ns/op and put-cpu-ns/op are the CPU time of each side per item,
// which load elsewhere on the machine disturbs less than the wall clock.
// allocs/op and B/op are this process's, the consumer's: for the small
// item, 1 (its string, what the value needs; msgpack.Unmarshal of the same
// payload makes 2); a bounded queue adds the token calls'.
// MQ_PRODUCER_PROFILE=file profiles the producer.
func BenchmarkStream(b *testing.B) {
	for _, c := range streamCases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			if c.size > 0 {
				b.SetBytes(int64(c.size))
			}
			get, put := stream(b, c, b.N, b.ResetTimer)
			b.StopTimer()
			b.ReportMetric(float64(get.Nanoseconds())/float64(b.N), "get-cpu-ns/op")
			b.ReportMetric(float64(put.Nanoseconds())/float64(b.N), "put-cpu-ns/op")
		})
	}
}
