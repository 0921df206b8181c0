package pool

// The parent's side of the workers: one slot goroutine per worker, which
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

// Prefetching: a slot sends its worker the next chunk before the result
// of the current one has come back, so that the worker never waits for the
// pool between two chunks, when chunks are quick (the worker's last chunk
// took less than prefetchBelow) and small enough to sit in the socket's
// buffer while the worker is busy (see prefetchMax). It is off with
// MaxTasksPerChild. A worker then holds two chunks, and the slot still
// knows which: results come back in the order the chunks went.
const prefetchBelow = time.Millisecond

// prefetched counts the chunks sent ahead, for the tests.
var prefetched atomic.Int64

// slot is one slot goroutine's state: its worker and the chunks sent to
// it, or to send to it, oldest first.
type slot[In, Out any] struct {
	p        *Pool[In, Out]
	w        *worker
	inflight []*flight[In, Out]
	buf      []byte
	quick    bool      // the worker's last chunk took less than prefetchBelow
	last     time.Time // when the last result came
}

// flight is a chunk in a slot.
type flight[In, Out any] struct {
	ch     *chunk[In, Out]
	sent   bool // to the current worker
	sentAt time.Time
	msg    []byte // encoded, when held back (see send)
}

// slot runs chunks on its worker, starting a fresh one when needed, until
// the pool is closed and has nothing left, or terminates.
func (p *Pool[In, Out]) slot(w *worker) {
	defer p.wg.Done()
	s := &slot[In, Out]{p: p, w: w}
	for {
		if len(s.inflight) > 0 {
			s.step()
			continue
		}
		ch, wake := p.take()
		if ch != nil {
			s.inflight = append(s.inflight, &flight[In, Out]{ch: ch})
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
			p.reap(s.w, false)
			s.w = nil
		case <-p.ctx.Done():
		}
	}
	if s.w != nil {
		// Closed: the worker exits on EOF. Terminated: its context is
		// canceled already.
		s.w.conn.Close()
		p.reap(s.w, false)
	}
}

// step moves the oldest chunk forward: it starts a worker if there is
// none, sends what is not sent yet (and one more chunk, when prefetching),
// and waits for the oldest chunk's result; or it fails that chunk.
func (s *slot[In, Out]) step() {
	p := s.p
	head := s.inflight[0].ch
	if p.ctx.Err() != nil {
		for _, f := range s.inflight {
			s.fail(f.ch, p.stopErr())
		}
		s.inflight = s.inflight[:0]
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
		if ch, _ := p.take(); ch != nil {
			prefetched.Add(1)
			s.inflight = append(s.inflight, &flight[In, Out]{ch: ch})
			if err := s.send(); err != nil {
				s.lost(err)
				return
			}
		}
	}
	if len(s.inflight) == 0 || s.inflight[0].ch != head {
		return // the head failed to encode
	}
	err := s.receive(head)
	switch {
	case err == nil:
		now := time.Now()
		s.quick = now.Sub(later(s.inflight[0].sentAt, s.last)) < prefetchBelow
		s.last = now
		s.inflight = s.inflight[1:]
		head.c.finish(head)
		s.w.tasks += len(head.in)
		if p.cfg.MaxTasksPerChild > 0 && s.w.tasks >= p.cfg.MaxTasksPerChild && len(s.inflight) == 0 {
			p.retire(s.w)
			s.w = nil
		}
	case errors.Is(err, errCodec):
		s.pop(err)
	case head.c.ctx.Err() != nil:
		s.stopWorker() // the caller gave up
		s.pop(head.c.ctx.Err())
	default:
		s.lost(err)
	}
}

// send sends the chunks not sent yet to the worker, in order. A chunk that
// cannot be encoded fails at once.
func (s *slot[In, Out]) send() error {
	for i := 0; i < len(s.inflight); i++ {
		f := s.inflight[i]
		if f.sent {
			continue
		}
		b := f.msg
		if b == nil {
			var err error
			b, err = appendChunk(s.buf[:0], f.ch.in)
			if cap(b) <= maxKeptBuf {
				s.buf = b
			}
			if err != nil {
				s.fail(f.ch, fmt.Errorf("%w: encode the inputs: %w", errCodec, err))
				s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
				i--
				continue
			}
		}
		if i > 0 && len(b) > prefetchMax() {
			// Too big to wait in the socket while the worker is busy:
			// sending it could block while the worker blocks sending us
			// the result before it. It goes when its turn comes.
			f.msg, s.buf = b, nil
			return nil
		}
		f.msg = nil
		if err := s.w.conn.SendBytesContext(f.ch.c.ctx, b); err != nil {
			return err
		}
		f.sent, f.sentAt = true, time.Now()
	}
	return nil
}

// receive reads the result of head, the oldest chunk sent.
func (s *slot[In, Out]) receive(head *chunk[In, Out]) error {
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
// while it held the slot's chunks: the oldest, which it was running, is
// charged a try; all go to the next worker.
func (s *slot[In, Out]) lost(err error) {
	p := s.p
	werr := p.reap(s.w, true)
	s.w = nil
	s.unsend()
	if werr == nil {
		werr = err
	}
	head := s.inflight[0].ch
	if head.tries++; head.tries >= p.cfg.MaxTries && p.ctx.Err() == nil {
		s.pop(fmt.Errorf("%w %d times in a row running inputs %d to %d; the last one: %w",
			ErrWorkerLost, head.tries, head.start, head.start+len(head.in)-1, werr))
	}
}

// stopWorker stops the worker; its chunks go to the next one.
func (s *slot[In, Out]) stopWorker() {
	s.p.reap(s.w, true)
	s.w = nil
	s.unsend()
}

func (s *slot[In, Out]) unsend() {
	for _, f := range s.inflight {
		f.sent = false
	}
}

// pop fails the oldest chunk with err and removes it.
func (s *slot[In, Out]) pop(err error) {
	s.fail(s.inflight[0].ch, err)
	s.inflight = s.inflight[1:]
}

// fail fails the chunk with err and hands it to its caller.
func (s *slot[In, Out]) fail(ch *chunk[In, Out], err error) {
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
	cmd.DieWithParent = true
	cmd.Grace = p.cfg.Grace
	err = cmd.Share(connName, theirs)
	for name, s := range p.cfg.Shares {
		if err == nil {
			err = cmd.Share(name, s)
		}
	}
	wctx, cancel := context.WithCancel(p.ctx)
	if err == nil {
		err = cmd.Start(wctx)
	}
	theirs.Close() // the worker's end: ours would hide its EOF
	if err != nil {
		cancel()
		mine.Close()
		return nil, fmt.Errorf("pool: start a worker: %w", err)
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
		return nil, fmt.Errorf("pool: a worker exited before it was ready: %w", werr)
	}
	if h.Msg != "" {
		p.reap(w, false) // it exits by itself
		if h.Init {
			return nil, fmt.Errorf("%w: %s (%s)", ErrInit, h.Msg, h.Type)
		}
		return nil, errors.New(h.Msg)
	}
	return w, nil
}

// reap waits for the worker to exit, stopping it first if stop is set or
// if it has not exited by itself within Grace (a worker that is leaving
// may be flushing queues), and returns how it ended.
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
	w.conn.Close()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-w.cmd.Done() // Terminate stops it too: its context is p.ctx's child
		w.cancel()
	}()
}
