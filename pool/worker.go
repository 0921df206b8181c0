package pool

// The parent's side of the workers: one slot goroutine per worker, which
// starts the worker process, hands it one chunk at a time over the
// worker's own connection, and replaces it when it dies or retires.

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// slot runs chunks on its worker, starting a fresh one when needed, until
// the pool is closed and has nothing left, or terminates.
func (p *Pool[In, Out]) slot(w *worker) {
	defer p.wg.Done()
	var buf []byte
	for {
		ch, wake := p.take()
		if ch != nil {
			w = p.run(w, ch, &buf)
			continue
		}
		if wake == nil {
			break
		}
		var died <-chan struct{}
		if w != nil {
			died = w.cmd.Done()
		}
		select {
		case <-wake:
		case <-died: // noticed at once; replaced when there is work
			p.reap(w, false)
			w = nil
		case <-p.ctx.Done():
		}
	}
	if w != nil {
		// Closed: the worker exits on EOF. Terminated: its context is
		// canceled already.
		w.conn.Close()
		p.reap(w, false)
	}
}

// run runs one chunk, on w or on fresh workers, until it is done or has
// failed, and returns the worker to use next (nil: none).
func (p *Pool[In, Out]) run(w *worker, ch *chunk[In, Out], buf *[]byte) *worker {
	c := ch.c
	for {
		if err := c.ctx.Err(); err != nil {
			return p.fail(w, ch, err)
		}
		if p.ctx.Err() != nil {
			return p.fail(w, ch, p.stopErr())
		}
		if w == nil {
			var err error
			if w, err = p.start(); err != nil {
				if ch.tries++; ch.tries >= p.cfg.MaxTries || p.ctx.Err() != nil {
					return p.fail(nil, ch, err)
				}
				continue
			}
		}
		err := exchange(c.ctx, w, ch, buf)
		switch {
		case err == nil:
			c.finish(ch)
			w.tasks += len(ch.in)
			if p.cfg.MaxTasksPerChild > 0 && w.tasks >= p.cfg.MaxTasksPerChild {
				p.retire(w)
				return nil
			}
			return w
		case errors.Is(err, errCodec):
			return p.fail(w, ch, err)
		case c.ctx.Err() != nil:
			// The caller gave up: stop the worker busy with its task.
			p.reap(w, true)
			return p.fail(nil, ch, c.ctx.Err())
		}
		// The worker is gone, or its connection broke: replace it.
		werr := p.reap(w, true)
		w = nil
		if p.ctx.Err() != nil {
			return p.fail(nil, ch, p.stopErr())
		}
		if ch.tries++; ch.tries >= p.cfg.MaxTries {
			if werr == nil {
				werr = err
			}
			return p.fail(nil, ch, fmt.Errorf("%w %d times in a row running inputs %d to %d; the last one: %w",
				ErrWorkerLost, ch.tries, ch.start, ch.start+len(ch.in)-1, werr))
		}
	}
}

// fail fails the chunk with err and returns w.
func (p *Pool[In, Out]) fail(w *worker, ch *chunk[In, Out], err error) *worker {
	ch.fail(err)
	ch.c.finish(ch)
	return w
}

// exchange sends the chunk to the worker and reads the result into it.
func exchange[In, Out any](ctx context.Context, w *worker, ch *chunk[In, Out], buf *[]byte) error {
	b, err := appendChunk((*buf)[:0], ch.in)
	if cap(b) <= maxKeptBuf {
		*buf = b
	}
	if err != nil {
		return fmt.Errorf("%w: encode the inputs: %w", errCodec, err)
	}
	if err := w.conn.SendBytesContext(ctx, b); err != nil {
		return err
	}
	r, err := w.conn.RecvBytesContext(ctx)
	if err != nil {
		return err
	}
	errs, err := readResult(r, ch.out)
	if err != nil {
		clear(ch.out)
		return fmt.Errorf("%w: decode the outputs: %w", errCodec, err)
	}
	for _, e := range errs {
		te := &TaskError{Index: ch.start + e.Index, Msg: e.Msg, Type: e.Type, Stack: e.Stack}
		if e.Panic {
			te.Err = ErrPanic
		}
		ch.errs = append(ch.errs, te)
	}
	return nil
}

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
