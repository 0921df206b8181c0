package main

// The listen suite: conn.Listen/conn.Dial with an authkey, between two
// processes, on a unix socket and on tcp loopback, beside Python's
// multiprocessing.connection Listener/Client (authkey, fork) and beside
// the same Conn over pipe.Duplex, in the same run, the outsider's way
// (items.go):
//
//   - one way: the child Dials and Sends n items, the parent (which
//     Accepted) Recvs them; the clock runs from the first Send to the last
//     decoded item;
//   - round trip: the parent Sends an item and Recvs the child's echo,
//     n/10 times, timing each; p50 and p99.

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
)

//go:embed python/listen_bench.py
var listenPython []byte

var listenKey = []byte("mproc bench authkey")

func init() {
	register(suite{name: "listen", doc: "conn.Listen/Dial (authkey) one-way and round trip over unix and tcp loopback vs Python's Listener/Client and pipe.Duplex", run: runListen})
	registerChild("listen-send", listenSend)
	registerChild("listen-echo", listenEcho)
}

const (
	netUnix   = "unix"
	netTCP    = "tcp"
	netDuplex = "duplex" // the same Conn over pipe.Duplex
)

// listenTarget is the least mproc/python ratio.
const listenTarget = 1.5

// dialOrInherit is the child's Conn: dialed (args network address) or
// inherited as "c".
func dialOrInherit(network, address string) (*conn.Conn, error) {
	if network == netDuplex {
		return conn.Inherit("c")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Dial(ctx, network, address, conn.WithAuthKey(listenKey))
}

// listenSend (child): args network address count. Connects, builds the
// items, waits at the barrier, sends them, closes, reports its start.
func listenSend(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want network address count, got %q", args)
	}
	count, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	c, err := dialOrInherit(args[0], args[1])
	if err != nil {
		return err
	}
	items := makeItems(count)
	if err := awaitBarrier(); err != nil {
		return err
	}
	start := time.Now().UnixNano()
	for i := range items {
		if err := c.Send(&items[i]); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	return printReport(report{Start: start})
}

// listenEcho (child): args network address. Connects, waits at the
// barrier, sends back every item until EOF.
func listenEcho(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want network address, got %q", args)
	}
	c, err := dialOrInherit(args[0], args[1])
	if err != nil {
		return err
	}
	defer c.Close()
	if err := awaitBarrier(); err != nil {
		return err
	}
	var it item
	for {
		if err := c.Recv(&it); err != nil {
			return nil // EOF: done
		}
		if err := c.Send(&it); err != nil {
			return err
		}
	}
}

// listenConnect starts role in a child connected to this process over
// network and returns this process's Conn, the child and its stdout.
func listenConnect(role, network string, b *barrier, args ...string) (*conn.Conn, *child, *bytes.Buffer, error) {
	var out bytes.Buffer
	if network == netDuplex {
		mine, theirs, err := pipe.Duplex()
		if err != nil {
			return nil, nil, nil, err
		}
		ch, err := startChild(role, append([]string{network, "-"}, args...), func(cmd *exec.Cmd) error {
			cmd.Stdout = &out
			if err := b.share(cmd); err != nil {
				return err
			}
			return theirs.Share(cmd, "c")
		})
		theirs.Close()
		b.started()
		if err != nil {
			mine.Close()
			return nil, nil, nil, err
		}
		return mine, ch, &out, nil
	}
	addr := "127.0.0.1:0"
	var dir string
	if network == netUnix {
		var err error
		if dir, err = os.MkdirTemp("", "mproc-bench-"); err != nil {
			return nil, nil, nil, err
		}
		defer os.RemoveAll(dir)
		addr = filepath.Join(dir, "l.sock")
	}
	l, err := conn.Listen(network, addr, conn.WithAuthKey(listenKey))
	if err != nil {
		return nil, nil, nil, err
	}
	defer l.Close()
	ch, err := startChild(role, append([]string{network, l.Addr().String()}, args...), func(cmd *exec.Cmd) error {
		cmd.Stdout = &out
		return b.share(cmd)
	})
	b.started()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := l.Accept(ctx)
	if err != nil {
		ch.kill()
		return nil, nil, nil, err
	}
	return c, ch, &out, nil
}

// listenOneWay measures one Go one-way run.
func listenOneWay(network string, count int) (outcome, error) {
	b, err := newBarrier()
	if err != nil {
		return outcome{}, err
	}
	defer b.close()
	c, ch, out, err := listenConnect("listen-send", network, b, strconv.Itoa(count))
	if err != nil {
		return outcome{}, err
	}
	defer c.Close()
	defer ch.kill()
	if err := b.release(1, 60*time.Second); err != nil {
		return outcome{}, err
	}
	cpu0 := cpuTime()
	var it item
	for i := range count {
		if err := c.Recv(&it); err != nil {
			return outcome{}, fmt.Errorf("listen %s: item %d: %w", network, i, err)
		}
		if err := checkID(it.ID, i); err != nil {
			return outcome{}, err
		}
	}
	last := time.Now().UnixNano()
	cpu := cpuTime() - cpu0
	if err := ch.wait(60 * time.Second); err != nil {
		return outcome{}, err
	}
	r, err := parseReport(out)
	if err != nil {
		return outcome{}, err
	}
	return rateOf(count, r.Start, last, cpu+childUsage(ch)), nil
}

// latency is one round-trip measurement: p50 and p99 in ns.
type latency struct{ p50, p99 float64 }

// listenRoundTrip measures one Go round-trip run.
func listenRoundTrip(network string, count int) (latency, error) {
	b, err := newBarrier()
	if err != nil {
		return latency{}, err
	}
	defer b.close()
	c, ch, _, err := listenConnect("listen-echo", network, b)
	if err != nil {
		return latency{}, err
	}
	defer ch.kill()
	items := makeItems(count)
	lat := make([]time.Duration, count)
	if err := b.release(1, 60*time.Second); err != nil {
		c.Close()
		return latency{}, err
	}
	var it item
	for i := range items {
		t0 := time.Now()
		if err := c.Send(&items[i]); err != nil {
			c.Close()
			return latency{}, err
		}
		if err := c.Recv(&it); err != nil {
			c.Close()
			return latency{}, err
		}
		lat[i] = time.Since(t0)
	}
	c.Close()
	if err := ch.wait(60 * time.Second); err != nil {
		return latency{}, err
	}
	slices.Sort(lat)
	return latency{float64(percentile(lat, 50)), float64(percentile(lat, 99))}, nil
}

func listenPythonOneWay(cfg *config, family string, n int) (outcome, error) {
	out, err := runPython(cfg, "listen_bench.py", listenPython, 180*time.Second, "--family", family, "--mode", "oneway", "--n", strconv.Itoa(n))
	if err != nil {
		return outcome{}, err
	}
	var r struct {
		Items   int     `json:"items"`
		Seconds float64 `json:"seconds"`
		CPU     float64 `json:"cpu"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return outcome{}, fmt.Errorf("listen_bench.py output %q: %w", out, err)
	}
	return outcome{rate: float64(r.Items) / r.Seconds, cpu: r.CPU * 1e9 / float64(r.Items)}, nil
}

func listenPythonRoundTrip(cfg *config, family string, n int) (latency, error) {
	out, err := runPython(cfg, "listen_bench.py", listenPython, 180*time.Second, "--family", family, "--mode", "rtt", "--n", strconv.Itoa(n))
	if err != nil {
		return latency{}, err
	}
	var r struct{ P50, P99 float64 }
	if err := json.Unmarshal(out, &r); err != nil {
		return latency{}, fmt.Errorf("listen_bench.py output %q: %w", out, err)
	}
	return latency{r.P50, r.P99}, nil
}

func runListen(cfg *config) error {
	type key struct{ network, impl string }
	oneway := make([]map[key]outcome, 0, cfg.count)
	rtt := make([]map[key]latency, 0, cfg.count)
	rtts := max(cfg.items/10, 1000)
	family := map[string]string{netUnix: "AF_UNIX", netTCP: "AF_INET"}
	for run := range cfg.count {
		fmt.Fprintf(os.Stderr, "bench: listen run %d/%d\n", run+1, cfg.count)
		ow, rt := map[key]outcome{}, map[key]latency{}
		for ci, network := range []string{netUnix, netTCP, netDuplex} {
			impls := []string{implMproc, implPython}
			if network == netDuplex || cfg.python == "" {
				impls = impls[:1]
			}
			for k := range impls {
				impl := impls[(k+run+ci)%len(impls)] // who goes first changes from case to case and run to run
				var o outcome
				var l latency
				var err error
				if impl == implPython {
					if o, err = listenPythonOneWay(cfg, family[network], cfg.items); err == nil {
						l, err = listenPythonRoundTrip(cfg, family[network], rtts)
					}
				} else {
					if o, err = listenOneWay(network, cfg.items); err == nil {
						l, err = listenRoundTrip(network, rtts)
					}
				}
				if err != nil {
					return err
				}
				ow[key{network, impl}], rt[key{network, impl}] = o, l
			}
		}
		oneway, rtt = append(oneway, ow), append(rtt, rt)
	}
	col := func(k key, f func(outcome) float64) []float64 {
		xs := make([]float64, len(oneway))
		for i, r := range oneway {
			xs[i] = nan
			if o, ok := r[k]; ok {
				xs[i] = f(o)
			}
		}
		return xs
	}
	lcol := func(k key, f func(latency) float64) []float64 {
		xs := make([]float64, len(rtt))
		for i, r := range rtt {
			xs[i] = nan
			if l, ok := r[k]; ok {
				xs[i] = f(l)
			}
		}
		return xs
	}
	rate := func(o outcome) float64 { return o.rate }
	p50 := func(l latency) float64 { return l.p50 }
	p99 := func(l latency) float64 { return l.p99 }
	duplex := col(key{netDuplex, implMproc}, rate)
	t := newTable("transport", "mproc", "python", "mproc/python (range)", "target", "mproc/pipe.Duplex (range)")
	for _, network := range []string{netUnix, netTCP} {
		m, p := col(key{network, implMproc}, rate), col(key{network, implPython}, rate)
		t.row("Dial/Listen "+network, fmtRate(median(m), "msg/s"), fmtRate(median(p), "msg/s"),
			ratioCell(ratios(m, p)), targetCell(ratios(m, p), listenTarget), ratioCell(ratios(m, duplex)))
	}
	t.row("pipe.Duplex", fmtRate(median(duplex), "msg/s"), "", "", "", "")
	if err := t.write(cfg.out, fmt.Sprintf("listen, one way: child Dials (authkey) and Sends %d items, parent Accepted and Recvs;\n"+
		"barrier, first Send to last decoded item; python: Listener/Client(authkey), send/recv, fork", cfg.items)); err != nil {
		return err
	}
	d50, d99 := lcol(key{netDuplex, implMproc}, p50), lcol(key{netDuplex, implMproc}, p99)
	t = newTable("transport", "mproc p50", "python p50", "python/mproc p50 (range)", "mproc p99", "python p99", "python/mproc p99 (range)")
	for _, network := range []string{netUnix, netTCP} {
		m50, p50s := lcol(key{network, implMproc}, p50), lcol(key{network, implPython}, p50)
		m99, p99s := lcol(key{network, implMproc}, p99), lcol(key{network, implPython}, p99)
		t.row("Dial/Listen "+network, fmtDur(median(m50)), fmtDur(median(p50s)), ratioCell(ratios(p50s, m50)),
			fmtDur(median(m99)), fmtDur(median(p99s)), ratioCell(ratios(p99s, m99)))
	}
	t.row("pipe.Duplex", fmtDur(median(d50)), "", "", fmtDur(median(d99)), "", "")
	return t.write(cfg.out, fmt.Sprintf("listen, round trip: parent Sends an item, child Recvs and Sends it back, %d times; latency per round trip", rtts))
}
