package main

// The conn suite: conn.Conn between two processes, over a pipe
// (pipe.Simplex) and an AF_UNIX stream socketpair (pipe.Duplex), side by
// side with a hand-written framed reader/writer over the same kind of
// descriptor and with Python's multiprocessing.Pipe.
//
// The hand-written side is what a careful programmer writes in a few lines:
// the same 4-byte header, a reused buffer and msgpack encoder, one write per
// frame (over 64 KiB, the header and the payload in two writes rather than
// a copy of the payload, which is faster), io.ReadFull of the header then
// of the body. Like RecvBytes, its byte reader returns a fresh slice per
// message (the caller owns it); its struct reader decodes from a reused
// buffer, as Recv does. So the ratio measures what conn's machinery costs
// (locks, pools, ctx and closed checks, error mapping), not a difference
// in work.
//
// Each case of a run is cut into connRounds slices per side, alternating
// ABBAABBA; one child process per slice, timed from its first message, so
// start-up is not counted. CPU per message adds the CPU time of both
// processes (the child reports its own on stdout).

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/pipe"
)

//go:embed python/conn_bench.py
var connPython []byte

func init() {
	register(suite{name: "conn", doc: "conn.Conn over pipe and socketpair vs a hand-written framer and Python's Pipe", run: runConn})
	registerChild("conn-send", connSend)
	registerChild("conn-echo", connEcho)
}

// smallMsg is the small struct: 61 bytes of msgpack.
type smallMsg struct {
	ID    int64    `msgpack:"id"`
	Kind  string   `msgpack:"kind"`
	Score float64  `msgpack:"score"`
	Tags  []string `msgpack:"tags"`
	OK    bool     `msgpack:"ok"`
}

func sampleMsg() smallMsg {
	return smallMsg{ID: 123456, Kind: "sample", Score: 3.25, Tags: []string{"alpha", "beta"}, OK: true}
}

const (
	implMproc = "mproc"
	implHand  = "hand"

	transPipe   = "pipe"
	transSocket = "socketpair"
)

// workloads of the one-way throughput measurement, and their payload size
// (0: the small struct).
var connWorkloads = []struct {
	name string
	size int
}{{"struct", 0}, {"1KiB", 1 << 10}, {"1MiB", 1 << 20}}

func workloadSize(name string) (int, error) {
	for _, w := range connWorkloads {
		if w.name == name {
			return w.size, nil
		}
	}
	return 0, fmt.Errorf("unknown workload %q", name)
}

// endpoint is one side of a measurement, mproc or hand-written.
type endpoint interface {
	send(m *smallMsg) error
	recv(m *smallMsg) error
	sendBytes(p []byte) error
	recvBytes() ([]byte, error)
	close() error
}

// mprocEnd is an endpoint made of Conns (in == out for a socketpair).
type mprocEnd struct{ in, out *conn.Conn }

func (e *mprocEnd) send(m *smallMsg) error     { return e.out.Send(m) }
func (e *mprocEnd) recv(m *smallMsg) error     { return e.in.Recv(m) }
func (e *mprocEnd) sendBytes(p []byte) error   { return e.out.SendBytes(p) }
func (e *mprocEnd) recvBytes() ([]byte, error) { return e.in.RecvBytes() }
func (e *mprocEnd) close() error               { return closeBoth(e.in, e.out) }

// handEnd is the hand-written framer over bare files (r == w for a
// socketpair).
type handEnd struct {
	r, w *os.File
	wbuf bytes.Buffer
	enc  *msgpack.Encoder
	rbuf []byte
	hdr  [4]byte // read side
	whdr [4]byte // write side
}

func newHandEnd(r, w *os.File) *handEnd {
	e := &handEnd{r: r, w: w}
	e.enc = msgpack.NewEncoder(&e.wbuf)
	return e
}

func (e *handEnd) send(m *smallMsg) error {
	e.wbuf.Reset()
	e.wbuf.Write([]byte{0, 0, 0, 0})
	if err := e.enc.Encode(m); err != nil {
		return err
	}
	b := e.wbuf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := e.w.Write(b)
	return err
}

func (e *handEnd) sendBytes(p []byte) error {
	hdr := binary.BigEndian.AppendUint32(e.whdr[:0], uint32(len(p)))
	if len(p) > 64<<10 {
		// Copying a big payload costs more than a second write, and a
		// write this large is not atomic anyway.
		if _, err := e.w.Write(hdr); err != nil {
			return err
		}
		_, err := e.w.Write(p)
		return err
	}
	e.wbuf.Reset()
	e.wbuf.Write(hdr)
	e.wbuf.Write(p)
	_, err := e.w.Write(e.wbuf.Bytes())
	return err
}

// readFrame reads one frame into buf when it fits, else a new slice.
func (e *handEnd) readFrame(buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(e.r, e.hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(e.hdr[:]))
	if n > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(e.r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func (e *handEnd) recv(m *smallMsg) error {
	b, err := e.readFrame(e.rbuf)
	if err != nil {
		return err
	}
	e.rbuf = b
	return msgpack.Unmarshal(b, m)
}

func (e *handEnd) recvBytes() ([]byte, error) { return e.readFrame(nil) }

func (e *handEnd) close() error { return closeBoth(e.r, e.w) }

// closeBoth closes a and b, once if they are the same; nil ones are skipped.
func closeBoth[T interface{ Close() error }](a, b T) error {
	var errs []error
	var zero T
	for i, c := range []T{a, b} {
		if any(c) == any(zero) || (i == 1 && any(a) == any(b)) {
			continue
		}
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// openParent creates the transport of one measurement: the parent's
// endpoint, a setup that shares the child's end(s) with the child's cmd,
// and a func that closes the parent's copies of those ends (call it after
// the child has started). The child's ends are "out" (it sends) and, for a
// round trip, "in"; a socketpair end is shared once, as "io".
func openParent(impl, transport string, roundTrip bool) (endpoint, func(*exec.Cmd) error, func(), error) {
	type end struct {
		name string
		c    *conn.Conn
		f    *os.File
	}
	var ep endpoint
	var given []end
	switch {
	case impl == implMproc && transport == transPipe:
		r, w, err := pipe.Simplex()
		if err != nil {
			return nil, nil, nil, err
		}
		e := &mprocEnd{in: r}
		given = append(given, end{name: "out", c: w})
		if roundTrip {
			r2, w2, err := pipe.Simplex()
			if err != nil {
				r.Close()
				w.Close()
				return nil, nil, nil, err
			}
			e.out = w2
			given = append(given, end{name: "in", c: r2})
		}
		ep = e
	case impl == implMproc && transport == transSocket:
		a, b, err := pipe.Duplex()
		if err != nil {
			return nil, nil, nil, err
		}
		ep = &mprocEnd{in: a, out: a}
		given = append(given, end{name: "io", c: b})
	case impl == implHand && transport == transPipe:
		r, w, err := fd.Pipe("bench")
		if err != nil {
			return nil, nil, nil, err
		}
		e := newHandEnd(r, nil)
		given = append(given, end{name: "out", f: w})
		if roundTrip {
			r2, w2, err := fd.Pipe("bench")
			if err != nil {
				r.Close()
				w.Close()
				return nil, nil, nil, err
			}
			e.w = w2
			given = append(given, end{name: "in", f: r2})
		}
		ep = e
	case impl == implHand && transport == transSocket:
		a, b, err := fd.Socketpair(unix.SOCK_STREAM, "bench")
		if err != nil {
			return nil, nil, nil, err
		}
		ep = newHandEnd(a, a)
		given = append(given, end{name: "io", f: b})
	default:
		return nil, nil, nil, fmt.Errorf("unknown impl %q or transport %q", impl, transport)
	}
	setup := func(cmd *exec.Cmd) error {
		for _, g := range given {
			var err error
			if g.c != nil {
				err = g.c.Share(cmd, g.name)
			} else {
				err = shareFile(cmd, g.name, g.f)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	closeGiven := func() {
		for _, g := range given {
			if g.c != nil {
				g.c.Close()
			} else {
				g.f.Close()
			}
		}
	}
	return ep, setup, closeGiven, nil
}

// openChild opens, in the child, the ends openParent shared.
func openChild(impl string) (endpoint, error) {
	_, socket := share.Lookup("io")
	_, hasIn := share.Lookup("in")
	switch impl {
	case implMproc:
		if socket {
			c, err := conn.Inherit("io")
			if err != nil {
				return nil, err
			}
			return &mprocEnd{in: c, out: c}, nil
		}
		e := &mprocEnd{}
		var err error
		if e.out, err = conn.Inherit("out"); err != nil {
			return nil, err
		}
		if hasIn {
			if e.in, err = conn.Inherit("in"); err != nil {
				return nil, err
			}
		}
		return e, nil
	case implHand:
		if socket {
			f, err := inheritFile("io")
			if err != nil {
				return nil, err
			}
			return newHandEnd(f, f), nil
		}
		w, err := inheritFile("out")
		if err != nil {
			return nil, err
		}
		var r *os.File
		if hasIn {
			if r, err = inheritFile("in"); err != nil {
				return nil, err
			}
		}
		return newHandEnd(r, w), nil
	}
	return nil, fmt.Errorf("unknown impl %q", impl)
}

// connSend is the child of a throughput measurement. args: impl
// workload duration. It sends for the duration, closes, and prints the CPU
// time it used on stdout.
func connSend(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want impl workload duration, got %q", args)
	}
	size, err := workloadSize(args[1])
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	ep, err := openChild(args[0])
	if err != nil {
		return err
	}
	defer ep.close()
	cpu0 := cpuTime()
	deadline := time.Now().Add(d)
	m := sampleMsg()
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	every := 64 // messages between two looks at the clock
	if size >= 64<<10 {
		every = 1
	}
	for i := 0; ; i++ {
		if i%every == 0 && time.Now().After(deadline) {
			break
		}
		if size == 0 {
			m.ID = int64(i)
			err = ep.send(&m)
		} else {
			err = ep.sendBytes(p)
		}
		if err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	if err := ep.close(); err != nil {
		return err
	}
	_, err = fmt.Println(int64(cpuTime() - cpu0))
	return err
}

// connEcho is the child of a round-trip measurement. args: impl. It sends
// back every small struct it receives until EOF, then prints the CPU time
// it used on stdout.
func connEcho(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want impl, got %q", args)
	}
	ep, err := openChild(args[0])
	if err != nil {
		return err
	}
	defer ep.close()
	cpu0 := cpuTime()
	var m smallMsg
	for {
		if err := ep.recv(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("recv: %w", err)
		}
		if err := ep.send(&m); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	_, err = fmt.Println(int64(cpuTime() - cpu0))
	return err
}

// sample is what one measurement slice yields.
type sample struct {
	units   float64         // received after the first message: messages (struct) or bytes
	elapsed time.Duration   // from the first message to EOF
	msgs    int             // messages, or round trips, that cpu paid for
	cpu     time.Duration   // CPU time of both processes
	trips   []time.Duration // round trips
}

// startConnChild starts role, collecting the CPU time the child prints.
func startConnChild(role string, args []string, setup func(*exec.Cmd) error, out *bytes.Buffer) (*child, error) {
	return startChild(role, args, func(cmd *exec.Cmd) error {
		cmd.Stdout = out
		return setup(cmd)
	})
}

func childCPU(out *bytes.Buffer) (time.Duration, error) {
	ns, err := strconv.ParseInt(string(bytes.TrimSpace(out.Bytes())), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("child's CPU time: %w (output %q)", err, out.Bytes())
	}
	return time.Duration(ns), nil
}

// measureThroughput runs one one-way measurement slice of about d; the
// parent receives and times from the first message to EOF.
func measureThroughput(impl, transport, workload string, d time.Duration) (sample, error) {
	size, err := workloadSize(workload)
	if err != nil {
		return sample{}, err
	}
	ep, setup, closeGiven, err := openParent(impl, transport, false)
	if err != nil {
		return sample{}, err
	}
	defer ep.close()
	runtime.GC()
	var out bytes.Buffer
	ch, err := startConnChild("conn-send", []string{impl, workload, d.String()}, setup, &out)
	closeGiven()
	if err != nil {
		return sample{}, err
	}
	defer ch.kill()
	cpu0 := cpuTime()
	n, elapsed, err := receiveAll(ep, size)
	cpu := cpuTime() - cpu0
	if err != nil {
		return sample{}, fmt.Errorf("%s %s %s: %w", impl, transport, workload, err)
	}
	if err := ch.wait(d + 30*time.Second); err != nil {
		return sample{}, err
	}
	ccpu, err := childCPU(&out)
	if err != nil {
		return sample{}, err
	}
	s := sample{units: float64(n), elapsed: elapsed, msgs: n + 1, cpu: cpu + ccpu}
	if size > 0 {
		s.units *= float64(size)
	}
	return s, nil
}

// receiveAll receives until EOF and returns how many messages came after
// the first one and the time from the first one to EOF.
func receiveAll(ep endpoint, size int) (int, time.Duration, error) {
	var m smallMsg
	recv := func() error {
		if size == 0 {
			return ep.recv(&m)
		}
		p, err := ep.recvBytes()
		if err == nil && len(p) != size {
			err = fmt.Errorf("got %d bytes, want %d", len(p), size)
		}
		return err
	}
	if err := recv(); err != nil {
		return 0, 0, fmt.Errorf("first message: %w", err)
	}
	start := time.Now()
	n := 0
	for {
		next := m.ID + 1
		err := recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("message %d: %w", n+1, err)
		}
		if size == 0 && m.ID != next {
			return 0, 0, fmt.Errorf("message %d: id %d, want %d", n+1, m.ID, next)
		}
		n++
	}
	return n, time.Since(start), nil
}

// measureRoundTrip runs one round-trip measurement slice of about d.
func measureRoundTrip(impl, transport string, d time.Duration) (sample, error) {
	ep, setup, closeGiven, err := openParent(impl, transport, true)
	if err != nil {
		return sample{}, err
	}
	defer ep.close()
	runtime.GC()
	var out bytes.Buffer
	ch, err := startConnChild("conn-echo", []string{impl}, setup, &out)
	closeGiven()
	if err != nil {
		return sample{}, err
	}
	defer ch.kill()
	m := sampleMsg()
	trip := func() error {
		if err := ep.send(&m); err != nil {
			return err
		}
		return ep.recv(&m)
	}
	const warmUp = 200 // child start, caches, the poller
	cpu0 := cpuTime()
	for range warmUp {
		if err := trip(); err != nil {
			return sample{}, fmt.Errorf("%s %s round trip: %w", impl, transport, err)
		}
	}
	trips := make([]time.Duration, 0, 1<<15)
	deadline := time.Now().Add(d)
	for now := time.Now(); now.Before(deadline); {
		if err := trip(); err != nil {
			return sample{}, fmt.Errorf("%s %s round trip: %w", impl, transport, err)
		}
		t := time.Now()
		trips = append(trips, t.Sub(now))
		now = t
	}
	cpu := cpuTime() - cpu0
	ep.close() // the child sees EOF and exits
	if err := ch.wait(30 * time.Second); err != nil {
		return sample{}, err
	}
	ccpu, err := childCPU(&out)
	if err != nil {
		return sample{}, err
	}
	return sample{trips: trips, msgs: warmUp + len(trips), cpu: cpu + ccpu}, nil
}

// connResult is one run: key "impl/transport/metric" -> value. Metrics:
// the workload names (msg/s for struct, B/s otherwise), "p50", "p99" (ns).
type connResult map[string]float64

func connKey(impl, transport, metric string) string { return impl + "/" + transport + "/" + metric }

// connRounds is how many slices each measurement of a run is cut into,
// alternating mproc and hand-written (ABBA...), so that a burst of load
// from elsewhere on the machine falls on both.
const connRounds = 4

func runConn(cfg *config) error {
	slice := cfg.duration / connRounds
	impls := [2]string{implMproc, implHand}
	var runs []connResult
	for run := range cfg.count {
		fmt.Fprintf(os.Stderr, "bench: conn run %d/%d\n", run+1, cfg.count)
		res := connResult{}
		for _, transport := range []string{transPipe, transSocket} {
			for mi, metric := range []string{"struct", "1KiB", "1MiB", "rtt"} {
				var sum [2]sample
				first := (run + mi) % 2 // who goes first changes from case to case and run to run
				for r := range connRounds * 2 {
					i := (r + r/2 + first) % 2 // ABBAABBA
					var s sample
					var err error
					if metric == "rtt" {
						s, err = measureRoundTrip(impls[i], transport, slice)
					} else {
						s, err = measureThroughput(impls[i], transport, metric, slice)
					}
					if err != nil {
						return err
					}
					sum[i].units += s.units
					sum[i].elapsed += s.elapsed
					sum[i].msgs += s.msgs
					sum[i].cpu += s.cpu
					sum[i].trips = append(sum[i].trips, s.trips...)
				}
				for i, impl := range impls {
					s := sum[i]
					if metric == "rtt" {
						slices.Sort(s.trips)
						res[connKey(impl, transport, "p50")] = float64(percentile(s.trips, 50))
						res[connKey(impl, transport, "p99")] = float64(percentile(s.trips, 99))
					} else {
						res[connKey(impl, transport, metric)] = s.units / s.elapsed.Seconds()
					}
					res[connKey(impl, transport, metric+"-cpu")] = float64(s.cpu) / float64(s.msgs)
				}
			}
		}
		if cfg.python != "" {
			if err := connPythonRun(cfg, res); err != nil {
				return err
			}
		}
		runs = append(runs, res)
	}
	return connTable(cfg, runs)
}

// connPythonRun runs bench/python/conn_bench.py once and adds its figures
// to res under impl "python".
func connPythonRun(cfg *config, res connResult) error {
	secs := strconv.FormatFloat(cfg.duration.Seconds(), 'f', -1, 64)
	out, err := runPython(cfg, "conn_bench.py", connPython, 60*time.Second+20*cfg.duration, "--duration", secs)
	if err != nil {
		return err
	}
	var py map[string]map[string]float64
	if err := json.Unmarshal(out, &py); err != nil {
		return fmt.Errorf("conn_bench.py output: %w: %q", err, out)
	}
	for transport, m := range py {
		for metric, v := range m {
			res[connKey("python", transport, metric)] = v
		}
	}
	return nil
}

func connTable(cfg *config, runs []connResult) error {
	col := func(key string) []float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			v, ok := r[key]
			if !ok {
				v = math.NaN()
			}
			xs[i] = v
		}
		return xs
	}
	ratios := func(a, b []float64) []float64 {
		rs := make([]float64, len(a))
		for i := range a {
			rs[i] = a[i] / b[i]
		}
		return rs
	}
	t := newTable("transport", "measure", "mproc", "hand-written", "mproc/hand", "range (runs)", "target", "CPU/msg mproc/hand", "python", "mproc vs python")
	for _, transport := range []string{transPipe, transSocket} {
		for _, metric := range []string{"struct", "1KiB", "1MiB", "p50", "p99"} {
			ours := col(connKey(implMproc, transport, metric))
			hand := col(connKey(implHand, transport, metric))
			py := col(connKey("python", transport, metric))
			r := ratios(ours, hand)
			lo, hi := minMax(r)
			mr := median(r)
			var label, target string
			var f func(float64) string
			var speedup []float64 // how many times better than Python
			switch metric {
			case "struct":
				label, f = "one-way, 61 B struct", func(v float64) string { return fmtRate(v, "msg/s") }
				target, speedup = verdict(mr >= 0.90, ">= 0.90"), ratios(ours, py)
			case "1KiB", "1MiB":
				label, f = "one-way, "+metric+" payload", fmtBytesRate
				target, speedup = verdict(mr >= 0.90, ">= 0.90"), ratios(ours, py)
			case "p50":
				label, f = "round trip p50", fmtDur
				target, speedup = verdict(mr <= 1.20, "<= 1.20"), ratios(py, ours)
			case "p99":
				label, f = "round trip p99", fmtDur
				target, speedup = "", ratios(py, ours)
			}
			sp := "-"
			if v := median(speedup); !math.IsNaN(v) {
				sp = fmt.Sprintf("%.1fx", v)
			}
			cpuMetric := metric
			if metric == "p50" || metric == "p99" {
				cpuMetric = "rtt"
			}
			cpu := fmtRatio(median(ratios(col(connKey(implMproc, transport, cpuMetric+"-cpu")), col(connKey(implHand, transport, cpuMetric+"-cpu")))))
			if metric == "p99" {
				cpu = ""
			}
			t.row(transport, label, f(median(ours)), f(median(hand)), fmtRatio(mr),
				fmtRatio(lo)+"-"+fmtRatio(hi), target, cpu, f(median(py)), sp)
		}
	}
	return t.write(cfg.out, "conn: two processes; mproc conn.Conn vs hand-written framing on the same transport, and Python multiprocessing.Pipe")
}

func verdict(ok bool, target string) string {
	if ok {
		return target + " ok"
	}
	return target + " MISSED"
}
