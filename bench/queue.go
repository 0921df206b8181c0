package main

// The queue suite: simplequeue, queue and joinable between real
// processes, one producer and one or two consumers, measured the
// outsider's way (items.go): mproc, the packet limit (simplequeue's rows)
// and Python's multiprocessing (fork) in the same run, interleaved.
//
// The producer puts its n prebuilt items, then one sentinel per consumer,
// and closes (which flushes); each consumer gets until its sentinel and
// reports how many items it got and when it decoded the last. For a
// joinable queue every Get is followed by TaskDone and the producer Joins;
// the clock runs to Join's return.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/queue"
	"github.com/mproc-go/mproc/simplequeue"
)

func init() {
	register(suite{name: "queue", doc: "SimpleQueue, Queue and JoinableQueue, 1 producer -> 1 and 2 consumers, vs the packet limit and Python's multiprocessing", run: runQueue})
	registerChild("queue-produce", queueProduce)
	registerChild("queue-consume", queueConsume)
}

// queueCase is one row of the table.
type queueCase struct {
	kind      string // "simplequeue", "queue", "joinable": see queueCreate
	shape     string // shapeItem or shape1MiB
	maxsize   int    // 0: unbounded
	consumers int
	python    string  // the case in items_bench.py
	limit     bool    // measure the packet limit too
	vsLimit   float64 // mproc/limit to reach (median)
	vsPython  float64 // mproc/python to reach
	every     bool    // vsPython must hold in every run, not only the median
}

func (c queueCase) label() string {
	what := ""
	if c.shape == shape1MiB {
		what = ", 1 MiB bytes"
	}
	if c.maxsize > 0 {
		what += fmt.Sprintf(", maxsize %d", c.maxsize)
	}
	return fmt.Sprintf("%s 1->%d%s", c.kind, c.consumers, what)
}

var queueCases = []queueCase{
	{kind: "simplequeue", shape: shapeItem, consumers: 1, python: "simplequeue", limit: true, vsLimit: 0.85},
	{kind: "simplequeue", shape: shapeItem, consumers: 2, python: "simplequeue", limit: true, vsLimit: 0.85},
	{kind: "queue", shape: shapeItem, consumers: 1, python: "queue", vsPython: 3, every: true},
	{kind: "queue", shape: shapeItem, consumers: 2, python: "queue", vsPython: 3, every: true},
	{kind: "joinable", shape: shapeItem, consumers: 1, python: "joinablequeue", vsPython: 3, every: true},
	{kind: "joinable", shape: shapeItem, consumers: 2, python: "joinablequeue", vsPython: 3, every: true},
	// Bounded in both, or Python's producer, which only appends references
	// to its feeder's buffer, runs far ahead of its consumers.
	{kind: "queue", shape: shape1MiB, maxsize: 8, consumers: 1, python: "queue1MiB", vsPython: 2},
}

// The packet limits: a packet (O_DIRECT) pipe and a SOCK_SEQPACKET
// socketpair, bare blocking descriptors.
const (
	limitODirect   = "limit-odirect"
	limitSeqpacket = "limit-seqpacket"
)

// queueOps is a queue as the bench children use it, whatever its kind.
type queueOps[T any] struct {
	put   func(ctx context.Context, v T) error
	get   func(ctx context.Context) (T, error)
	got   func() error                    // after each get (a JoinableQueue's TaskDone)
	close func() error                    // after the producer's sentinels, or a consumer's last get
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
	case limitODirect, limitSeqpacket:
		var r, w *os.File
		if kind == limitODirect {
			r, w, err = rawPipe(true)
		} else {
			w, r, err = rawSocketpair(unix.SOCK_SEQPACKET)
		}
		if err != nil {
			return nil, nil, err
		}
		share := func(cmd *exec.Cmd) error {
			if err := shareFile(cmd, "r", r); err != nil {
				return err
			}
			return shareFile(cmd, "w", w)
		}
		return share, func() error { return errors.Join(r.Close(), w.Close()) }, nil
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
		return queueOps[T]{put: q.Put, get: q.Get, got: nop, close: q.Close}, nil
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
	case limitODirect, limitSeqpacket:
		r, err := inheritFile("r")
		if err != nil {
			return queueOps[T]{}, err
		}
		w, err := inheritFile("w")
		if err != nil {
			return queueOps[T]{}, err
		}
		fw := newFrameWriter(rawFD(w.Fd()), false)
		pr := &packetReader{r: rawFD(r.Fd())}
		return queueOps[T]{
			put: func(_ context.Context, v T) error { return fw.send(&v) },
			get: func(context.Context) (T, error) {
				var v T
				err := pr.recv(&v)
				return v, err
			},
			got:   nop,
			close: func() error { return errors.Join(r.Close(), w.Close()) },
		}, nil
	}
	return queueOps[T]{}, fmt.Errorf("no queue kind %q", kind)
}

func runQueue(cfg *config) error {
	impls := []string{implMproc, implLimit, implPython}
	type key struct {
		ci   int
		impl string
	}
	var runs []map[key]outcome
	for run := range cfg.count {
		fmt.Fprintf(os.Stderr, "bench: queue run %d/%d\n", run+1, cfg.count)
		res := map[key]outcome{}
		for ci, c := range queueCases {
			count := shapeCount(c.shape, cfg.items)
			for k := range impls {
				impl := impls[(k+run+ci)%len(impls)] // who goes first changes from case to case and run to run
				var o outcome
				var err error
				switch impl {
				case implMproc:
					o, err = queueMeasure(c.kind, c, count)
				case implLimit:
					if !c.limit {
						continue
					}
					// The better of the two packet transports.
					var o2 outcome
					if o, err = queueMeasure(limitODirect, c, count); err == nil {
						if o2, err = queueMeasure(limitSeqpacket, c, count); err == nil {
							res[key{ci, limitODirect}], res[key{ci, limitSeqpacket}] = o, o2
							if o2.rate > o.rate {
								o = o2
							}
						}
					}
				case implPython:
					if cfg.python == "" {
						continue
					}
					o, err = pythonMeasure(cfg, "--suite", "queue", "--case", c.python,
						"--consumers", strconv.Itoa(c.consumers), "--n", strconv.Itoa(count))
				}
				if err != nil {
					return fmt.Errorf("%s, %s: %w", c.label(), impl, err)
				}
				res[key{ci, impl}] = o
			}
		}
		runs = append(runs, res)
	}
	col := func(k key, f func(outcome) float64) []float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			o, ok := r[k]
			if !ok {
				xs[i] = nan
				continue
			}
			xs[i] = f(o)
		}
		return xs
	}
	rate := func(o outcome) float64 { return o.rate }
	cpu := func(o outcome) float64 { return o.cpu }
	t := newTable("case", "mproc", "packet limit", "python", "mproc/limit (range)", "mproc/python (range)", "target", "CPU/item mproc", "CPU/item limit", "CPU/item python", "limit O_DIRECT/SEQPACKET")
	for ci, c := range queueCases {
		m, l, p := col(key{ci, implMproc}, rate), col(key{ci, implLimit}, rate), col(key{ci, implPython}, rate)
		cell := func(v float64) string { return fmtRate(v, "items/s") }
		if c.shape == shape1MiB {
			cell = func(v float64) string { return fmtBytesRate(v * (1 << 20)) }
		}
		vsLimit := ""
		var target []string
		if c.limit {
			vsLimit = ratioCell(ratios(m, l))
			target = append(target, "limit "+targetCell(ratios(m, l), c.vsLimit))
		}
		if c.vsPython > 0 {
			rs := ratios(m, p)
			if c.every {
				lo, _ := minMax(rs)
				target = append(target, "python "+targetCell([]float64{lo}, c.vsPython)+" every run")
			} else {
				target = append(target, "python "+targetCell(rs, c.vsPython))
			}
		}
		t.row(c.label(), cell(median(m)), cell(median(l)), cell(median(p)), vsLimit, ratioCell(ratios(m, p)),
			joinCells(target), fmtDur(median(col(key{ci, implMproc}, cpu))), fmtDur(median(col(key{ci, implLimit}, cpu))),
			fmtDur(median(col(key{ci, implPython}, cpu))), which(col(key{ci, limitODirect}, rate), col(key{ci, limitSeqpacket}, rate)))
	}
	return t.write(cfg.out, fmt.Sprintf("queue: 1 producer process puts %d prebuilt items (1 MiB: %d) -> N consumer processes; barrier, first Put to last decoded item (joinable: Join's return);\n"+
		"packet limit: one msgpack item per packet, one write(2)/read(2) per item, the better of an O_DIRECT pipe and SOCK_SEQPACKET; python: multiprocessing, fork",
		cfg.items, shapeCount(shape1MiB, cfg.items)))
}

// which says how the two packet limits compare: the median of their ratio.
func which(odirect, seqpacket []float64) string {
	m := median(ratios(odirect, seqpacket))
	if math.IsNaN(m) {
		return ""
	}
	return fmtRatio(m)
}

func joinCells(cs []string) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += "; "
		}
		s += c
	}
	return s
}

// queueMeasure runs one Go measurement of c over kind (c.kind or a limit).
func queueMeasure(kind string, c queueCase, count int) (outcome, error) {
	b, err := newBarrier()
	if err != nil {
		return outcome{}, err
	}
	defer b.close()
	var share func(*exec.Cmd) error
	var closeQ func() error
	if c.shape == shape1MiB {
		share, closeQ, err = queueCreate[[]byte](kind, c.maxsize)
	} else {
		share, closeQ, err = queueCreate[item](kind, c.maxsize)
	}
	if err != nil {
		return outcome{}, err
	}
	defer closeQ()
	var kids []*child
	defer func() {
		for _, k := range kids {
			k.kill()
		}
	}()
	outs := make([]*bytes.Buffer, c.consumers+1) // the consumers', then the producer's
	for i := range outs {
		outs[i] = new(bytes.Buffer)
		role, args := "queue-consume", []string{kind, c.shape}
		if i == c.consumers {
			role, args = "queue-produce", []string{kind, c.shape, strconv.Itoa(count), strconv.Itoa(c.consumers)}
		}
		k, err := startChild(role, args, func(cmd *exec.Cmd) error {
			cmd.Stdout = outs[i]
			if err := b.share(cmd); err != nil {
				return err
			}
			return share(cmd)
		})
		if err != nil {
			return outcome{}, err
		}
		kids = append(kids, k)
	}
	closeQ() // the parent's copy: the children hold theirs
	b.started()
	if err := b.release(len(kids), 60*time.Second); err != nil {
		return outcome{}, err
	}
	var used time.Duration
	for _, k := range kids {
		if err := k.wait(120 * time.Second); err != nil {
			return outcome{}, err
		}
		used += childUsage(k)
	}
	var n int
	var start, last int64
	for i, out := range outs {
		r, err := parseReport(out)
		if err != nil {
			return outcome{}, err
		}
		if i == c.consumers {
			start = r.Start
		}
		n += r.N
		last = max(last, r.Last)
	}
	if n != count {
		return outcome{}, fmt.Errorf("%s: consumers got %d items, want %d", kind, n, count)
	}
	return rateOf(count, start, last, used), nil
}

// queueProduce (child): args kind, shape, count, consumers. Puts count
// prebuilt items, then one sentinel per consumer; Joins a joinable queue;
// closes (flushing).
func queueProduce(args []string) error {
	if len(args) != 4 {
		return errors.New("want kind, shape, count, consumers")
	}
	count, err1 := strconv.Atoi(args[2])
	consumers, err2 := strconv.Atoi(args[3])
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if args[1] == shape1MiB {
		p := payload1MiB()
		items := make([][]byte, count)
		for i := range items {
			items[i] = p
		}
		return produce(args[0], items, consumers, []byte{})
	}
	return produce(args[0], makeItems(count), consumers, sentinelItem)
}

func produce[T any](kind string, items []T, consumers int, sentinel T) error {
	q, err := queueOpen[T](kind)
	if err != nil {
		return err
	}
	if err := awaitBarrier(); err != nil {
		return err
	}
	ctx := context.Background()
	r := report{Start: time.Now().UnixNano()}
	for _, v := range items {
		if err := q.put(ctx, v); err != nil {
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
		r.Last = time.Now().UnixNano()
	}
	if err := q.close(); err != nil {
		return err
	}
	return printReport(r)
}

// queueConsume (child): args kind, shape. Gets until a sentinel, then
// reports.
func queueConsume(args []string) error {
	if len(args) != 2 {
		return errors.New("want kind, shape")
	}
	if args[1] == shape1MiB {
		return consume(args[0], func(v []byte) bool { return len(v) == 0 })
	}
	return consume(args[0], func(v item) bool { return v.ID < 0 })
}

func consume[T any](kind string, sentinel func(T) bool) error {
	q, err := queueOpen[T](kind)
	if err != nil {
		return err
	}
	if err := awaitBarrier(); err != nil {
		return err
	}
	var r report
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
		r.Last = time.Now().UnixNano()
		r.N++
	}
	if err := q.close(); err != nil {
		return err
	}
	return printReport(r)
}
