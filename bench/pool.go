package main

// The pool suite: pool.Pool next to Python's multiprocessing.Pool, with
// the same number of workers and the same chunksize, measured in the same
// run.
//
//   - tiny tasks: Map of 100,000 ints through x*x on one worker per CPU,
//     chunksize by Python's rule for map, ceil(n / (4 * workers)). Each
//     side repeats the Map on a warm pool for the measurement's duration;
//     the rate comes from the median Map. Start-up is not counted. Each run
//     measures the two sides ABBA (who goes first alternates).
//   - CPU-bound tasks: Map of 1,000 tasks of about 1 ms of arithmetic each
//     (a xorshift loop, its length calibrated on each side to 1 ms on one
//     core), chunksize 125, on 1 worker and on 2 workers, timed as
//     ABBA (1, 2, 2, 1 workers) so that a burst of load falls on both. The
//     speedup is t(1 worker) / t(2 workers), ideally min(2, CPUs). The
//     same tasks on 1 and 2 goroutines of the parent, interleaved with the
//     pool's Maps, are the control: what the machine gives two threads at
//     that moment, with no process or pipe in the way. On a machine that
//     others load, no pool reaches the ideal; the pool's speedup over the
//     control's is the part that is the pool's.
//   - start and stop: New with 2 workers (ready) then Terminate, next to
//     Pool(2) with a first map of one item (Python's Pool returns before
//     its workers are up), then terminate and join.

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mproc-go/mproc/pool"
)

//go:embed python/pool_bench.py
var poolPython []byte

const (
	poolTinyN     = 100_000
	poolCPUN      = 1000
	poolCPUChunk  = 125
	poolCPUTarget = time.Millisecond
)

func init() {
	register(suite{name: "pool", doc: "pool.Map of tiny and of CPU-bound tasks, and pool start-up, vs Python's multiprocessing.Pool", run: runPool})
}

var (
	poolSquare = pool.Register("bench-pool-square", func(ctx context.Context, x int) (int, error) {
		return x * x, nil
	})
	poolSpin = pool.Register("bench-pool-spin", func(ctx context.Context, n int) (uint64, error) {
		return spin(n), nil
	})
)

// spin is the CPU-bound task: n rounds of a xorshift generator.
func spin(n int) uint64 {
	x := uint64(n) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// spinSink receives spin's results in the parent, so that the compiler
// cannot drop work whose result is unused (it does, here: 3x faster).
var spinSink atomic.Uint64

// calibrateSpin returns the n for which spin(n) takes about d on one core:
// the fastest of several timings, the one least disturbed by load.
func calibrateSpin(d time.Duration) int {
	const n = 200_000
	best := time.Duration(math.MaxInt64)
	var sink uint64
	for range 20 {
		t0 := time.Now()
		sink += spin(n) // used: a discarded result lets the compiler drop work
		best = min(best, time.Since(t0))
	}
	spinSink.Add(sink)
	return max(1, int(float64(n)*float64(d)/float64(best)))
}

// spinGoroutines runs the CPU-bound tasks on n goroutines of this process,
// taking chunks of poolCPUChunk in turn: the control, what the machine
// gives two threads at the moment, with no process or pipe in the way.
func spinGoroutines(tasks []int, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(poolCPUChunk)) - poolCPUChunk
				if i >= len(tasks) {
					return
				}
				var sink uint64
				for _, t := range tasks[i:min(i+poolCPUChunk, len(tasks))] {
					sink += spin(t)
				}
				spinSink.Add(sink)
			}
		})
	}
	wg.Wait()
}

// poolRun is one run's figures.
type poolRun struct {
	tinyRate       float64 // tasks/s
	cpu1, cpu2     float64 // seconds for the CPU-bound Map on 1 and 2 workers
	ctl1, ctl2     float64 // seconds for the same tasks on 1 and 2 goroutines
	startStop      float64 // ns
	pyTinyRate     float64
	pyCPU1, pyCPU2 float64
	pyStartStop    float64
}

func (r poolRun) speedup() float64    { return r.cpu1 / r.cpu2 }
func (r poolRun) pySpeedup() float64  { return r.pyCPU1 / r.pyCPU2 }
func (r poolRun) ctlSpeedup() float64 { return r.ctl1 / r.ctl2 }

func runPool(cfg *config) error {
	workers := runtime.NumCPU()
	chunk := (poolTinyN + 4*workers - 1) / (4 * workers)
	iters := calibrateSpin(poolCPUTarget)
	var runs []poolRun
	for run := range cfg.count {
		var r poolRun
		var ours, theirs []float64
		mproc := func() error {
			rate, err := poolTiny(cfg, workers)
			ours = append(ours, rate)
			return err
		}
		python := func() error {
			res, err := poolPythonRun(cfg, workers, chunk, "tiny")
			theirs = append(theirs, res.TinyRate)
			return err
		}
		// Tiny tasks, ABBA; who goes first alternates from run to run.
		a, b := mproc, python
		if run%2 == 1 {
			a, b = python, mproc
		}
		for _, f := range []func() error{a, b, b, a} {
			if err := f(); err != nil {
				return err
			}
		}
		r.tinyRate, r.pyTinyRate = median(ours), median(theirs)
		if err := poolCPU(cfg, &r, iters); err != nil {
			return err
		}
		res, err := poolPythonRun(cfg, workers, chunk, "cpu,start")
		if err != nil {
			return err
		}
		r.pyCPU1, r.pyCPU2, r.pyStartStop = res.CPU[0], res.CPU[1], res.StartStop
		runs = append(runs, r)
	}
	return poolTable(cfg, runs, workers, chunk)
}

// poolTiny returns the rate of the median Map of tiny tasks, on a warm
// pool, over cfg.duration.
func poolTiny(cfg *config, workers int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := pool.New(ctx, poolSquare, pool.Config{Workers: workers})
	if err != nil {
		return 0, err
	}
	defer p.Terminate()
	in := make([]int, poolTinyN)
	for i := range in {
		in[i] = i
	}
	if _, err := p.Map(ctx, in[:1000]); err != nil { // warm up
		return 0, err
	}
	var times []float64
	deadline := time.Now().Add(cfg.duration)
	for len(times) < 3 || time.Now().Before(deadline) {
		t0 := time.Now()
		out, err := p.Map(ctx, in)
		if err != nil {
			return 0, err
		}
		times = append(times, float64(time.Since(t0)))
		if out[poolTinyN-1] != (poolTinyN-1)*(poolTinyN-1) {
			return 0, fmt.Errorf("pool: wrong result %d", out[poolTinyN-1])
		}
	}
	return poolTinyN / (median(times) / 1e9), nil
}

// poolCPU measures the CPU-bound Maps, their control, and start-up.
func poolCPU(cfg *config, r *poolRun, iters int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var pools [2]*pool.Pool[int, uint64]
	for i, n := range []int{1, 2} {
		var err error
		if pools[i], err = pool.New(ctx, poolSpin, pool.Config{Workers: n, ChunkSize: poolCPUChunk}); err != nil {
			return err
		}
		defer pools[i].Terminate()
	}
	tasks := make([]int, poolCPUN)
	for i := range tasks {
		tasks[i] = iters
	}
	var cpu, ctl [2][]float64
	for k, i := range []int{0, 1, 1, 0} {
		pooled := func() error {
			t0 := time.Now()
			if _, err := pools[i].Map(ctx, tasks); err != nil {
				return err
			}
			cpu[i] = append(cpu[i], time.Since(t0).Seconds())
			return nil
		}
		control := func() error {
			t0 := time.Now()
			spinGoroutines(tasks, i+1)
			ctl[i] = append(ctl[i], time.Since(t0).Seconds())
			return nil
		}
		first, second := pooled, control
		if k%2 == 1 {
			first, second = control, pooled
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
	}
	r.cpu1, r.cpu2 = median(cpu[0]), median(cpu[1])
	r.ctl1, r.ctl2 = median(ctl[0]), median(ctl[1])

	// Start and stop.
	var starts []float64
	for range 5 {
		t0 := time.Now()
		p, err := pool.New(ctx, poolSquare, pool.Config{Workers: 2})
		if err != nil {
			return err
		}
		p.Terminate()
		starts = append(starts, float64(time.Since(t0)))
	}
	r.startStop = median(starts)
	return nil
}

type poolPyResult struct {
	TinyRate  float64    `json:"tiny_rate"`
	CPU       [2]float64 `json:"cpu"`
	StartStop float64    `json:"start_stop_ns"`
}

func poolPythonRun(cfg *config, workers, chunk int, what string) (poolPyResult, error) {
	if cfg.python == "" {
		nan := math.NaN()
		return poolPyResult{TinyRate: nan, CPU: [2]float64{nan, nan}, StartStop: nan}, nil
	}
	out, err := runPython(cfg, "pool_bench.py", poolPython, 10*time.Minute,
		"--what", what,
		"--duration", strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64),
		"--workers", strconv.Itoa(workers),
		"--tiny-n", strconv.Itoa(poolTinyN), "--tiny-chunksize", strconv.Itoa(chunk),
		"--cpu-n", strconv.Itoa(poolCPUN), "--cpu-chunksize", strconv.Itoa(poolCPUChunk),
		"--cpu-target", strconv.FormatFloat(poolCPUTarget.Seconds(), 'f', -1, 64))
	if err != nil {
		return poolPyResult{}, err
	}
	var res poolPyResult
	if err := json.Unmarshal(out, &res); err != nil {
		return poolPyResult{}, fmt.Errorf("python output %q: %w", out, err)
	}
	return res, nil
}

func poolTable(cfg *config, runs []poolRun, workers, chunk int) error {
	col := func(f func(poolRun) float64) []float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return xs
	}
	rng := func(xs []float64) string {
		lo, hi := minMax(xs)
		if math.IsNaN(lo) {
			return "-"
		}
		return fmtRatio(lo) + "–" + fmtRatio(hi)
	}
	tinyRatio := col(func(r poolRun) float64 { return r.tinyRate / r.pyTinyRate })
	t := newTable("case", "mproc", "python", "mproc/python", "range", "target")
	t.row(fmt.Sprintf("Map %dk tiny tasks", poolTinyN/1000),
		fmtRate(median(col(func(r poolRun) float64 { return r.tinyRate })), "tasks/s"),
		fmtRate(median(col(func(r poolRun) float64 { return r.pyTinyRate })), "tasks/s"),
		fmtRatio(median(tinyRatio)), rng(tinyRatio), verdict(median(tinyRatio) >= 3, ">= 3"))
	startRatio := col(func(r poolRun) float64 { return r.pyStartStop / r.startStop })
	t.row("start 2 workers, stop",
		fmtDur(median(col(func(r poolRun) float64 { return r.startStop }))),
		fmtDur(median(col(func(r poolRun) float64 { return r.pyStartStop }))),
		fmtRatio(median(startRatio)), rng(startRatio), "")
	if err := t.write(cfg.out, fmt.Sprintf(
		"pool: Map of tiny tasks (x*x), %d workers, chunksize %d, rate of the median Map; start-up (ratios > 1: mproc faster)",
		workers, chunk)); err != nil {
		return err
	}

	ideal := float64(min(2, runtime.NumCPU()))
	sp, ctl, pysp := col(poolRun.speedup), col(poolRun.ctlSpeedup), col(poolRun.pySpeedup)
	vsCtl := col(func(r poolRun) float64 { return r.speedup() / r.ctlSpeedup() })
	eff := median(sp) / ideal
	secs := func(f func(poolRun) float64) string { return fmtDur(1e9 * median(col(f))) }
	t = newTable("case", "mproc", "goroutines (control)", "python")
	t.row("1 worker", secs(func(r poolRun) float64 { return r.cpu1 }), secs(func(r poolRun) float64 { return r.ctl1 }),
		secs(func(r poolRun) float64 { return r.pyCPU1 }))
	t.row("2 workers", secs(func(r poolRun) float64 { return r.cpu2 }), secs(func(r poolRun) float64 { return r.ctl2 }),
		secs(func(r poolRun) float64 { return r.pyCPU2 }))
	t.row(fmt.Sprintf("speedup (ideal %.2f)", ideal), fmtRatio(median(sp))+" ("+rng(sp)+")",
		fmtRatio(median(ctl))+" ("+rng(ctl)+")", fmtRatio(median(pysp))+" ("+rng(pysp)+")")
	t.row("of the ideal", fmt.Sprintf("%.0f%% %s", 100*eff, verdict(eff >= 0.9, ">= 90%")),
		fmtPercent(median(ctl)/ideal), fmtPercent(median(pysp)/ideal))
	t.row("speedup / control's", fmtRatio(median(vsCtl))+" ("+rng(vsCtl)+")", "", "")
	return t.write(cfg.out, fmt.Sprintf(
		"pool: Map of %d CPU-bound ~%v tasks, chunksize %d, on 1 and 2 workers (ABBA, interleaved with the control); speedup = t(1) / t(2)",
		poolCPUN, poolCPUTarget, poolCPUChunk))
}

func fmtPercent(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}
