package main

// The conn suite: one-way messages between two processes, the child
// Sends and the parent Recvs, over pipe.Duplex (an AF_UNIX stream
// socketpair) and pipe.Simplex (a pipe), measured the outsider's way
// (items.go): mproc, the framed limit of the same transport and Python's
// multiprocessing.Pipe (fork) in the same run, interleaved.
//
// Shapes: "item", the small struct (n of them), and "1MiB", a
// 1 MiB []byte payload (n/1000 of them) with SendBytes/RecvBytes.

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
)

//go:embed python/items_bench.py
var itemsPython []byte

func init() {
	register(suite{name: "conn", doc: "conn.Conn one-way over pipe.Duplex and pipe.Simplex vs the framed limit and Python's Pipe", run: runConn})
	registerChild("conn-send", connSend)
}

const (
	implMproc  = "mproc"
	implLimit  = "limit"
	implPython = "python"

	transDuplex  = "duplex"
	transSimplex = "simplex"

	shapeItem = "item"
	shape1MiB = "1MiB"
)

// connTarget is the least mproc/framed limit for the item shape.
const connTarget = 0.85

// shapeCount is how many messages of shape a measurement sends.
func shapeCount(shape string, n int) int {
	if shape == shape1MiB {
		return max(n/1000, 20)
	}
	return n
}

func payload1MiB() []byte {
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// connSend (child): args impl transport shape count. Builds what it sends,
// waits at the barrier, sends, closes, and reports its start.
func connSend(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("want impl transport shape count, got %q", args)
	}
	impl, shape := args[0], args[2]
	count, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	var items []item
	var payload []byte
	if shape == shapeItem {
		items = makeItems(count)
	} else {
		payload = payload1MiB()
	}
	var send func(i int) error
	var closeEnd func() error
	switch impl {
	case implMproc:
		c, err := conn.Inherit("c")
		if err != nil {
			return err
		}
		closeEnd = c.Close
		if shape == shapeItem {
			send = func(i int) error { return c.Send(&items[i]) }
		} else {
			send = func(int) error { return c.SendBytes(payload) }
		}
	case implLimit:
		f, err := inheritFile("c")
		if err != nil {
			return err
		}
		closeEnd = f.Close
		w := rawFD(f.Fd())
		fw := newFrameWriter(w, true)
		if shape == shapeItem {
			send = func(i int) error { return fw.send(&items[i]) }
		} else {
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
			send = func(int) error {
				if _, err := w.Write(hdr[:]); err != nil {
					return err
				}
				_, err := w.Write(payload)
				return err
			}
		}
	default:
		return fmt.Errorf("unknown impl %q", impl)
	}
	if err := awaitBarrier(); err != nil {
		return err
	}
	start := time.Now().UnixNano()
	for i := range count {
		if err := send(i); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	if err := closeEnd(); err != nil {
		return err
	}
	return printReport(report{Start: start})
}

// connMeasure runs one Go measurement: the parent receives count messages.
func connMeasure(impl, transport, shape string, count int) (outcome, error) {
	b, err := newBarrier()
	if err != nil {
		return outcome{}, err
	}
	defer b.close()
	var recv func(i int) error
	var given func(cmd *exec.Cmd) error
	var closeGiven, closeMine func() error
	var it item
	switch impl {
	case implMproc:
		var mine, theirs *conn.Conn
		if transport == transDuplex {
			mine, theirs, err = pipe.Duplex()
		} else {
			mine, theirs, err = pipe.Simplex()
		}
		if err != nil {
			return outcome{}, err
		}
		given = func(cmd *exec.Cmd) error { return theirs.Share(cmd, "c") }
		closeGiven, closeMine = theirs.Close, mine.Close
		if shape == shapeItem {
			recv = func(i int) error {
				if err := mine.Recv(&it); err != nil {
					return err
				}
				return checkID(it.ID, i)
			}
		} else {
			recv = func(int) error {
				p, err := mine.RecvBytes()
				if err == nil && len(p) != 1<<20 {
					err = fmt.Errorf("got %d bytes", len(p))
				}
				return err
			}
		}
	case implLimit:
		var mine, theirs *os.File
		if transport == transDuplex {
			mine, theirs, err = rawSocketpair(unix.SOCK_STREAM)
		} else {
			mine, theirs, err = rawPipe(false)
		}
		if err != nil {
			return outcome{}, err
		}
		given = func(cmd *exec.Cmd) error { return shareFile(cmd, "c", theirs) }
		closeGiven, closeMine = theirs.Close, mine.Close
		fr := newFrameReader(rawFD(mine.Fd()))
		if shape == shapeItem {
			recv = func(i int) error {
				if err := fr.recv(&it); err != nil {
					return err
				}
				return checkID(it.ID, i)
			}
		} else {
			var hdr [4]byte
			recv = func(int) error {
				if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
					return err
				}
				p := make([]byte, binary.BigEndian.Uint32(hdr[:]))
				_, err := io.ReadFull(fr.r, p)
				return noEOF(err)
			}
		}
	default:
		return outcome{}, fmt.Errorf("unknown impl %q", impl)
	}
	defer closeMine()
	var out bytes.Buffer
	ch, err := startChild("conn-send", []string{impl, transport, shape, strconv.Itoa(count)}, func(cmd *exec.Cmd) error {
		cmd.Stdout = &out
		if err := b.share(cmd); err != nil {
			return err
		}
		return given(cmd)
	})
	closeGiven()
	b.started()
	if err != nil {
		return outcome{}, err
	}
	defer ch.kill()
	if err := b.release(1, 60*time.Second); err != nil {
		return outcome{}, err
	}
	cpu0 := cpuTime()
	for i := range count {
		if err := recv(i); err != nil {
			return outcome{}, fmt.Errorf("%s %s %s: message %d: %w", impl, transport, shape, i, err)
		}
	}
	last := time.Now().UnixNano()
	cpu := cpuTime() - cpu0
	if err := ch.wait(60 * time.Second); err != nil {
		return outcome{}, err
	}
	r, err := parseReport(&out)
	if err != nil {
		return outcome{}, err
	}
	return rateOf(count, r.Start, last, cpu+childUsage(ch)), nil
}

func checkID(got, want int) error {
	if got != want {
		return fmt.Errorf("item %d, want %d", got, want)
	}
	return nil
}

// rateOf turns a count and a clock into an outcome.
func rateOf(count int, start, last int64, cpu time.Duration) outcome {
	secs := time.Duration(last - start).Seconds()
	return outcome{rate: float64(count) / secs, cpu: float64(cpu.Nanoseconds()) / float64(count)}
}

// pythonMeasure runs one measurement of items_bench.py.
func pythonMeasure(cfg *config, args ...string) (outcome, error) {
	out, err := runPython(cfg, "items_bench.py", itemsPython, 180*time.Second, args...)
	if err != nil {
		return outcome{}, err
	}
	var r struct {
		Items   int     `json:"items"`
		Seconds float64 `json:"seconds"`
		CPU     float64 `json:"cpu"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return outcome{}, fmt.Errorf("items_bench.py output %q: %w", out, err)
	}
	return outcome{rate: float64(r.Items) / r.Seconds, cpu: r.CPU * 1e9 / float64(r.Items)}, nil
}

func runConn(cfg *config) error {
	type key struct{ transport, shape, impl string }
	runs := make([]map[key]outcome, 0, cfg.count)
	impls := []string{implMproc, implLimit, implPython}
	shapes := []string{shapeItem, shape1MiB}
	for run := range cfg.count {
		fmt.Fprintf(os.Stderr, "bench: conn run %d/%d\n", run+1, cfg.count)
		res := map[key]outcome{}
		ci := 0
		for _, transport := range []string{transDuplex, transSimplex} {
			for _, shape := range shapes {
				count := shapeCount(shape, cfg.items)
				for k := range impls {
					impl := impls[(k+run+ci)%len(impls)] // who goes first changes from case to case and run to run
					var o outcome
					var err error
					if impl == implPython {
						if cfg.python == "" {
							continue
						}
						o, err = pythonMeasure(cfg, "--suite", "conn", "--transport", transport, "--shape", shape, "--n", strconv.Itoa(count))
					} else {
						o, err = connMeasure(impl, transport, shape, count)
					}
					if err != nil {
						return err
					}
					res[key{transport, shape, impl}] = o
				}
				ci++
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
	t := newTable("transport", "shape", "mproc", "framed limit", "python", "mproc/limit (range)", "target", "mproc/python (range)", "CPU/msg mproc", "CPU/msg limit")
	for _, transport := range []string{transDuplex, transSimplex} {
		for _, shape := range shapes {
			m, l, p := col(key{transport, shape, implMproc}, rate), col(key{transport, shape, implLimit}, rate), col(key{transport, shape, implPython}, rate)
			cell, label := func(v float64) string { return fmtRate(v, "msg/s") }, "item struct"
			target := ""
			if shape == shape1MiB {
				cell, label = func(v float64) string { return fmtBytesRate(v * (1 << 20)) }, "1 MiB bytes"
			} else {
				target = targetCell(ratios(m, l), connTarget)
			}
			t.row("pipe."+map[string]string{transDuplex: "Duplex", transSimplex: "Simplex"}[transport], label,
				cell(median(m)), cell(median(l)), cell(median(p)),
				ratioCell(ratios(m, l)), target, ratioCell(ratios(m, p)),
				fmtDur(median(col(key{transport, shape, implMproc}, cpu))), fmtDur(median(col(key{transport, shape, implLimit}, cpu))))
		}
	}
	return t.write(cfg.out, fmt.Sprintf("conn: child Sends %d items (1 MiB: %d), parent Recvs; barrier, first Send to last decoded item;\n"+
		"framed limit: one write(2) per frame, 64 KiB bufio.Reader + msgpack.Unmarshal, blocking descriptors; python: multiprocessing.Pipe, fork",
		cfg.items, shapeCount(shape1MiB, cfg.items)))
}

// ratios returns a[i]/b[i].
func ratios(a, b []float64) []float64 {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
	}
	return rs
}
