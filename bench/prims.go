package main

// The prims suite: value.Value Update (read-modify-write) per second with
// 1 and 4 processes, semaphore.Semaphore(1) acquire+release with 1 process
// (uncontended) and 4 (contended), and the latency from event.Event.Set to
// the last of 4 waiting processes awake; Python's multiprocessing Value
// (under get_lock()), Semaphore and Event in the same run. lock.Lock has
// its own suite (`lock`), beside the token pipe it used to be.
//
// Throughput cases run in fresh children behind a starting gate (a
// lock.Lock the parent holds until all have started), as the lock suite
// does. For the event, 4 children each wait in a loop; every round the
// parent clears the event, tells them (one line on stdin each) to wait,
// reads their "ready", leaves them 5 ms to block, takes the time and Sets;
// each child prints the monotonic time it woke, and the round's latency is
// the last of them minus the time of Set.

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/event"
	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/semaphore"
	"github.com/mproc-go/mproc/value"
)

//go:embed python/prims_bench.py
var primsPython []byte

var primsProcs = []int{1, 4}

const primsRounds = 50

func init() {
	register(suite{name: "prims", doc: "value.Value Update, semaphore acquire+release (1 and 4 processes), event Set -> 4 waiters awake, vs Python's Value, Semaphore, Event", run: runPrims})
	registerChild("prims-loop", primsLoop)
	registerChild("prims-waiter", primsWaiter)
}

// primsLoop runs in a child: args are the case ("value" or "semaphore")
// and the duration. It passes the gate, loops for the duration and prints
// "ops nanoseconds".
func primsLoop(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want case and duration, got %q", args)
	}
	d, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	gate, err := lock.Inherit("gate")
	if err != nil {
		return err
	}
	defer gate.Close()
	ctx := context.Background()
	var op func() error
	switch args[0] {
	case "value":
		v, err := value.Inherit[int]("v")
		if err != nil {
			return err
		}
		defer v.Close()
		op = func() error {
			_, err := v.Update(ctx, func(n int) int { return n + 1 })
			return err
		}
	case "semaphore":
		s, err := semaphore.Inherit("s")
		if err != nil {
			return err
		}
		defer s.Close()
		op = func() error {
			if err := s.Acquire(ctx); err != nil {
				return err
			}
			return s.Release()
		}
	default:
		return fmt.Errorf("unknown case %q", args[0])
	}
	// The gate: the parent holds it until every child has started.
	if err := gate.LockContext(ctx); err != nil {
		return err
	}
	if err := gate.Release(); err != nil {
		return err
	}
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		for range 16 {
			if err := op(); err != nil {
				return err
			}
		}
		n += 16
	}
	_, err = fmt.Printf("%d %d\n", n, time.Since(start).Nanoseconds())
	return err
}

// primsRun runs procs children of the case for cfg.duration and returns
// the operations per second of all of them together.
func primsRun(cfg *config, kind string, procs int) (float64, error) {
	gate, err := lock.New()
	if err != nil {
		return 0, err
	}
	defer gate.Close()
	var obj interface {
		Share(cmd *exec.Cmd, name string) error
		Close() error
	}
	name := "v"
	switch kind {
	case "value":
		obj, err = value.New(0)
	case "semaphore":
		obj, err = semaphore.New(1)
		name = "s"
	}
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	gate.Lock()
	outs := make([]*bytes.Buffer, procs)
	kids := make([]*child, 0, procs)
	defer func() {
		for _, c := range kids {
			c.kill()
		}
	}()
	for i := range procs {
		outs[i] = new(bytes.Buffer)
		c, err := startChild("prims-loop", []string{kind, cfg.duration.String()}, func(cmd *exec.Cmd) error {
			cmd.Stdout = outs[i]
			if err := gate.Share(cmd, "gate"); err != nil {
				return err
			}
			return obj.Share(cmd, name)
		})
		if err != nil {
			gate.Unlock()
			return 0, err
		}
		kids = append(kids, c)
	}
	gate.Unlock()
	rate := 0.0
	for i, c := range kids {
		if err := c.wait(cfg.duration + 30*time.Second); err != nil {
			return 0, err
		}
		var n, ns float64
		if _, err := fmt.Sscan(outs[i].String(), &n, &ns); err != nil || ns <= 0 {
			return 0, fmt.Errorf("child %d printed %q", i, outs[i])
		}
		rate += n / (ns / 1e9)
	}
	return rate, nil
}

func monotonicNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// primsWaiter runs in a child: for each line on stdin it prints "ready",
// waits for the event and prints the monotonic time it woke.
func primsWaiter([]string) error {
	e, err := event.Inherit("e")
	if err != nil {
		return err
	}
	defer e.Close()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println("ready")
		if err := e.Wait(context.Background()); err != nil {
			return err
		}
		fmt.Println(monotonicNs())
	}
	return nil
}

// eventLatency returns the latency of each of rounds Sets, in ns.
func eventLatency(waiters, rounds int) ([]float64, error) {
	e, err := event.New()
	if err != nil {
		return nil, err
	}
	defer e.Close()
	type waiter struct {
		c   *child
		in  io.WriteCloser
		out *bufio.Scanner
	}
	var ws []waiter
	defer func() {
		for _, w := range ws {
			w.in.Close()
			w.c.kill()
		}
	}()
	for range waiters {
		var w waiter
		c, err := startChild("prims-waiter", nil, func(cmd *exec.Cmd) error {
			var err error
			if w.in, err = cmd.StdinPipe(); err != nil {
				return err
			}
			cmd.Stdout = nil
			out, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			w.out = bufio.NewScanner(out)
			return e.Share(cmd, "e")
		})
		if err != nil {
			return nil, err
		}
		w.c = c
		ws = append(ws, w)
	}
	line := func(w waiter) (string, error) {
		if !w.out.Scan() {
			return "", fmt.Errorf("waiter ended: %v", w.out.Err())
		}
		return w.out.Text(), nil
	}
	var lat []float64
	for range rounds {
		if err := e.Clear(); err != nil {
			return nil, err
		}
		for _, w := range ws {
			if _, err := fmt.Fprintln(w.in, "wait"); err != nil {
				return nil, err
			}
		}
		for _, w := range ws {
			if l, err := line(w); err != nil || l != "ready" {
				return nil, fmt.Errorf("waiter: %q, %v", l, err)
			}
		}
		time.Sleep(5 * time.Millisecond) // let them block in Wait
		t0 := monotonicNs()
		if err := e.Set(); err != nil {
			return nil, err
		}
		last := int64(0)
		for _, w := range ws {
			l, err := line(w)
			if err != nil {
				return nil, err
			}
			at, err := strconv.ParseInt(l, 10, 64)
			if err != nil {
				return nil, err
			}
			last = max(last, at)
		}
		lat = append(lat, float64(last-t0))
	}
	return lat, nil
}

func runPrims(cfg *config) error {
	type key struct {
		kind  string
		procs int
	}
	rates := map[key][]float64{} // mproc, per run
	pyRates := map[key][]float64{}
	ratios := map[key][]float64{}
	var evGo, evPy []float64
	for run := range cfg.count {
		for _, kind := range []string{"value", "semaphore"} {
			for _, procs := range primsProcs {
				r, err := primsRun(cfg, kind, procs)
				if err != nil {
					return fmt.Errorf("%s, %d processes: %w", kind, procs, err)
				}
				rates[key{kind, procs}] = append(rates[key{kind, procs}], r)
				fmt.Fprintf(os.Stderr, "bench: prims run %d, %s, %d process(es): %s\n", run+1, kind, procs, fmtRate(r, "ops/s"))
			}
		}
		lat, err := eventLatency(4, primsRounds)
		if err != nil {
			return fmt.Errorf("event: %w", err)
		}
		evGo = append(evGo, lat...)
		if cfg.python == "" {
			continue
		}
		out, err := runPython(cfg, "prims_bench.py", primsPython, 5*time.Minute,
			"--duration", strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64),
			"--rounds", strconv.Itoa(primsRounds))
		if err != nil {
			return err
		}
		var py struct {
			Value, Semaphore map[string]float64
			Event            []float64
		}
		if err := json.Unmarshal(out, &py); err != nil {
			return fmt.Errorf("python output %q: %w", out, err)
		}
		for kind, m := range map[string]map[string]float64{"value": py.Value, "semaphore": py.Semaphore} {
			for _, procs := range primsProcs {
				p, ok := m[strconv.Itoa(procs)]
				if !ok {
					p = math.NaN()
				}
				k := key{kind, procs}
				pyRates[k] = append(pyRates[k], p)
				ratios[k] = append(ratios[k], rates[k][len(rates[k])-1]/p)
			}
		}
		evPy = append(evPy, py.Event...)
	}
	t := newTable("case", "processes", "mproc", "python", "mproc vs python", "range (runs)", "mproc per op", "python per op")
	for _, kind := range []string{"value", "semaphore"} {
		for _, procs := range primsProcs {
			k := key{kind, procs}
			m, p := median(rates[k]), median(pyRates[k])
			lo, hi := minMax(ratios[k])
			t.row(kind, strconv.Itoa(procs), fmtRate(m, "ops/s"), fmtRate(p, "ops/s"),
				fmtRatio(median(ratios[k])), fmtRange(lo, hi), fmtDur(1e9/m), fmtDur(1e9/p))
		}
	}
	if err := t.write(cfg.out, "prims: value Update and semaphore(1) acquire+release per second, all processes together (higher is better; mproc vs python > 1: mproc faster)"); err != nil {
		return err
	}
	et := newTable("", "p50", "p90", "max", "rounds")
	for _, side := range []struct {
		name string
		lat  []float64
	}{{"mproc event", evGo}, {"python event", evPy}} {
		if len(side.lat) == 0 {
			continue
		}
		s := slices.Clone(side.lat)
		slices.Sort(s)
		et.row(side.name, fmtDur(percentile(s, 50)), fmtDur(percentile(s, 90)), fmtDur(s[len(s)-1]), strconv.Itoa(len(s)))
	}
	return et.write(cfg.out, "prims: event Set -> the last of 4 waiting processes awake (lower is better)")
}
