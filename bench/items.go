package main

// The outsider's method the conn and queue suites share (issue 8):
//
//   - the items are built before the clock, in every process that sends
//     them (Go: a []item; Python: a list of dicts built before fork);
//   - every process of a measurement opens its ends, then waits at a
//     barrier; the parent releases them all at once;
//   - the clock runs from the producer's first Send/Put to the moment the
//     consumer decoded the last item (Join's return for a joinable queue),
//     timestamps taken in the processes themselves (CLOCK_REALTIME, which
//     every process shares);
//   - the bare mechanism (the "raw limits") and Python's multiprocessing
//     (fork) are measured in the same run, interleaved with mproc, and the
//     tables show ratios taken within each run, then their median and range.
//
// The raw limits are what a program does with bare blocking descriptors
// and nothing else: no poller, no locks, no pool, no checks.
//
//   - framed limit (streams): one write(2) per frame (4-byte header +
//     msgpack, the encoder and buffer reused); the reader reads through a
//     64 KiB bufio.Reader and decodes with msgpack.Unmarshal.
//   - packet limit (queues): one msgpack item per packet, one write(2) and
//     one read(2) per item, on an O_DIRECT pipe and on a SOCK_SEQPACKET
//     socketpair; the better of the two is the limit.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// item is the item shape; Python sends the same fields as a dict.
type item struct {
	ID     int       `msgpack:"id"`
	Name   string    `msgpack:"name"`
	Values []float64 `msgpack:"values"`
}

// makeItems builds the n items a producer sends, before the clock.
func makeItems(n int) []item {
	items := make([]item, n)
	for i := range items {
		items[i] = item{ID: i, Name: "task-" + strconv.Itoa(i), Values: []float64{1.5, 2.5, 3.5}}
	}
	return items
}

// nan marks a figure that was not measured.
var nan = math.NaN()

// sentinelItem tells a queue consumer to stop.
var sentinelItem = item{ID: -1}

// barrier starts the processes of one measurement together: each child
// writes one byte to "ready" once it has opened its ends and built its
// items, then waits for one byte on "go"; release waits for every child's
// byte and writes one per child.
type barrier struct {
	readyR, readyW *os.File
	goR, goW       *os.File
}

func newBarrier() (*barrier, error) {
	b := new(barrier)
	var err error
	if b.readyR, b.readyW, err = fd.Pipe("bench-ready"); err != nil {
		return nil, err
	}
	if b.goR, b.goW, err = fd.Pipe("bench-go"); err != nil {
		b.readyR.Close()
		b.readyW.Close()
		return nil, err
	}
	return b, nil
}

// share gives a child its ends of the barrier.
func (b *barrier) share(cmd *exec.Cmd) error {
	if err := shareFile(cmd, "ready", b.readyW); err != nil {
		return err
	}
	return shareFile(cmd, "go", b.goR)
}

// started closes the parent's copies of the children's ends; call it once
// every child has started, so that a child that dies is seen at release.
func (b *barrier) started() {
	b.readyW.Close()
	b.goR.Close()
}

// release waits until parties children are ready, then lets them all go.
func (b *barrier) release(parties int, timeout time.Duration) error {
	b.readyR.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, parties)
	if _, err := io.ReadFull(b.readyR, buf); err != nil {
		return fmt.Errorf("barrier: %d children to wait for: %w", parties, err)
	}
	_, err := b.goW.Write(buf)
	return err
}

func (b *barrier) close() {
	for _, f := range []*os.File{b.readyR, b.readyW, b.goR, b.goW} {
		f.Close()
	}
}

// awaitBarrier is the child's side: ready, then wait for go.
func awaitBarrier() error {
	ready, err := inheritFile("ready")
	if err != nil {
		return err
	}
	gof, err := inheritFile("go")
	if err != nil {
		return err
	}
	defer ready.Close()
	defer gof.Close()
	if _, err := ready.Write([]byte{1}); err != nil {
		return err
	}
	var one [1]byte
	_, err = io.ReadFull(gof, one[:])
	return err
}

// report is what a child prints on stdout: the producer its start, a
// consumer how many items it decoded and when it decoded the last.
type report struct {
	Start int64 `json:"start,omitempty"` // Unix ns just before the first send
	N     int   `json:"n,omitempty"`
	Last  int64 `json:"last,omitempty"` // Unix ns just after the last item decoded
}

func printReport(r report) error { return json.NewEncoder(os.Stdout).Encode(r) }

func parseReport(out *bytes.Buffer) (report, error) {
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("child's report %q: %w", out.String(), err)
	}
	return r, nil
}

// outcome is one measurement: items per second, CPU of all its processes
// per item (ns).
type outcome struct{ rate, cpu float64 }

// Raw descriptors of the limits: blocking, close-on-exec, no poller.

// rawPipe returns a blocking pipe; direct makes it a packet pipe (O_DIRECT).
func rawPipe(direct bool) (r, w *os.File, err error) {
	flags := unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	var p [2]int
	if err := unix.Pipe2(p[:], flags); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	return os.NewFile(uintptr(p[0]), "raw:r"), os.NewFile(uintptr(p[1]), "raw:w"), nil
}

// rawSocketpair returns a blocking AF_UNIX socketpair of type typ.
func rawSocketpair(typ int) (a, b *os.File, err error) {
	p, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(p[0]), "raw:a"), os.NewFile(uintptr(p[1]), "raw:b"), nil
}

// rawFD is a blocking descriptor read and written with bare system calls.
type rawFD int

func (f rawFD) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFD) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := syscall.Write(int(f), p[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// frameWriter encodes items as frames, one write(2) each.
type frameWriter struct {
	w    rawFD
	buf  bytes.Buffer
	enc  *msgpack.Encoder
	head bool // frames carry the 4-byte header (streams); packets do not
}

func newFrameWriter(w rawFD, head bool) *frameWriter {
	fw := &frameWriter{w: w, head: head}
	fw.enc = msgpack.NewEncoder(&fw.buf)
	return fw
}

func (fw *frameWriter) send(v any) error {
	fw.buf.Reset()
	if fw.head {
		fw.buf.Write([]byte{0, 0, 0, 0})
	}
	if err := fw.enc.Encode(v); err != nil {
		return err
	}
	b := fw.buf.Bytes()
	if fw.head {
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	}
	_, err := fw.w.Write(b)
	return err
}

// frameReader is the framed limit's reader: a 64 KiB bufio.Reader, the
// header, the body into a reused buffer, msgpack.Unmarshal.
type frameReader struct {
	r   *bufio.Reader
	hdr [4]byte
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

func (fr *frameReader) recv(v any) error {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(fr.hdr[:]))
	if n > cap(fr.buf) {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return noEOF(err)
	}
	return msgpack.Unmarshal(fr.buf, v)
}

// packetReader is the packet limit's reader: one read(2) per item.
type packetReader struct {
	r   rawFD
	buf []byte
}

func (pr *packetReader) recv(v any) error {
	if pr.buf == nil {
		pr.buf = make([]byte, 64<<10)
	}
	n, err := pr.r.Read(pr.buf)
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(pr.buf[:n], v)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// childUsage is the CPU time a reaped child used.
func childUsage(c *child) time.Duration {
	ps := c.cmd.ProcessState
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// ratioCell formats the median of rs and its range, "0.91 (0.85-0.97)".
func ratioCell(rs []float64) string {
	lo, hi := minMax(rs)
	return fmtRatio(median(rs)) + " (" + fmtRatio(lo) + "-" + fmtRatio(hi) + ")"
}

// targetCell says whether the median of rs meets target.
func targetCell(rs []float64, target float64) string {
	m := median(rs)
	if target == 0 {
		return ""
	}
	if math.IsNaN(m) {
		return fmt.Sprintf(">= %.2f -", target)
	}
	if m >= target {
		return fmt.Sprintf(">= %.2f ok", target)
	}
	return fmt.Sprintf(">= %.2f MISSED", target)
}

// verdict appends "ok" or "MISSED" to a target.
func verdict(ok bool, target string) string {
	if ok {
		return target + " ok"
	}
	return target + " MISSED"
}
