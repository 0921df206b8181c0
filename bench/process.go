package main

// The process suite: start a child running a registered function, get one
// item back from it, wait for it (process.Cmd), next to Python's
// multiprocessing Process(...).start(), Queue.get and join with the fork
// and spawn start methods, measured in the same run.
//
// Each iteration creates what it shares, as a program starting one worker
// does: a queue.Queue on both sides. The time of one iteration runs from
// creating the queue to the end of Wait/join; the tables show its median.

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/queue"
)

//go:embed python/process_bench.py
var processPython []byte

func init() {
	register(suite{name: "process", doc: "start a child, get one item back, wait, vs Python's Process with fork and spawn", run: runProcess})
	process.Register("bench-process-item", processItem)
}

// procItem is the item the child sends back.
type procItem struct {
	ID   int    `msgpack:"id"`
	Name string `msgpack:"name"`
}

// processItem runs in the child: it puts one item on the queue "out" and
// closes it (which flushes).
func processItem(ctx context.Context) error {
	out, err := queue.Inherit[procItem]("out")
	if err != nil {
		return err
	}
	if err := out.Put(ctx, procItem{ID: 1, Name: "item"}); err != nil {
		return err
	}
	return out.Close()
}

// startOne starts a child, receives its item and waits for it.
func startOne(outlive bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	q, err := queue.New[procItem](0)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	cmd := process.Command("bench-process-item")
	cmd.OutliveParent = outlive
	if err := cmd.Share(q, "out"); err != nil {
		return 0, err
	}
	if err := cmd.Start(ctx); err != nil {
		return 0, err
	}
	item, err := q.Get(ctx)
	if err != nil {
		cmd.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("get the item: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if item.ID != 1 || item.Name != "item" {
		return 0, fmt.Errorf("bad item %+v", item)
	}
	return d, nil
}

// measureStart returns the median time of startOne over cfg.duration, and
// at least 5 iterations.
func measureStart(cfg *config, outlive bool) (float64, error) {
	if _, err := startOne(outlive); err != nil { // warm up
		return 0, err
	}
	var times []float64
	deadline := time.Now().Add(cfg.duration)
	for len(times) < 5 || time.Now().Before(deadline) {
		d, err := startOne(outlive)
		if err != nil {
			return 0, err
		}
		times = append(times, float64(d))
	}
	return median(times), nil
}

type pyStart struct {
	MedianNS float64 `json:"median_ns"`
	N        int     `json:"n"`
}

func runProcess(cfg *config) error {
	var plain, outliving, fork, spawn, forkRatio, spawnRatio []float64
	for range cfg.count {
		p, err := measureStart(cfg, false)
		if err != nil {
			return err
		}
		o, err := measureStart(cfg, true)
		if err != nil {
			return err
		}
		plain, outliving = append(plain, p), append(outliving, o)

		f, s := math.NaN(), math.NaN()
		if cfg.python != "" {
			out, err := runPython(cfg, "process_bench.py", processPython, 5*time.Minute,
				"--duration", strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64))
			if err != nil {
				return err
			}
			var res map[string]pyStart
			if err := json.Unmarshal(out, &res); err != nil {
				return fmt.Errorf("python output %q: %w", out, err)
			}
			f, s = res["fork"].MedianNS, res["spawn"].MedianNS
		}
		fork, spawn = append(fork, f), append(spawn, s)
		forkRatio, spawnRatio = append(forkRatio, f/p), append(spawnRatio, s/p)
	}
	t := newTable("case", "mproc", "python fork", "python spawn", "fork/mproc", "spawn/mproc")
	t.row("start, one item back, wait", fmtDur(median(plain)), fmtDur(median(fork)), fmtDur(median(spawn)),
		fmtRatio(median(forkRatio)), fmtRatio(median(spawnRatio)))
	t.row("  the same, OutliveParent", fmtDur(median(outliving)), "", "", "", "")
	if err := t.write(cfg.out, "process: time to start a child and get one item back (lower is better; ratios > 1: mproc faster)"); err != nil {
		return err
	}
	return nil
}
