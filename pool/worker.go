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
type driver[In, Out any] struct {
	p        *Pool[In, Out]
	w        *worker
	inflight []*flight[In, Out]
	spare    [][]byte  // encoding buffers to reuse
	quick    bool      // the worker's last chunk took less than prefetchBelow
	last     time.Time // when the last result came
}

// flight is a chunk in a driver, encoded as soon as it was taken: the
// caller's inputs are not read after that, and a chunk sent again to a
// fresh worker is not encoded again.
type flight[In, Out any] struct {
	ch     *chunk[In, Out]
	msg    []byte
	sent   bool // to the current worker
	sentAt time.Time
}

// drive runs chunks on its worker, starting a fresh one when needed, until
// the pool is closed and has nothing left, or terminates.
func (p *Pool[In, Out]) drive(w *worker) {
	defer p.wg.Done()
	s := &driver[In, Out]{p: p, w: w}
	for {
		if len(s.inflight) > 0 {
			s.step()
			continue
		}
		ch, wake := p.take()
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
			err := p.reap(s.w, false)
			p.log.Debug("pool: worker replaced", "pid", s.w.cmd.Pid(), "reason", "it died while idle", "err", err)
			s.w = nil
		case <-p.ctx.Done():
		}
	}
	if s.w != nil {
		// Closed: the worker exits on EOF. Terminated: its context is
		// canceled already.
		s.w.conn.Close()
		p.exited(p.reap(s.w, false))
	}
}

// step moves the oldest chunk forward: it starts a worker if there is
// none, sends what is not sent yet (and one more chunk, when prefetching),
// and waits for the oldest chunk's result; or it fails that chunk.
func (s *driver[In, Out]) step() {
	p := s.p
	head := s.inflight[0].ch
	if p.ctx.Err() != nil {
		for len(s.inflight) > 0 {
			s.pop(p.stopErr())
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
		w, err := p.start()
		if err != nil {
			if head.tries++; head.tries >= p.cfg.MaxTries || p.ctx.Err() != nil {
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
	if s.quick && len(s.inflight) == 1 && p.cfg.MaxTasksPerChild <= 0 {
		if ch, _ := p.take(); ch != nil && s.add(ch) {
			prefetched.Add(1)
			if err := s.send(); err != nil {
				s.lost(err)
				return
			}
		}
	}
	err := s.receive(head)
	switch {
	case err == nil:
		now := time.Now()
		s.quick = now.Sub(later(s.inflight[0].sentAt, s.last)) < prefetchBelow
		s.last = now
		s.drop()
		// A worker that has run its share retires before the caller
		// hears of the chunk: by the time Map returns, it is leaving.
		s.w.tasks += len(head.in)
		if p.cfg.MaxTasksPerChild > 0 && s.w.tasks >= p.cfg.MaxTasksPerChild && len(s.inflight) == 0 {
			p.retire(s.w)
			s.w = nil
		}
		head.c.finish(head)
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
func (s *driver[In, Out]) add(ch *chunk[In, Out]) bool {
	var buf []byte
	if n := len(s.spare); n > 0 {
		buf, s.spare = s.spare[n-1], s.spare[:n-1]
	}
	b, err := appendChunk(buf[:0], ch.in)
	ch.c.encoded.Done()
	if err != nil {
		s.recycle(b)
		s.fail(ch, fmt.Errorf("%w: encode the inputs: %w", errCodec, err))
		return false
	}
	s.inflight = append(s.inflight, &flight[In, Out]{ch: ch, msg: b})
	return true
}

// send sends the chunks not sent yet to the worker, in order.
func (s *driver[In, Out]) send() error {
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
		if err := s.w.conn.SendBytesContext(f.ch.c.ctx, f.msg); err != nil {
			return err
		}
		f.sent, f.sentAt = true, time.Now()
	}
	return nil
}

// drop removes the oldest chunk from the driver.
func (s *driver[In, Out]) drop() {
	s.recycle(s.inflight[0].msg)
	s.inflight[0] = nil
	s.inflight = s.inflight[1:]
}

// recycle keeps an encoding buffer for the next chunks.
func (s *driver[In, Out]) recycle(b []byte) {
	if cap(b) <= maxKeptBuf && len(s.spare) < 2 {
		s.spare = append(s.spare, b[:0])
	}
}

// receive reads the result of head, the oldest chunk sent.
func (s *driver[In, Out]) receive(head *chunk[In, Out]) error {
	r, err := s.w.conn.RecvBytesContext(head.c.ctx)
	if err != nil {
		return err
	}
	errs, err := readResult(r, head.out)
	if err != nil {
		clear(head.out)
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
func (s *driver[In, Out]) lost(err error) {
	p := s.p
	pid := s.w.cmd.Pid()
	werr := p.reap(s.w, true)
	s.w = nil
	s.unsend()
	if werr == nil {
		werr = err
	}
	head := s.inflight[0].ch
	if p.ctx.Err() == nil {
		p.log.Debug("pool: worker replaced", "pid", pid, "reason", "it died running a chunk", "err", werr)
	}
	if head.tries++; head.tries >= p.cfg.MaxTries && p.ctx.Err() == nil {
		s.pop(fmt.Errorf("%w %d times in a row running inputs %d to %d; the last one: %w",
			ErrWorkerLost, head.tries, head.start, head.start+len(head.in)-1, werr))
	} else if p.ctx.Err() == nil {
		p.log.Debug("pool: chunk retried", "first", head.start, "last", head.start+len(head.in)-1,
			"try", head.tries+1, "max_tries", p.cfg.MaxTries)
	}
}

// stopWorker stops the worker; its chunks go to the next one.
func (s *driver[In, Out]) stopWorker() {
	s.p.log.Debug("pool: worker replaced", "pid", s.w.cmd.Pid(), "reason", "its caller gave up on the chunk it runs")
	s.p.reap(s.w, true)
	s.w = nil
	s.unsend()
}

func (s *driver[In, Out]) unsend() {
	for _, f := range s.inflight {
		f.sent = false
	}
}

// pop fails the oldest chunk with err and removes it.
func (s *driver[In, Out]) pop(err error) {
	ch := s.inflight[0].ch
	s.drop()
	s.fail(ch, err)
}

// fail fails the chunk with err and hands it to its caller.
func (s *driver[In, Out]) fail(ch *chunk[In, Out], err error) {
	ch.fail(err)
	ch.c.finish(ch)
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
func (p *Pool[In, Out]) start() (*worker, error) {
	mine, theirs, err := pipe.Duplex()
	if err != nil {
		return nil, fmt.Errorf("pool: start a worker: %w", err)
	}
	initName := ""
	if p.cfg.Init != nil {
		initName = p.cfg.Init.name
	}
	cmd := process.Command(workerName, p.fn.name, initName)
	cmd.Grace = p.cfg.Grace
	cmd.FlushTimeout = p.cfg.FlushTimeout
	cmd.Logger = p.log
	err = cmd.Share(theirs, connName)
	for name, s := range p.cfg.Shares {
		if err == nil {
			err = cmd.Share(process.Keep(s), name) // every worker gets it
		}
	}
	wctx, cancel := context.WithCancel(p.ctx)
	if err == nil {
		err = cmd.Start(wctx)
	}
	theirs.Close() // the worker's end, if Start failed (it closes it otherwise)
	if err != nil {
		cancel()
		mine.Close()
		if p.ctx.Err() != nil {
			return nil, p.stopErr()
		}
		if errors.Is(err, process.ErrNoMain) {
			return nil, fmt.Errorf("pool: start a worker: %w", err) // the program's mistake
		}
		return nil, fmt.Errorf("%w: start a worker: %w", ErrWorkerLost, err)
	}
	w := &worker{cmd: cmd, conn: mine, cancel: cancel}
	var h hello
	if err := mine.RecvContext(p.ctx, &h); err != nil {
		werr := p.reap(w, true)
		if p.ctx.Err() != nil {
			return nil, p.stopErr()
		}
		if werr == nil {
			werr = err
		}
		return nil, fmt.Errorf("%w: a worker exited before it was ready: %w", ErrWorkerLost, werr)
	}
	if h.Msg != "" {
		p.reap(w, false) // it exits by itself
		if p.ctx.Err() != nil {
			return nil, p.stopErr() // stopped in its initializer, which said so
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
func (p *Pool[In, Out]) reap(w *worker, stop bool) error {
	if stop {
		w.cancel()
	}
	t := time.NewTimer(p.cfg.Grace)
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
func (p *Pool[In, Out]) retire(w *worker) {
	p.log.Debug("pool: worker replaced", "pid", w.cmd.Pid(), "reason", "it ran MaxTasksPerChild inputs", "tasks", w.tasks)
	w.conn.Close()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-w.cmd.Done() // Terminate stops it too: its context is p.ctx's child
		w.cancel()
		p.exited(w.cmd.Wait())
	}()
}
