// Command bench measures mproc between real processes and prints each
// figure side by side with a baseline measured in the same run, as ratios.
//
//	go run ./bench                       # every suite
//	go run ./bench conn                  # one suite (several names: several suites)
//	go run ./bench -d 500ms -count 7 conn
//	go run ./bench -list                 # the suites there are
//
// Flags: -d is the length of one measurement (-n the items of one, for the
// conn and queue suites, which measure as bench/items.go says), -count how many times each
// suite repeats all its measurements (the tables show medians; a ratio is
// computed inside each run, then the median of those ratios is shown),
// -python the interpreter for the Python baselines ("none" skips them).
// Tables go to stdout, progress and children's stderr to stderr.
//
// # Adding a suite
//
// A suite is one file, bench/NAME.go, in this package main. It registers
// itself in init and needs nothing else from this file:
//
//	func init() {
//		register(suite{name: "queue", doc: "queue.Queue put/get between processes", run: runQueue})
//		registerChild("queue-producer", queueProducer)
//	}
//
//	func runQueue(cfg *config) error {
//		for run := range cfg.count {
//			q, _ := queue.New[item](0)
//			ch, err := startChild("queue-producer", []string{cfg.duration.String()},
//				func(cmd *exec.Cmd) error { return q.Share(cmd, "q") })
//			if err != nil { return err }
//			... measure in this process; close what you gave away ...
//			if err := ch.wait(10 * time.Second); err != nil { return err }
//		}
//		t := newTable("case", "mproc", "python", "mproc/python")
//		t.row("put/get", fmtRate(median(ours), "items/s"), ...)
//		return t.write(cfg.out, "queue: ...title...")
//	}
//
//	// queueProducer runs in the child; args are the strings given to startChild.
//	func queueProducer(args []string) error {
//		q, err := queue.Inherit[item]("q")
//		...
//	}
//
// The rules the framework keeps for you:
//   - A child is this same binary (os.Executable) re-executed with the
//     environment variable MPROC_BENCH_CHILD naming its role; main runs the
//     function registered for that role with the args and exits (status 1
//     and the error on stderr when it returns one). Hand descriptors to it
//     with the primitives' Share/Inherit, or shareFile/inheritFile for a
//     bare *os.File (create those with internal/fd, never os.Pipe).
//   - Every child is started in its own process group with a parent-death
//     signal, tracked, and killed (with its whole group: Python's workers
//     too) and reaped by child.wait's timeout, by child.kill, on SIGINT or
//     SIGTERM, and when main returns. No bench run leaves a process behind.
//   - A child's stdout and stderr go to the parent's stderr; a setup that
//     sets cmd.Stdout (to a bytes.Buffer, say) gets results back that way.
//     cpuTime gives a process's CPU time, a figure that load elsewhere on
//     the machine disturbs much less than wall-clock time.
//   - The parent must close its copy of every end it gave away once
//     startChild returns, or the child never sees EOF (docs/ARCHITECTURE.md, descriptor rule 3).
//   - Python baselines: runPython(cfg, script, args...) runs an embedded
//     script (//go:embed python/NAME.py) with cfg.python and returns its
//     stdout; print JSON there. cfg.python is "" when there is none: print
//     "-" in the Python columns rather than failing.
//   - Tables: newTable, row, write (aligned columns);
//     fmtRate, fmtBytesRate, fmtDur, fmtRatio, median, percentile for the
//     cells. Give each suite its own section in bench/README.md with the
//     command, the figures and the date.
package main

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/process"
)

// childEnv names, in a child's environment, the role it runs.
const childEnv = "MPROC_BENCH_CHILD"

// fileKind is the share kind of a bare file handed over by shareFile.
const fileKind = "file"

// config is what every suite gets.
type config struct {
	duration time.Duration // length of one measurement
	count    int           // runs of the whole suite; report medians
	items    int           // items per measurement of the conn and queue suites
	python   string        // python3 for baselines; "" when there is none
	out      io.Writer     // where tables go
}

// suite is one group of measurements, registered from init.
type suite struct {
	name string
	doc  string
	run  func(cfg *config) error
}

var (
	suites   = map[string]suite{}
	children = map[string]func(args []string) error{}
)

// register adds a suite. Call it from init.
func register(s suite) {
	if _, dup := suites[s.name]; dup || s.name == "" || s.run == nil {
		panic("bench: bad or duplicate suite " + s.name)
	}
	suites[s.name] = s
}

// registerChild adds a child role. Call it from init.
func registerChild(role string, fn func(args []string) error) {
	if _, dup := children[role]; dup || role == "" || fn == nil {
		panic("bench: bad or duplicate child role " + role)
	}
	children[role] = fn
}

func main() {
	process.Main() // a child started by package process (the process suite)
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(childMain(role))
	}
	os.Exit(parentMain())
}

func childMain(role string) int {
	fn, ok := children[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown child role %q\n", role)
		return 2
	}
	if err := fn(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		return 1
	}
	return 0
}

func parentMain() int {
	cfg := &config{out: os.Stdout}
	flag.DurationVar(&cfg.duration, "d", 300*time.Millisecond, "length of one measurement")
	flag.IntVar(&cfg.count, "count", 5, "runs of each suite; tables show medians")
	flag.IntVar(&cfg.items, "n", 200000, "items per measurement of the conn and queue suites")
	py := flag.String("python", "", `python3 for the Python baselines (default: $MPROC_PYTHON, python3 on PATH, /usr/bin/python3; "none" skips them)`)
	list := flag.Bool("list", false, "list the suites and exit")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: bench [flags] [suite...]\n\nsuites:\n")
		listSuites(os.Stderr)
		fmt.Fprintf(os.Stderr, "\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *list {
		listSuites(os.Stdout)
		return 0
	}
	if cfg.duration <= 0 || cfg.count <= 0 || cfg.items <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -d, -count and -n must be positive")
		return 2
	}
	names := flag.Args()
	if len(names) == 0 {
		names = sortedSuites()
	}
	for _, n := range names {
		if _, ok := suites[n]; !ok {
			fmt.Fprintf(os.Stderr, "bench: no suite %q (have: %s)\n", n, strings.Join(sortedSuites(), ", "))
			return 2
		}
	}
	cfg.python = findPython(*py)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		killAll()
		fmt.Fprintf(os.Stderr, "bench: %v: children killed\n", s)
		os.Exit(130)
	}()
	defer killAll()

	fmt.Fprintf(cfg.out, "%s\n%d runs, %v per measurement; medians; ratios taken within each run\n\n",
		machine(cfg.python), cfg.count, cfg.duration)
	status := 0
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "bench: suite %s\n", n)
		if err := suites[n].run(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "bench: suite %s: %v\n", n, err)
			status = 1
		}
		killAll() // a failed suite may have left children
	}
	return status
}

func sortedSuites() []string {
	var names []string
	for n := range suites {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func listSuites(w io.Writer) {
	for _, n := range sortedSuites() {
		fmt.Fprintf(w, "  %-12s %s\n", n, suites[n].doc)
	}
}

// machine describes where the figures come from.
func machine(python string) string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	py := "no python"
	if python != "" {
		if out, err := exec.Command(python, "--version").CombinedOutput(); err == nil {
			py = strings.TrimSpace(string(out))
		}
	}
	return fmt.Sprintf("%s, %s %s/%s, %d CPUs (%s), %s",
		time.Now().Format("2006-01-02"), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), cpu, py)
}

// findPython returns the interpreter for the Python baselines, or "".
// Baselines use only the standard library, so any python3 will do.
func findPython(flagValue string) string {
	if flagValue == "none" {
		return ""
	}
	for _, p := range []string{flagValue, os.Getenv("MPROC_PYTHON"), "python3", "/usr/bin/python3"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	fmt.Fprintln(os.Stderr, "bench: no python3 found; Python columns stay empty")
	return ""
}

// Children.

var live struct {
	mu   sync.Mutex
	kids map[*child]bool
}

// child is a running child process of this bench.
type child struct {
	role string
	cmd  *exec.Cmd
	done chan struct{} // closed when reaped
	err  error         // from Wait; valid after done
}

// startChild starts this binary as a child running role with args. setup,
// if not nil, prepares cmd before it starts (Share what the child inherits).
// The caller closes its copies of the ends it gave away after startChild
// returns, and ends the child with wait or kill.
func startChild(role string, args []string, setup func(cmd *exec.Cmd) error) (*child, error) {
	if _, ok := children[role]; !ok {
		return nil, fmt.Errorf("bench: no child role %q", role)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if setup != nil {
		if err := setup(cmd); err != nil {
			return nil, fmt.Errorf("bench: set up child %s: %w", role, err)
		}
	}
	return start(role, cmd)
}

// start starts cmd in its own process group, tracked until reaped.
func start(role string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &child{role: role, cmd: cmd, done: make(chan struct{})}
	live.mu.Lock()
	defer live.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start child %s: %w", role, err)
	}
	if live.kids == nil {
		live.kids = map[*child]bool{}
	}
	live.kids[c] = true
	go func() {
		c.err = cmd.Wait()
		live.mu.Lock()
		delete(live.kids, c)
		live.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// wait waits for the child to exit, killing it (and its process group) when
// it takes longer than timeout, and reports how it ended.
func (c *child) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.kill()
		return fmt.Errorf("bench: child %s still running after %v: killed", c.role, timeout)
	}
	if c.err != nil {
		return fmt.Errorf("bench: child %s: %w", c.role, c.err)
	}
	return nil
}

// kill kills the child's process group and reaps the child.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// killAll kills and reaps every child still running.
func killAll() {
	live.mu.Lock()
	kids := make([]*child, 0, len(live.kids))
	for c := range live.kids {
		kids = append(kids, c)
	}
	live.mu.Unlock()
	for _, c := range kids {
		c.kill()
	}
}

// shareFile hands f to the child cmd will start under name (the share
// protocol of internal/share, kind "file"); the child calls inheritFile.
func shareFile(cmd *exec.Cmd, name string, f *os.File) error {
	return share.Add(cmd, name, fileKind, f)
}

// inheritFile returns the file a parent handed over with shareFile.
func inheritFile(name string) (*os.File, error) {
	obj, err := share.Inherit(name, fileKind, func(files []*os.File) (any, error) {
		if len(files) != 1 {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("want 1 descriptor, got %d", len(files))
		}
		return files[0], nil
	})
	if err != nil {
		return nil, err
	}
	return obj.(*os.File), nil
}

// runPython runs script (named name, for tracebacks) with cfg.python and
// args, as a tracked child killed after timeout, and returns its stdout.
func runPython(cfg *config, name string, script []byte, timeout time.Duration, args ...string) ([]byte, error) {
	if cfg.python == "" {
		return nil, errors.New("bench: no python")
	}
	dir, err := os.MkdirTemp("", "mproc-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(cfg.python, append([]string{"-u", path}, args...)...)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	c, err := start("python "+name, cmd)
	if err != nil {
		return nil, err
	}
	if err := c.wait(timeout); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Statistics and formatting.

// median returns the median of xs (NaN for none), ignoring NaNs.
func median(xs []float64) float64 {
	xs = slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted samples,
// nearest rank.
func percentile[T cmp.Ordered](sorted []T, p float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// minMax returns the smallest and largest of xs, ignoring NaNs.
func minMax(xs []float64) (lo, hi float64) {
	lo, hi = math.NaN(), math.NaN()
	for _, x := range xs {
		if math.IsNaN(x) {
			continue
		}
		if math.IsNaN(lo) || x < lo {
			lo = x
		}
		if math.IsNaN(hi) || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// fmtRate formats a count per second: "612k msg/s".
func fmtRate(perSec float64, unit string) string {
	if math.IsNaN(perSec) {
		return "-"
	}
	switch {
	case perSec >= 1e6:
		return fmt.Sprintf("%.2fM %s", perSec/1e6, unit)
	case perSec >= 1e3:
		return fmt.Sprintf("%.0fk %s", perSec/1e3, unit)
	}
	return fmt.Sprintf("%.0f %s", perSec, unit)
}

// fmtBytesRate formats bytes per second in decimal units: "1.23 GB/s".
func fmtBytesRate(bps float64) string {
	if math.IsNaN(bps) {
		return "-"
	}
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.0f MB/s", bps/1e6)
	}
	return fmt.Sprintf("%.0f kB/s", bps/1e3)
}

// fmtDur formats a duration given in nanoseconds: "9.8 µs".
func fmtDur(ns float64) string {
	if math.IsNaN(ns) {
		return "-"
	}
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e4:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// fmtRatio formats a ratio: "0.97".
func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

// table is a result table printed with aligned columns.
type table struct {
	cols []string
	rows [][]string
}

func newTable(cols ...string) *table { return &table{cols: cols} }

// row adds a row; missing cells print empty.
func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

// write prints title, the table and a blank line to w.
func (t *table) write(w io.Writer, title string) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		for i := range t.cols {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			fmt.Fprint(tw, c, "\t")
		}
		fmt.Fprintln(tw)
	}
	line(t.cols)
	sep := make([]string, len(t.cols))
	for i, c := range t.cols {
		sep[i] = strings.Repeat("-", len([]rune(c)))
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}
