package pool_test

import (
	"context"
	"testing"

	"github.com/mproc-go/mproc/pool"
)

// spin is a CPU-bound task: n rounds of a xorshift generator.
var spin = pool.Register("spin", func(ctx context.Context, n int) (uint64, error) {
	x := uint64(n) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x, nil
})

// BenchmarkMapTiny maps 100k tiny tasks (x*x) on two workers, chunks by
// Python's rule; the figure is tasks/s.
func BenchmarkMapTiny(b *testing.B) {
	p, err := pool.New(context.Background(), square, pool.Config{Workers: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	in := ints(100_000)
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Map(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkApply measures one task's round trip through a worker.
func BenchmarkApply(b *testing.B) {
	p, err := pool.New(context.Background(), square, pool.Config{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	for b.Loop() {
		if _, err := p.Apply(context.Background(), 3); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapCPU maps 1000 CPU-bound tasks of about 1 ms on 1 and 2
// workers: compare the times for the speedup.
func BenchmarkMapCPU(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(map[int]string{1: "workers=1", 2: "workers=2"}[workers], func(b *testing.B) {
			p, err := pool.New(context.Background(), spin, pool.Config{Workers: workers, ChunkSize: 125})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Terminate()
			in := make([]int, 1000)
			for i := range in {
				in[i] = 1_000_000 // about 1 ms here
			}
			for b.Loop() {
				if _, err := p.Map(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkImapTiny streams 100k tiny tasks (x*x) from an iter.Seq on two
// workers, chunks of 1000; the figure is tasks/s.
func BenchmarkImapTiny(b *testing.B) {
	p, err := pool.New(context.Background(), square, pool.Config{Workers: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	const n = 100_000
	in := func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
	sp := p.WithChunkSize(1000)
	for b.Loop() {
		for _, err := range sp.Imap(context.Background(), in) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tasks/s")
}
