package main

// The lock suite: lock.Lock acquire+release pairs per second, with 1, 2
// and 4 processes looping on one lock, next to the same token pipe handled
// by hand (what the package costs on top of the bare mechanism) and
// Python's multiprocessing.Lock (what users come from), in the same run.
//
// Every case runs in fresh children: the parent holds the lock while it
// starts them (a starting gate, so they contend from the first moment),
// releases it, and sums what each child reports: pairs done and the time
// it looped. The critical section is empty, so this is the lock's own
// cost, the worst case for a lock made of system calls.

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/lock"
)

//go:embed python/lock_bench.py
var lockPython []byte

// lockProcs are the cases: how many processes loop on the lock.
var lockProcs = []int{1, 2, 4}

func init() {
	register(suite{name: "lock", doc: "lock.Lock acquire+release with 1, 2, 4 processes, vs a bare token pipe and Python's multiprocessing.Lock", run: runLock})
	registerChild("lock-loop", lockLoop)
}

// lockSide is one way to take and give back the token.
type lockSide interface {
	acquire() error
	release() error
}

type mprocSide struct{ l *lock.Lock }

func (s mprocSide) acquire() error { s.l.Lock(); return nil }
func (s mprocSide) release() error { return s.l.Release() }

// bareSide is the token pipe by hand: read the byte (waiting in the
// runtime poller), write it back.
type bareSide struct{ r, w *os.File }

func (s bareSide) acquire() error {
	var b [1]byte
	_, err := s.r.Read(b[:])
	return err
}

func (s bareSide) release() error {
	_, err := s.w.Write([]byte{'L'})
	return err
}

// lockLoop runs in the child: args are the side ("mproc" or "bare") and
// the duration. It passes the starting gate, then acquires and releases
// for the duration and prints "pairs nanoseconds".
func lockLoop(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want side and duration, got %q", args)
	}
	d, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	var s lockSide
	switch args[0] {
	case "mproc":
		l, err := lock.Inherit("lock")
		if err != nil {
			return err
		}
		defer l.Close()
		s = mprocSide{l}
	case "bare":
		r, err := inheritFile("r")
		if err != nil {
			return err
		}
		w, err := inheritFile("w")
		if err != nil {
			return err
		}
		defer r.Close()
		defer w.Close()
		s = bareSide{r, w}
	default:
		return fmt.Errorf("unknown side %q", args[0])
	}
	// The gate: the parent holds the token until every child has started.
	if err := s.acquire(); err != nil {
		return err
	}
	if err := s.release(); err != nil {
		return err
	}
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		for range 16 {
			if err := s.acquire(); err != nil {
				return err
			}
			if err := s.release(); err != nil {
				return err
			}
		}
		n += 16
	}
	_, err = fmt.Printf("%d %d\n", n, time.Since(start).Nanoseconds())
	return err
}

// lockRun runs procs children of side for cfg.duration and returns the
// pairs per second of all of them together.
func lockRun(cfg *config, side string, procs int) (float64, error) {
	var gateDone func() error
	var share func(cmd *exec.Cmd) error
	switch side {
	case "mproc":
		l, err := lock.New()
		if err != nil {
			return 0, err
		}
		defer l.Close()
		l.Lock()
		gateDone = l.Release
		share = func(cmd *exec.Cmd) error { return l.Share(cmd, "lock") }
	case "bare":
		r, w, err := fd.Pipe("bench-lock")
		if err != nil {
			return 0, err
		}
		defer r.Close()
		defer w.Close()
		gateDone = bareSide{r, w}.release // the token goes in once all have started
		share = func(cmd *exec.Cmd) error {
			if err := shareFile(cmd, "r", r); err != nil {
				return err
			}
			return shareFile(cmd, "w", w)
		}
	}
	outs := make([]*bytes.Buffer, procs)
	kids := make([]*child, 0, procs)
	defer func() {
		for _, c := range kids {
			c.kill()
		}
	}()
	for i := range procs {
		outs[i] = new(bytes.Buffer)
		c, err := startChild("lock-loop", []string{side, cfg.duration.String()}, func(cmd *exec.Cmd) error {
			cmd.Stdout = outs[i]
			return share(cmd)
		})
		if err != nil {
			gateDone()
			return 0, err
		}
		kids = append(kids, c)
	}
	if err := gateDone(); err != nil {
		return 0, err
	}
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

func runLock(cfg *config) error {
	type key struct {
		side  string
		procs int
	}
	rates := map[key][]float64{}  // per run
	ratios := map[key][]float64{} // mproc/bare and mproc/python, per run
	for run := range cfg.count {
		for ci, procs := range lockProcs {
			sides := []string{"mproc", "bare"}
			if (run+ci)%2 == 1 {
				sides = []string{"bare", "mproc"}
			}
			got := map[string]float64{}
			for _, side := range sides {
				r, err := lockRun(cfg, side, procs)
				if err != nil {
					return fmt.Errorf("%s, %d processes: %w", side, procs, err)
				}
				got[side] = r
				rates[key{side, procs}] = append(rates[key{side, procs}], r)
			}
			ratios[key{"bare", procs}] = append(ratios[key{"bare", procs}], got["mproc"]/got["bare"])
			fmt.Fprintf(os.Stderr, "bench: lock run %d, %d process(es): mproc %s, bare %s\n",
				run+1, procs, fmtRate(got["mproc"], "pairs/s"), fmtRate(got["bare"], "pairs/s"))
		}
		py := map[string]float64{}
		if cfg.python != "" {
			out, err := runPython(cfg, "lock_bench.py", lockPython, 5*time.Minute,
				"--duration", strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(out, &py); err != nil {
				return fmt.Errorf("python output %q: %w", out, err)
			}
		}
		for _, procs := range lockProcs {
			p, ok := py[strconv.Itoa(procs)]
			if !ok {
				p = math.NaN()
			}
			rates[key{"python", procs}] = append(rates[key{"python", procs}], p)
			mine := rates[key{"mproc", procs}]
			ratios[key{"python", procs}] = append(ratios[key{"python", procs}], mine[len(mine)-1]/p)
		}
	}

	t := newTable("processes", "mproc", "bare pipe", "python", "mproc/bare", "range (runs)", "mproc vs python", "range (runs)", "mproc ns/pair", "python ns/pair")
	for _, procs := range lockProcs {
		m, b, p := median(rates[key{"mproc", procs}]), median(rates[key{"bare", procs}]), median(rates[key{"python", procs}])
		blo, bhi := minMax(ratios[key{"bare", procs}])
		plo, phi := minMax(ratios[key{"python", procs}])
		t.row(strconv.Itoa(procs),
			fmtRate(m, "pairs/s"), fmtRate(b, "pairs/s"), fmtRate(p, "pairs/s"),
			fmtRatio(median(ratios[key{"bare", procs}])), fmtRange(blo, bhi),
			fmtRatio(median(ratios[key{"python", procs}])), fmtRange(plo, phi),
			fmtDur(1e9/m), fmtDur(1e9/p))
	}
	return t.write(cfg.out, "lock: acquire+release pairs per second, all processes together, empty critical section (higher is better; mproc vs python > 1: mproc faster)")
}

// fmtRange formats the range of a ratio over runs: "0.81-1.05".
func fmtRange(lo, hi float64) string {
	if math.IsNaN(lo) {
		return "-"
	}
	return fmtRatio(lo) + "-" + fmtRatio(hi)
}
