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
	// bench-produce: args size, n, sync. Puts n items (the small struct, or
	// size bytes), then one sentinel, and closes.
	testproc.Register("bench-produce", func() {
		args := testproc.Args()
		size, _ := strconv.Atoi(args[0])
		n, _ := strconv.Atoi(args[1])
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
			testproc.Check(q.Put(ctx, payload), "put")
		}
		testproc.Check(q.Put(ctx, []byte{}), "put")
		testproc.Check(q.Close(), "close")
	})
}

// BenchmarkQueue: a child process puts b.N items, this process gets them.
func BenchmarkQueue(b *testing.B) {
	for _, c := range []struct {
		name          string
		size, maxsize int
		sync          bool
	}{
		{"small", 0, 0, false},
		{"small-sync", 0, 0, true},
		{"small-bounded1000", 0, 1000, false},
		{"1MiB-bounded8", 1 << 20, 8, false},
		{"1MiB", 1 << 20, 0, false},
		{"1MiB-sync", 1 << 20, 0, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.size == 0 {
				benchQueue[item](b, c.size, c.maxsize, c.sync, func(v item) bool { return v.I < 0 })
			} else {
				b.SetBytes(int64(c.size))
				benchQueue[[]byte](b, c.size, c.maxsize, c.sync, func(v []byte) bool { return len(v) == 0 })
			}
		})
	}
}

func benchQueue[T any](b *testing.B, size, maxsize int, sync bool, last func(T) bool) {
	var q *Queue[T]
	var err error
	if sync {
		q, err = NewSync[T](Hooks{})
	} else {
		q, err = New[T](maxsize, Hooks{})
	}
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	cmd := testproc.Command(b, "bench-produce", strconv.Itoa(size), strconv.Itoa(b.N))
	if err := share.Add(cmd, "q", kind, q.Files()...); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cpu0 := cpuTime()
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for {
		v, err := q.Get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if last(v) {
			break
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if err := testproc.WaitTimeout(cmd, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	// CPU per item, which load elsewhere on the machine disturbs less than
	// the wall clock.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "get-cpu-ns/op")
	put := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	b.ReportMetric(float64(put.Nanoseconds())/float64(b.N), "put-cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
