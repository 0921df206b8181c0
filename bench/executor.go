package main

// The executor suite: pool.Executor next to Python's
// concurrent.futures.ProcessPoolExecutor and Pool.imap, with the same
// number of workers and the same chunksize, measured in the same run.
//
//   - Submit round trip: one tiny task (x*x) submitted and waited for, on a
//     warm executor, again and again for the measurement's duration;
//     p50 and p90 of each round trip, next to ex.submit(square, i).result().
//   - streaming map: Imap of 1,000,000 ints through x*x, the inputs made by
//     an iter.Seq as they are pulled, chunksize 1000, consumed to the last
//     output, next to Pool.imap(square, range(n), chunksize=1000). Each
//     side runs in a fresh process (a bench child for mproc), which reports
//     its rate and its peak RSS (getrusage ru_maxrss): the parent's memory,
//     the workers' being separate processes. The same child runs the
//     slice-based Map of the same 1,000,000 inputs (inputs and outputs in
//     memory), and Imap of 4,000,000: a stream's memory does not grow with
//     its length.

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mproc-go/mproc/pool"
)

//go:embed python/executor_bench.py
var executorPython []byte

const (
	execStreamN     = 1_000_000
	execStreamBigN  = 4_000_000
	execStreamChunk = 1000
)

func init() {
	register(suite{name: "executor", doc: "pool.Executor: Submit round trip vs ProcessPoolExecutor.submit().result(); streaming Imap of 1M tiny inputs vs Pool.imap(chunksize), and its peak RSS vs a slice Map", run: runExecutor})
	registerChild("executor-stream", executorStream)
}

var execSquare = pool.Register("bench-executor-square", func(ctx context.Context, x int) (int, error) {
	return x * x, nil
})

// execRun is one run's figures.
type execRun struct {
	p50, p90         float64 // ns, Submit round trip
	pyP50, pyP90     float64
	streamRate       float64 // items/s
	pyStreamRate     float64
	streamRSS        float64 // KiB, peak RSS of the process running Imap of 1M
	bigStreamRSS     float64 // ... of 4M
	sliceRSS         float64 // ... running Map of a 1M slice
	sliceRate        float64
	pyStreamRSS      float64
	streamCPUPerItem float64 // ns of CPU (parent and workers) per item
}

func runExecutor(cfg *config) error {
	workers := runtime.NumCPU()
	var runs []execRun
	for run := range cfg.count {
		var r execRun
		ours := func() error { return execSubmit(cfg, workers, &r) }
		theirs := func() error {
			if cfg.python == "" {
				r.pyP50, r.pyP90 = math.NaN(), math.NaN()
				return nil
			}
			res, err := execPythonRun(cfg, workers, "submit")
			r.pyP50, r.pyP90 = res.SubmitP50, res.SubmitP90
			return err
		}
		a, b := ours, theirs
		if run%2 == 1 {
			a, b = theirs, ours
		}
		if err := a(); err != nil {
			return err
		}
		if err := b(); err != nil {
			return err
		}
		stream := func() error {
			res, err := execStreamChild("stream", execStreamN, workers)
			r.streamRate, r.streamRSS, r.streamCPUPerItem = res.Rate, res.MaxRSSKB, res.CPUPerItemNs
			return err
		}
		pyStream := func() error {
			if cfg.python == "" {
				r.pyStreamRate, r.pyStreamRSS = math.NaN(), math.NaN()
				return nil
			}
			res, err := execPythonRun(cfg, workers, "imap")
			r.pyStreamRate, r.pyStreamRSS = res.ImapRate, res.ImapMaxRSSKB
			return err
		}
		a, b = stream, pyStream
		if run%2 == 1 {
			a, b = pyStream, stream
		}
		if err := a(); err != nil {
			return err
		}
		if err := b(); err != nil {
			return err
		}
		res, err := execStreamChild("slice", execStreamN, workers)
		if err != nil {
			return err
		}
		r.sliceRate, r.sliceRSS = res.Rate, res.MaxRSSKB
		if res, err = execStreamChild("stream", execStreamBigN, workers); err != nil {
			return err
		}
		r.bigStreamRSS = res.MaxRSSKB
		runs = append(runs, r)
	}
	return execTable(cfg, runs, workers)
}

// execSubmit measures Submit round trips on a warm executor.
func execSubmit(cfg *config, workers int, r *execRun) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ex, err := pool.NewExecutor(ctx, pool.Config{Workers: workers})
	if err != nil {
		return err
	}
	defer ex.Terminate()
	sq := pool.Bind(ex, execSquare)
	for i := range 200 { // warm
		if _, err := sq.Submit(ctx, i).Wait(ctx); err != nil {
			return err
		}
	}
	var times []time.Duration
	deadline := time.Now().Add(cfg.duration)
	for i := 0; len(times) < 100 || time.Now().Before(deadline); i++ {
		t0 := time.Now()
		v, err := sq.Submit(ctx, i).Wait(ctx)
		times = append(times, time.Since(t0))
		if err != nil {
			return err
		}
		if v != i*i {
			return fmt.Errorf("executor: wrong result %d for %d", v, i)
		}
	}
	slices.Sort(times)
	r.p50, r.p90 = float64(percentile(times, 50)), float64(percentile(times, 90))
	return nil
}

type execStreamResult struct {
	Rate         float64 `json:"rate"`
	MaxRSSKB     float64 `json:"maxrss_kb"`
	CPUPerItemNs float64 `json:"cpu_per_item_ns"`
}

// execStreamChild runs the streaming (or slice) map in a fresh child, whose
// peak RSS is then its own.
func execStreamChild(mode string, n, workers int) (execStreamResult, error) {
	var out strings.Builder
	ch, err := startChild("executor-stream", []string{mode, strconv.Itoa(n), strconv.Itoa(workers)},
		func(cmd *exec.Cmd) error {
			cmd.Stdout = &out
			return nil
		})
	if err != nil {
		return execStreamResult{}, err
	}
	if err := ch.wait(10 * time.Minute); err != nil {
		return execStreamResult{}, err
	}
	var res execStreamResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		return res, fmt.Errorf("executor-stream output %q: %w", out.String(), err)
	}
	return res, nil
}

// executorStream runs in the child: args are the mode ("stream": Imap of
// an iter.Seq; "slice": Map of a slice), the number of inputs and of
// workers. It prints its rate, its peak RSS and the CPU per item of itself
// and its workers.
func executorStream(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want mode, n, workers; got %q", args)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	workers, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	ctx := context.Background()
	ex, err := pool.NewExecutor(ctx, pool.Config{Workers: workers})
	if err != nil {
		return err
	}
	defer ex.Terminate()
	sq := pool.Bind(ex, execSquare).WithChunkSize(execStreamChunk)
	warm := make([]int, 1000)
	if _, err := sq.Map(ctx, warm); err != nil {
		return err
	}
	var elapsed time.Duration
	cpu0 := execCPU()
	switch args[0] {
	case "stream":
		inputs := func(yield func(int) bool) {
			for i := range n {
				if !yield(i) {
					return
				}
			}
		}
		t0 := time.Now()
		count, last := 0, 0
		for v, err := range sq.Imap(ctx, inputs) {
			if err != nil {
				return err
			}
			count++
			last = v
		}
		elapsed = time.Since(t0)
		if count != n || last != (n-1)*(n-1) {
			return fmt.Errorf("stream: %d results, last %d", count, last)
		}
	case "slice":
		in := make([]int, n)
		for i := range in {
			in[i] = i
		}
		t0 := time.Now()
		out, err := sq.Map(ctx, in)
		elapsed = time.Since(t0)
		if err != nil {
			return err
		}
		if out[n-1] != (n-1)*(n-1) {
			return fmt.Errorf("slice: last %d", out[n-1])
		}
	default:
		return fmt.Errorf("mode %q", args[0])
	}
	cpu := execCPU() - cpu0
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(execStreamResult{
		Rate:         float64(n) / elapsed.Seconds(),
		MaxRSSKB:     float64(ru.Maxrss),
		CPUPerItemNs: float64(cpu) / float64(n),
	})
}

// execCPU is the CPU time of this process and of its workers, read from
// /proc (the workers are alive, so RUSAGE_CHILDREN would not count them).
func execCPU() time.Duration {
	total := cpuTime()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	self := os.Getpid()
	tick := 10 * time.Millisecond // USER_HZ = 100 on Linux
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 || f[1] != strconv.Itoa(self) || pid == self {
			continue
		}
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		total += time.Duration(ut+st) * tick
	}
	return total
}

type execPyResult struct {
	SubmitP50    float64 `json:"submit_p50_ns"`
	SubmitP90    float64 `json:"submit_p90_ns"`
	ImapRate     float64 `json:"imap_rate"`
	ImapMaxRSSKB float64 `json:"imap_maxrss_kb"`
}

func execPythonRun(cfg *config, workers int, what string) (execPyResult, error) {
	out, err := runPython(cfg, "executor_bench.py", executorPython, 10*time.Minute,
		"--what", what,
		"--duration", strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64),
		"--workers", strconv.Itoa(workers),
		"--n", strconv.Itoa(execStreamN), "--chunksize", strconv.Itoa(execStreamChunk))
	if err != nil {
		return execPyResult{}, err
	}
	var res execPyResult
	if err := json.Unmarshal(out, &res); err != nil {
		return execPyResult{}, fmt.Errorf("python output %q: %w", out, err)
	}
	return res, nil
}

func execTable(cfg *config, runs []execRun, workers int) error {
	col := func(f func(execRun) float64) []float64 {
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
	mib := func(kb float64) string {
		if math.IsNaN(kb) {
			return "-"
		}
		return fmt.Sprintf("%.1f MiB", kb/1024)
	}
	t := newTable("case", "mproc", "python", "python/mproc", "range", "target")
	p50 := col(func(r execRun) float64 { return r.pyP50 / r.p50 })
	t.row("Submit round trip p50",
		fmtDur(median(col(func(r execRun) float64 { return r.p50 }))),
		fmtDur(median(col(func(r execRun) float64 { return r.pyP50 }))),
		fmtRatio(median(p50)), rng(p50), verdict(median(p50) >= 3, ">= 3"))
	p90 := col(func(r execRun) float64 { return r.pyP90 / r.p90 })
	t.row("Submit round trip p90",
		fmtDur(median(col(func(r execRun) float64 { return r.p90 }))),
		fmtDur(median(col(func(r execRun) float64 { return r.pyP90 }))),
		fmtRatio(median(p90)), rng(p90), "")
	if err := t.write(cfg.out, fmt.Sprintf(
		"executor: one tiny task submitted and waited for, %d workers (ratios > 1: mproc faster)", workers)); err != nil {
		return err
	}
	t = newTable("case", "mproc", "python", "mproc/python", "range", "target")
	rate := col(func(r execRun) float64 { return r.streamRate / r.pyStreamRate })
	t.row(fmt.Sprintf("Imap %dk tiny inputs", execStreamN/1000),
		fmtRate(median(col(func(r execRun) float64 { return r.streamRate })), "items/s"),
		fmtRate(median(col(func(r execRun) float64 { return r.pyStreamRate })), "items/s"),
		fmtRatio(median(rate)), rng(rate), verdict(median(rate) >= 3, ">= 3"))
	t.row("  CPU per item (parent + workers)",
		fmtDur(median(col(func(r execRun) float64 { return r.streamCPUPerItem }))), "", "", "", "")
	t.row(fmt.Sprintf("Map of a %dk slice (for memory)", execStreamN/1000),
		fmtRate(median(col(func(r execRun) float64 { return r.sliceRate })), "items/s"), "", "", "", "")
	t.row(fmt.Sprintf("peak RSS: Imap %dk", execStreamN/1000),
		mib(median(col(func(r execRun) float64 { return r.streamRSS }))),
		mib(median(col(func(r execRun) float64 { return r.pyStreamRSS }))), "", "", "")
	t.row(fmt.Sprintf("peak RSS: Imap %dk", execStreamBigN/1000),
		mib(median(col(func(r execRun) float64 { return r.bigStreamRSS }))), "", "", "", "")
	grow := median(col(func(r execRun) float64 { return r.bigStreamRSS / r.streamRSS }))
	t.row(fmt.Sprintf("peak RSS: Map of a %dk slice", execStreamN/1000),
		mib(median(col(func(r execRun) float64 { return r.sliceRSS }))), "", "", "",
		verdict(grow < 1.1, fmt.Sprintf("stream constant (%dk/%dk: %.2f)", execStreamBigN/1000, execStreamN/1000, grow)))
	return t.write(cfg.out, fmt.Sprintf(
		"executor: streaming map of tiny inputs (x*x), chunksize %d, %d workers, beside Pool.imap; peak RSS of the calling process",
		execStreamChunk, workers))
}
