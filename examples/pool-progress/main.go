// Command pool-progress runs a long pool.Map and draws its progress on the
// terminal with Config.Progress, then prints a summary.
//
//	go run ./examples/pool-progress
//	go run ./examples/pool-progress -n 2000 -workers 4 -chunk 10
//
// Each task "renders a tile": a few milliseconds of arithmetic whose
// length varies with the input, so that workers finish chunks in no
// particular order. The bar advances a chunk at a time (Progress is called
// as each chunk finishes); the summary checks that every tile came back.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"

	"github.com/mproc-go/mproc/pool"
	"github.com/mproc-go/mproc/process"
)

// tile is the output of one task.
type tile struct {
	Index int
	Sum   uint64
	Pid   int
}

// render is the task: about 2 to 10 ms of arithmetic.
var render = pool.Register("pool-progress-render", func(ctx context.Context, i int) (tile, error) {
	n := 1_500_000 * (1 + i%4)
	x := uint64(i) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return tile{Index: i, Sum: x, Pid: os.Getpid()}, nil
})

func main() {
	process.Main() // in a worker: serves tasks, then exits
	n := flag.Int("n", 500, "number of tiles")
	workers := flag.Int("workers", 0, "worker processes (0: one per CPU)")
	chunk := flag.Int("chunk", 5, "tiles per chunk (0: Python's rule, about 4 chunks per worker)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	bar := newBar(os.Stdout, 40)
	p, err := pool.New(ctx, render, pool.Config{Workers: *workers, ChunkSize: *chunk, Progress: bar.draw})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Terminate()

	in := make([]int, *n)
	for i := range in {
		in[i] = i
	}
	start := time.Now()
	out, err := p.Map(ctx, in)
	elapsed := time.Since(start)
	fmt.Println()
	if err != nil {
		log.Fatalf("map: %v", err)
	}

	pids := make(map[int]int)
	for i, t := range out {
		if t.Index != i {
			log.Fatalf("tile %d came back as %d", i, t.Index)
		}
		pids[t.Pid]++
	}
	w := *workers
	if w <= 0 {
		w = runtime.NumCPU()
	}
	fmt.Printf("rendered %d tiles in %v on %d workers (%d processes served tasks), %.0f tiles/s\n",
		len(out), elapsed.Round(time.Millisecond), w, len(pids), float64(len(out))/elapsed.Seconds())
}

// bar draws a progress bar on one line, redrawn in place with \r.
type bar struct {
	w     io.Writer
	width int
	start time.Time
	last  string
}

func newBar(w io.Writer, width int) *bar {
	return &bar{w: w, width: width, start: time.Now()}
}

// draw is the pool's Progress callback: the pool serializes its calls.
func (b *bar) draw(done, total int) {
	if total == 0 {
		return
	}
	full := b.width * done / total
	line := fmt.Sprintf("\r[%s%s] %3d%% %d/%d  %v",
		strings.Repeat("#", full), strings.Repeat(".", b.width-full),
		100*done/total, done, total, time.Since(b.start).Round(100*time.Millisecond))
	if line != b.last {
		io.WriteString(b.w, line)
		b.last = line
	}
}
