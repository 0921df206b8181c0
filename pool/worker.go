package pool

// The parent's side of the workers: one driver goroutine per worker, which
// starts the worker process, hands it chunks over the worker's own
// connection, and replaces it when it dies or retires.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/process"
)

// worker is one running worker process.
type worker struct {
	cmd    *process.Cmd
	conn   *conn.Conn         // the pool's end of the worker's connection
	cancel context.CancelFunc // stops the process: SIGTERM, SIGKILL after Grace
	tasks  int                // inputs run, for MaxTasksPerChild
}

// errCodec marks an error encoding inputs or decoding outputs: the chunk
// fails, the worker stays.
var errCodec = errors.New("pool: codec")

// Prefetching: a driver sends its worker the next chunk before the result
// of the current one has come back, so that the worker never waits for the
// pool between two chunks, when chunks are quick (the worker's last chunk
// took less than prefetchBelow) and small enough to sit in the socket's
// buffer while the worker is busy (see prefetchMax). It is off with
// MaxTasksPerChild. A worker then holds two chunks, and the driver still
// knows which: results come back in the order the chunks went.
const prefetchBelow = time.Millisecond

// prefetched counts the chunks sent ahead, for the tests.
var prefetched atomic.Int64

// driver is one driver goroutine's state: its worker and the chunks sent to
// it, or to send to it, oldest first.
type driver struct {
	ex       *Executor
	w        *worker
	inflight []*flight
	spare    [][]byte  // encoding buffers to reuse
	quick    bool      // the worker's last chunk took less than prefetchBelow
	last     time.Time // when the last result came
}

// flight is a chunk in a driver, encoded as soon as it was taken: the
// caller's inputs are not read after that, and a chunk sent again to a
// fresh worker is not encoded again.
type flight struct {
	ch     chunk
	msg    []byte
	sent   bool // to the current worker
	sentAt time.Time
}

// drive runs chunks on its worker, starting a fresh one when needed, until
// the pool is closed and has nothing left, or terminates.
func (ex *Executor) drive(w *worker) {
	defer ex.wg.Done()
	s := &driver{ex: ex, w: w}
	for {
		if len(s.inflight) > 0 {
			s.step()
			continue
		}
		ch, wake := ex.take()
		if ch != nil {
			s.add(ch)
			continue
		}
		if wake == nil {
			break
		}
		var died <-chan struct{}
		if s.w != nil {
			died = s.w.cmd.Done()
		}
		select {
		case <-wake:
		case <-died: // noticed at once; replaced when there is work
			err := ex.reap(s.w, false)
			ex.log.Debug("pool: worker replaced", "pid", s.w.cmd.Pid(), "reason", "it died while idle", "err", err)
			s.w = nil
		case <-ex.ctx.Done():
		}
	}
	if s.w != nil {
		// Closed: the worker exits on EOF. Terminated: its context is
		// canceled already.
		s.w.conn.Close()
		ex.exited(ex.reap(s.w, false))
	}
}

// step moves the oldest chunk forward: it starts a worker if there is
// none, sends what is not sent yet (and one more chunk, when prefetching),
// and waits for the oldest chunk's result; or it fails that chunk.
func (s *driver) step() {
	ex := s.ex
	head := s.inflight[0].ch.state()
	if ex.ctx.Err() != nil {
		for len(s.inflight) > 0 {
			s.pop(ex.stopErr())
		}
		return
	}
	if err := head.c.ctx.Err(); err != nil {
		if s.inflight[0].sent {
			s.stopWorker() // busy with the chunk of a caller who gave up
		}
		s.pop(err)
		return
	}
	if s.w == nil {
		w, err := ex.start()
		if err != nil {
			if head.tries++; head.tries >= ex.cfg.MaxTries || ex.ctx.Err() != nil {
				s.pop(err)
			}
			return
		}
		s.w = w
	}
	if err := s.send(); err != nil {
		s.lost(err)
		return
	}
	if s.quick && len(s.inflight) == 1 && ex.cfg.MaxTasksPerChild <= 0 {
		if ch, _ := ex.take(); ch != nil && s.add(ch) {
			prefetched.Add(1)
			if err := s.send(); err != nil {
				s.lost(err)
				return
			}
		}
	}
	hch := s.inflight[0].ch
	err := s.receive(hch)
	switch {
	case err == nil:
		now := time.Now()
		s.quick = now.Sub(later(s.inflight[0].sentAt, s.last)) < prefetchBelow
		s.last = now
		s.drop()
		// A worker that has run its share retires before the caller
		// hears of the chunk: by the time Map returns, it is leaving.
		s.w.tasks += head.n
		if ex.cfg.MaxTasksPerChild > 0 && s.w.tasks >= ex.cfg.MaxTasksPerChild && len(s.inflight) == 0 {
			ex.retire(s.w)
			s.w = nil
		}
		head.c.finish(hch)
	case errors.Is(err, errCodec):
		s.pop(err)
	case head.c.ctx.Err() != nil:
		s.stopWorker() // the caller gave up
		s.pop(head.c.ctx.Err())
	default:
		s.lost(err)
	}
}

// add encodes a chunk just taken and adds it to the driver; a chunk that
// cannot be encoded fails at once, and add reports false.
func (s *driver) add(ch chunk) bool {
	var buf []byte
	if n := len(s.spare); n > 0 {
		buf, s.spare = s.spare[n-1], s.spare[:n-1]
	}
	b, err := appendChunk(buf[:0], ch.state().c.fname, ch)
	ch.state().c.encoded.Done()
	if err != nil {
		s.recycle(b)
		s.fail(ch, fmt.Errorf("%w: encode the inputs: %w", errCodec, err))
		return false
	}
	s.inflight = append(s.inflight, &flight{ch: ch, msg: b})
	return true
}

// send sends the chunks not sent yet to the worker, in order.
func (s *driver) send() error {
	for i, f := range s.inflight {
		if f.sent {
			continue
		}
		if i > 0 && len(f.msg) > prefetchMax() {
			// Too big to wait in the socket while the worker is busy:
			// sending it could block while the worker blocks sending us
			// the result before it. It goes when its turn comes.
			return nil
		}
		if err := s.w.conn.SendBytesContext(f.ch.state().c.ctx, f.msg); err != nil {
			return err
		}
		f.sent, f.sentAt = true, time.Now()
	}
	return nil
}

// drop removes the oldest chunk from the driver.
func (s *driver) drop() {
	s.recycle(s.inflight[0].msg)
	s.inflight[0] = nil
	s.inflight = s.inflight[1:]
}

// recycle keeps an encoding buffer for the next chunks.
func (s *driver) recycle(b []byte) {
	if cap(b) <= maxKeptBuf && len(s.spare) < 2 {
		s.spare = append(s.spare, b[:0])
	}
}

// receive reads the result of head, the oldest chunk sent.
func (s *driver) receive(ch chunk) error {
	head := ch.state()
	r, err := s.w.conn.RecvBytesContext(head.c.ctx)
	if err != nil {
		return err
	}
	if msg, ok := refusal(r); ok {
		// The worker does not know the function: the chunk fails, the
		// worker stays.
		fail(ch, fmt.Errorf("%w: %s", ErrNotRegistered, msg))
		return nil
	}
	errs, err := ch.decode(r)
	if err != nil {
		ch.clearOut()
		return fmt.Errorf("%w: decode the outputs: %w", errCodec, err)
	}
	for _, e := range errs {
		te := &TaskError{Index: head.start + e.Index, Msg: e.Msg, Type: e.Type, Stack: e.Stack}
		if e.Panic {
			te.Err = ErrPanic
		}
		head.errs = append(head.errs, te)
	}
	return nil
}

// lost handles the loss of the worker (it died, or its connection broke)
// while it held the driver's chunks: the oldest, which it was running, is
// charged a try; all go to the next worker.
func (s *driver) lost(err error) {
	ex := s.ex
	pid := s.w.cmd.Pid()
	werr := ex.reap(s.w, true)
	s.w = nil
	s.unsend()
	if werr == nil {
		werr = err
	}
	head := s.inflight[0].ch.state()
	if ex.ctx.Err() == nil {
		ex.log.Debug("pool: worker replaced", "pid", pid, "reason", "it died running a chunk", "err", werr)
	}
	if head.tries++; head.tries >= ex.cfg.MaxTries && ex.ctx.Err() == nil {
		s.pop(fmt.Errorf("%w %d times in a row running inputs %d to %d; the last one: %w",
			ErrWorkerLost, head.tries, head.start, head.start+head.n-1, werr))
	} else if ex.ctx.Err() == nil {
		ex.log.Debug("pool: chunk retried", "first", head.start, "last", head.start+head.n-1,
			"try", head.tries+1, "max_tries", ex.cfg.MaxTries)
	}
}

// stopWorker stops the worker; its chunks go to the next one.
func (s *driver) stopWorker() {
	s.ex.log.Debug("pool: worker replaced", "pid", s.w.cmd.Pid(), "reason", "its caller gave up on the chunk it runs")
	s.ex.reap(s.w, true)
	s.w = nil
	s.unsend()
}

func (s *driver) unsend() {
	for _, f := range s.inflight {
		f.sent = false
	}
}

// pop fails the oldest chunk with err and removes it.
func (s *driver) pop(err error) {
	ch := s.inflight[0].ch
	s.drop()
	s.fail(ch, err)
}

// fail fails the chunk with err and hands it to its caller.
func (s *driver) fail(ch chunk, err error) {
	fail(ch, err)
	ch.state().c.finish(ch)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// prefetchMax is the largest chunk message sent ahead: half a socket's
// send buffer (the kernel's default here), where it waits until the worker
// reads it.
var prefetchMax = sync.OnceValue(func() int {
	const fallback = 32 << 10
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fallback
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	n, err := unix.GetsockoptInt(sv[0], unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil || n <= 0 {
		return fallback
	}
	return n / 2
})

// start starts a worker and waits until it is ready.
func (ex *Executor) start() (*worker, error) {
	mine, theirs, err := pipe.Duplex()
	if err != nil {
		return nil, fmt.Errorf("pool: start a worker: %w", err)
	}
	initName := ""
	if ex.cfg.Init != nil {
		initName = ex.cfg.Init.name
	}
	cmd := process.Command(workerName, initName)
	cmd.Grace = ex.cfg.Grace
	cmd.FlushTimeout = ex.cfg.FlushTimeout
	cmd.Logger = ex.log
	cmd.LogStderr = ex.cfg.LogStderr
	err = cmd.Share(theirs, connName)
	for name, s := range ex.cfg.Shares {
		if err == nil {
			err = cmd.Share(process.Keep(s), name) // every worker gets it
		}
	}
	wctx, cancel := context.WithCancel(ex.ctx)
	if err == nil {
		err = cmd.Start(wctx)
	}
	theirs.Close() // the worker's end, if Start failed (it closes it otherwise)
	if err != nil {
		cancel()
		mine.Close()
		if ex.ctx.Err() != nil {
			return nil, ex.stopErr()
		}
		if errors.Is(err, process.ErrNoMain) {
			return nil, fmt.Errorf("pool: start a worker: %w", err) // the program's mistake
		}
		return nil, fmt.Errorf("%w: start a worker: %w", ErrWorkerLost, err)
	}
	w := &worker{cmd: cmd, conn: mine, cancel: cancel}
	var h hello
	if err := mine.RecvContext(ex.ctx, &h); err != nil {
		werr := ex.reap(w, true)
		if ex.ctx.Err() != nil {
			return nil, ex.stopErr()
		}
		if werr == nil {
			werr = err
		}
		return nil, fmt.Errorf("%w: a worker exited before it was ready: %w", ErrWorkerLost, werr)
	}
	if h.Msg != "" {
		ex.reap(w, false) // it exits by itself
		if ex.ctx.Err() != nil {
			return nil, ex.stopErr() // stopped in its initializer, which said so
		}
		switch {
		case h.Init:
			return nil, fmt.Errorf("%w: %s (%s)", ErrInit, h.Msg, h.Type)
		case h.Unregistered:
			return nil, fmt.Errorf("%w: %s", ErrNotRegistered, h.Msg)
		}
		return nil, fmt.Errorf("pool: a worker could not start: %s", h.Msg)
	}
	return w, nil
}

// reap waits for the worker to exit, stopping it first if stop is set or
// if it has not exited by itself within Grace, and returns how it ended.
// A worker that is leaving may be flushing queues: once it said so,
// stopping it does not cut the flush short (see process.Cmd.Grace).
func (ex *Executor) reap(w *worker, stop bool) error {
	if stop {
		w.cancel()
	}
	t := time.NewTimer(ex.cfg.Grace)
	select {
	case <-w.cmd.Done():
	case <-t.C:
		w.cancel()
		<-w.cmd.Done()
	}
	t.Stop()
	w.cancel()
	w.conn.Close()
	return w.cmd.Wait()
}

// retire lets a worker that has run MaxTasksPerChild inputs go: closing
// its connection makes it exit; a goroutine reaps it.
func (ex *Executor) retire(w *worker) {
	ex.log.Debug("pool: worker replaced", "pid", w.cmd.Pid(), "reason", "it ran MaxTasksPerChild inputs", "tasks", w.tasks)
	w.conn.Close()
	ex.wg.Add(1)
	go func() {
		defer ex.wg.Done()
		<-w.cmd.Done() // Terminate stops it too: its context is ex.ctx's child
		w.cancel()
		ex.exited(w.cmd.Wait())
	}()
}
