package main

// The queue suite: simplequeue.Queue and queue.Queue between real
// processes, side by side with Python's multiprocessing.SimpleQueue and
// Queue doing the same work (bench/python/queue_bench.py).
//
// One measurement: the parent creates the queue and starts the consumers,
// then one producer; the producer puts for the measurement's duration,
// then one sentinel per consumer, and closes (which flushes); each consumer
// gets until its sentinel and reports how many items it got and when it
// got the first and the last. The rate is the items got by all consumers
// from the first to the last: start-up is not counted, and the time the
// consumers take to drain what the producer got ahead by is. Python's
// script does exactly that with multiprocessing.Process.
//
// Adding a case: a row in queueCases, and, for a new kind of queue, a
// branch in queueCreate and queueOpen (and the same case in the Python
// script's CASES).

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/queue"
	"github.com/mproc-go/mproc/simplequeue"
)

//go:embed python/queue_bench.py
var queuePython []byte

func init() {
	register(suite{name: "queue", doc: "SimpleQueue, Queue and JoinableQueue, 1 producer -> 1 and 2 consumers, vs Python's multiprocessing", run: runQueue})
	registerChild("queue-produce", queueProduce)
	registerChild("queue-consume", queueConsume)
}

// queueCase is one row of the table.
type queueCase struct {
	kind      string  // "simplequeue", "queue": see queueCreate
	size      int     // item: 0 for the small struct (smallMsg), else a []byte of size bytes
	maxsize   int     // 0: unbounded
	consumers int     // consumer processes; one producer
	python    string  // the case name in queue_bench.py
	target    float64 // mproc/python to reach
}

func (c queueCase) label() string {
	what := "small struct"
	if c.size > 0 {
		what = fmt.Sprintf("%d KiB bytes", c.size>>10)
	}
	if c.maxsize > 0 {
		what += fmt.Sprintf(", maxsize %d", c.maxsize)
	}
	return fmt.Sprintf("%s 1->%d, %s", c.kind, c.consumers, what)
}

var queueCases = []queueCase{
	{kind: "simplequeue", consumers: 1, python: "simplequeue", target: 1.5},
	{kind: "simplequeue", consumers: 2, python: "simplequeue", target: 1.5},
	{kind: "queue", consumers: 1, python: "queue", target: 3},
	{kind: "queue", consumers: 2, python: "queue", target: 3},
	// TaskDone after each Get, Join in the producer: the time runs to the
	// end of Join.
	{kind: "joinable", consumers: 1, python: "joinablequeue", target: 3},
	{kind: "joinable", consumers: 2, python: "joinablequeue", target: 3},
	// Bounded in both, or Python's producer, which only appends references
	// to its feeder's buffer, runs minutes ahead of its consumers.
	{kind: "queue", size: 1 << 20, maxsize: 8, consumers: 1, python: "queue1MiB", target: 2},
	{kind: "queue", size: 1 << 20, maxsize: 8, consumers: 2, python: "queue1MiB", target: 2},
}

// queueStats is what a consumer reports on stdout.
type queueStats struct {
	N     int   `json:"n"`
	First int64 `json:"first"` // Unix ns of the first item got
	Last  int64 `json:"last"`  // and of the last
}

// queueOps is a queue as the bench children use it, whatever its kind.
type queueOps[T any] struct {
	put   func(ctx context.Context, v T) error
	get   func(ctx context.Context) (T, error)
	got   func() error                    // after each get (a JoinableQueue's TaskDone)
	close func() error                    // the producer's, after its sentinels (Join, then Close)
	join  func(ctx context.Context) error // nil, or a JoinableQueue's Join, run by the producer before close
}

// queueCreate creates a queue of kind in the parent; share hands it to a
// child, close closes the parent's copy.
func queueCreate[T any](kind string, maxsize int) (share func(cmd *exec.Cmd) error, close func() error, err error) {
	switch kind {
	case "simplequeue":
		q, err := simplequeue.New[T]()
		if err != nil {
			return nil, nil, err
		}
		return func(cmd *exec.Cmd) error { return q.Share(cmd, "q") }, q.Close, nil
	case "queue":
		q, err := queue.New[T](maxsize)
		if err != nil {
			return nil, nil, err
		}
		return func(cmd *exec.Cmd) error { return q.Share(cmd, "q") }, q.Close, nil
	case "joinable":
		q, err := joinable.New[T](maxsize)
		if err != nil {
			return nil, nil, err
		}
		return func(cmd *exec.Cmd) error { return q.Share(cmd, "q") }, q.Close, nil
	}
	return nil, nil, fmt.Errorf("no queue kind %q", kind)
}

// queueOpen opens, in a child, the queue of kind shared as "q".
func queueOpen[T any](kind string) (queueOps[T], error) {
	nop := func() error { return nil }
	switch kind {
	case "simplequeue":
		q, err := simplequeue.Inherit[T]("q")
		if err != nil {
			return queueOps[T]{}, err
		}
		return queueOps[T]{
			put:   func(ctx context.Context, v T) error { return q.PutContext(ctx, v) },
			get:   q.GetContext,
			got:   nop,
			close: q.Close,
		}, nil
	case "queue":
		q, err := queue.Inherit[T]("q")
		if err != nil {
			return queueOps[T]{}, err
		}
		return queueOps[T]{put: q.Put, get: q.Get, got: nop, close: q.Close}, nil
	case "joinable":
		q, err := joinable.Inherit[T]("q")
		if err != nil {
			return queueOps[T]{}, err
		}
		return queueOps[T]{put: q.Put, get: q.Get, got: q.TaskDone, close: q.Close, join: q.Join}, nil
	}
	return queueOps[T]{}, fmt.Errorf("no queue kind %q", kind)
}

func runQueue(cfg *config) error {
	type result struct{ mproc, python, mcpu, pcpu float64 } // items/s (bytes/s when sized); CPU ns per item
	runs := make([][]result, len(queueCases))
	for run := range cfg.count {
		fmt.Fprintf(os.Stderr, "bench: queue run %d/%d\n", run+1, cfg.count)
		for ci, c := range queueCases {
			r := result{mproc: math.NaN(), python: math.NaN(), mcpu: math.NaN(), pcpu: math.NaN()}
			sides := []func() error{
				func() (err error) { r.mproc, r.mcpu, err = queueMeasure(cfg, c); return err },
				func() (err error) { r.python, r.pcpu, err = queuePythonMeasure(cfg, c); return err },
			}
			if (run+ci)%2 == 1 { // who goes first changes from case to case and run to run
				sides[0], sides[1] = sides[1], sides[0]
			}
			for _, side := range sides {
				if err := side(); err != nil {
					return fmt.Errorf("%s: %w", c.label(), err)
				}
			}
			runs[ci] = append(runs[ci], r)
		}
	}
	t := newTable("case", "mproc", "python", "mproc/python", "range (runs)", "target",
		"CPU/item mproc", "CPU/item python", "python/mproc CPU")
	for ci, c := range queueCases {
		var ms, ps, ratios, mc, pc, cpuRatios []float64
		for _, r := range runs[ci] {
			ms, ps = append(ms, r.mproc), append(ps, r.python)
			ratios = append(ratios, r.mproc/r.python)
			mc, pc = append(mc, r.mcpu), append(pc, r.pcpu)
			cpuRatios = append(cpuRatios, r.pcpu/r.mcpu)
		}
		lo, hi := minMax(ratios)
		ratio := median(ratios)
		verdict := "-"
		if !math.IsNaN(ratio) {
			verdict = fmt.Sprintf(">= %.1f ", c.target)
			if ratio >= c.target {
				verdict += "ok"
			} else {
				verdict += "MISS"
			}
		}
		cell := func(x float64) string { return fmtRate(x, "items/s") }
		if c.size > 0 {
			cell = fmtBytesRate
		}
		t.row(c.label(), cell(median(ms)), cell(median(ps)), fmtRatio(ratio),
			fmtRatio(lo)+"-"+fmtRatio(hi), verdict,
			fmtDur(median(mc)), fmtDur(median(pc)), fmtRatio(median(cpuRatios)))
	}
	return t.write(cfg.out, "queue: 1 producer process -> N consumer processes, items got per second (1 MiB: bytes/s);\n"+
		"CPU/item: CPU time of all the case's processes per item, which load elsewhere disturbs less than wall-clock rates")
}

// queueMeasure runs one mproc measurement of c and returns items/s (bytes/s
// for sized items) and the CPU time of its processes per item, in ns.
func queueMeasure(cfg *config, c queueCase) (rate, cpu float64, err error) {
	if c.size > 0 {
		return queueMeasureT[[]byte](cfg, c)
	}
	return queueMeasureT[smallMsg](cfg, c)
}

func queueMeasureT[T any](cfg *config, c queueCase) (rate, cpu float64, err error) {
	share, closeQ, err := queueCreate[T](c.kind, c.maxsize)
	if err != nil {
		return 0, 0, err
	}
	defer closeQ()
	setup := func(cmd *exec.Cmd) error { return share(cmd) }
	outs := make([]*bytes.Buffer, c.consumers)
	var kids []*child
	defer func() {
		for _, k := range kids {
			k.kill()
		}
	}()
	for i := range outs {
		outs[i] = new(bytes.Buffer)
		out := outs[i]
		k, err := startChild("queue-consume", []string{c.kind, strconv.Itoa(c.size)}, func(cmd *exec.Cmd) error {
			cmd.Stdout = out
			return setup(cmd)
		})
		if err != nil {
			return 0, 0, err
		}
		kids = append(kids, k)
	}
	prodOut := new(bytes.Buffer) // a JoinableQueue's producer reports when Join returned
	prod, err := startChild("queue-produce",
		[]string{c.kind, strconv.Itoa(c.size), cfg.duration.String(), strconv.Itoa(c.consumers)},
		func(cmd *exec.Cmd) error {
			cmd.Stdout = prodOut
			return setup(cmd)
		})
	if err != nil {
		return 0, 0, err
	}
	kids = append(kids, prod)
	closeQ() // the parent's copy: the children hold theirs
	timeout := 60*time.Second + 100*cfg.duration
	for _, k := range kids {
		if err := k.wait(timeout); err != nil {
			return 0, 0, err
		}
	}
	var n int
	var first, last int64 = math.MaxInt64, 0
	for _, out := range outs {
		var s queueStats
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			return 0, 0, fmt.Errorf("consumer output %q: %w", out.String(), err)
		}
		if s.N == 0 {
			continue
		}
		n += s.N
		first, last = min(first, s.First), max(last, s.Last)
	}
	if prodOut.Len() > 0 {
		var j struct {
			Joined int64 `json:"joined"`
		}
		if err := json.Unmarshal(prodOut.Bytes(), &j); err != nil {
			return 0, 0, fmt.Errorf("producer output %q: %w", prodOut.String(), err)
		}
		last = max(last, j.Joined)
	}
	if n == 0 || last <= first {
		return math.NaN(), math.NaN(), nil
	}
	var used time.Duration
	for _, k := range kids {
		used += k.cmd.ProcessState.UserTime() + k.cmd.ProcessState.SystemTime()
	}
	rate = float64(n) * float64(max(c.size, 1)) / time.Duration(last-first).Seconds()
	return rate, float64(used.Nanoseconds()) / float64(n), nil
}

// queuePythonMeasure runs the same case through queue_bench.py.
func queuePythonMeasure(cfg *config, c queueCase) (rate, cpu float64, err error) {
	if cfg.python == "" {
		return math.NaN(), math.NaN(), nil
	}
	out, err := runPython(cfg, "queue_bench.py", queuePython, 120*time.Second+200*cfg.duration,
		"--case", c.python, "--consumers", strconv.Itoa(c.consumers),
		"--duration", strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64))
	if err != nil {
		return 0, 0, err
	}
	var r struct {
		Items   int     `json:"items"`
		Seconds float64 `json:"seconds"`
		Bytes   float64 `json:"bytes"`
		CPU     float64 `json:"cpu"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, 0, fmt.Errorf("python output %q: %w", out, err)
	}
	if r.Seconds <= 0 || r.Items == 0 {
		return math.NaN(), math.NaN(), nil
	}
	cpu = r.CPU * 1e9 / float64(r.Items)
	if c.size > 0 {
		return r.Bytes / r.Seconds, cpu, nil
	}
	return float64(r.Items) / r.Seconds, cpu, nil
}

// queueProduce (child): args kind, size, duration, consumers. Puts for
// duration, then one sentinel per consumer, then closes (flushing).
func queueProduce(args []string) error {
	if len(args) != 4 {
		return errors.New("want kind, size, duration, consumers")
	}
	size, err1 := strconv.Atoi(args[1])
	d, err2 := time.ParseDuration(args[2])
	consumers, err3 := strconv.Atoi(args[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	if size > 0 {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i)
		}
		return produce(args[0], d, consumers, func(int) []byte { return payload }, []byte{})
	}
	msg := sampleMsg()
	return produce(args[0], d, consumers, func(i int) smallMsg { msg.ID = int64(i); return msg }, smallMsg{ID: -1})
}

func produce[T any](kind string, d time.Duration, consumers int, next func(int) T, sentinel T) error {
	q, err := queueOpen[T](kind)
	if err != nil {
		return err
	}
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for i := 0; i%64 != 0 || time.Now().Before(deadline); i++ {
		if err := q.put(ctx, next(i)); err != nil {
			return err
		}
	}
	for range consumers {
		if err := q.put(ctx, sentinel); err != nil {
			return err
		}
	}
	if q.join != nil {
		if err := q.join(ctx); err != nil {
			return err
		}
		joined := time.Now().UnixNano()
		if err := json.NewEncoder(os.Stdout).Encode(map[string]int64{"joined": joined}); err != nil {
			return err
		}
	}
	return q.close()
}

// queueConsume (child): args kind, size. Gets until a sentinel, then
// prints its queueStats.
func queueConsume(args []string) error {
	if len(args) != 2 {
		return errors.New("want kind, size")
	}
	size, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	if size > 0 {
		return consume(args[0], func(v []byte) bool { return len(v) == 0 })
	}
	return consume(args[0], func(v smallMsg) bool { return v.ID < 0 })
}

func consume[T any](kind string, sentinel func(T) bool) error {
	q, err := queueOpen[T](kind)
	if err != nil {
		return err
	}
	var s queueStats
	ctx := context.Background()
	for {
		v, err := q.get(ctx)
		if err != nil {
			return err
		}
		if err := q.got(); err != nil {
			return err
		}
		if sentinel(v) {
			break
		}
		s.Last = time.Now().UnixNano()
		if s.N == 0 {
			s.First = s.Last
		}
		s.N++
	}
	if err := q.close(); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(s)
}
