package pool

// A call (one Map, Imap, ImapUnordered or Go) and its chunks.

import (
	"context"
	"slices"
	"sync"
)

// call is one request of the pool's caller: its inputs, cut into chunks
// that the drivers take in turn, and the chunks finished so far.
type call[In, Out any] struct {
	p        *Pool[In, Out]
	ctx      context.Context // the caller's
	in       []In
	dst      []Out // where outputs go (Map), or nil: each chunk gets its own
	size     int   // chunk size
	nchunks  int
	onFinish func(*chunk[In, Out]) // called for each finished chunk (Go)

	cursor int // start of the next chunk to hand out; guarded by p.mu

	mu       sync.Mutex
	ready    []*chunk[In, Out] // finished, not yet taken by the caller
	finished int
	notify   chan struct{} // receives a token when a chunk is ready

	quitOnce sync.Once
	quit     chan struct{}  // closed when the caller is gone; under p.mu
	encoded  sync.WaitGroup // chunks handed out and not yet encoded

	counted int  // inputs counted as done in the progress; guarded by p.progMu
	ended   bool // guarded by p.progMu
}

// chunk is a run of consecutive inputs of one call, sent to a worker as
// one message.
type chunk[In, Out any] struct {
	c     *call[In, Out]
	start int // index of in[0] in the call's inputs
	in    []In
	out   []Out
	errs  []*TaskError // in index order
	tries int
}

// submit queues a call of inputs; see call for dst and onFinish.
func (p *Pool[In, Out]) submit(ctx context.Context, inputs []In, dst []Out, onFinish func(*chunk[In, Out])) (*call[In, Out], error) {
	if ctx == nil {
		panic("pool: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := p.chunkSize(len(inputs))
	c := &call[In, Out]{
		p:        p,
		ctx:      ctx,
		in:       inputs,
		dst:      dst,
		size:     size,
		nchunks:  (len(inputs) + size - 1) / size,
		onFinish: onFinish,
		notify:   make(chan struct{}, 1),
		quit:     make(chan struct{}),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return nil, p.stopErr()
	}
	if p.closed {
		return nil, ErrClosed
	}
	if len(inputs) == 0 {
		return c, nil
	}
	// The total grows before any chunk can finish: under p.mu, no driver
	// can take one yet.
	p.progress(c, 0, len(inputs))
	p.queue = append(p.queue, c)
	p.wake()
	return c, nil
}

// take hands out the next chunk to run. Without one, it returns the
// channel that announces new work, or nil when the driver should exit (the
// pool is closed and nothing is left).
func (p *Pool[In, Out]) take() (*chunk[In, Out], <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return nil, nil // terminated: the callers have been told
	}
	for len(p.queue) > 0 {
		c := p.queue[0]
		if c.gone() {
			p.queue[0] = nil
			p.queue = p.queue[1:]
			c.stop()
			p.progress(c, 0, 0)
			continue
		}
		end := min(c.cursor+c.size, len(c.in))
		ch := &chunk[In, Out]{c: c, start: c.cursor, in: c.in[c.cursor:end]}
		if c.dst != nil {
			ch.out = c.dst[c.cursor:end]
		} else {
			ch.out = make([]Out, end-c.cursor)
		}
		c.cursor = end
		c.encoded.Add(1) // before end() can wait: both under p.mu
		if c.cursor == len(c.in) {
			p.queue[0] = nil
			p.queue = p.queue[1:]
		}
		return ch, nil
	}
	if p.closed {
		return nil, nil
	}
	return nil, p.kick
}

// gone reports whether the caller no longer wants the call's results.
func (c *call[In, Out]) gone() bool {
	select {
	case <-c.quit:
		return true
	default:
		return c.ctx.Err() != nil
	}
}

// finish records a finished chunk and tells the caller.
func (c *call[In, Out]) finish(ch *chunk[In, Out]) {
	c.p.progress(c, len(ch.in), 0)
	c.mu.Lock()
	c.ready = append(c.ready, ch)
	c.finished++
	all := c.finished == c.nchunks
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	if c.onFinish != nil {
		c.onFinish(ch)
	}
	if all {
		c.end()
	}
}

// next returns the next finished chunk, waiting for one.
func (c *call[In, Out]) next(ctx context.Context) (*chunk[In, Out], error) {
	for {
		c.mu.Lock()
		if len(c.ready) > 0 {
			ch := c.ready[0]
			c.ready[0] = nil
			c.ready = c.ready[1:]
			c.mu.Unlock()
			return ch, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.p.ctx.Done():
			return nil, c.p.stopErr()
		}
	}
}

// end marks the caller gone: no more chunks are handed out, and the
// inputs not finished leave the progress total. It returns once the
// chunks already handed out are encoded: from then on, nothing reads the
// caller's inputs. It is idempotent.
func (c *call[In, Out]) end() {
	c.p.mu.Lock()
	c.stop()
	c.p.mu.Unlock()
	c.encoded.Wait()
	c.p.progress(c, 0, 0)
}

// stop closes quit, once. The caller holds p.mu.
func (c *call[In, Out]) stop() {
	c.quitOnce.Do(func() { close(c.quit) })
}

// progress adds done and total to the pool's counts and reports them;
// with both zero, it ends c's part in them.
func (p *Pool[In, Out]) progress(c *call[In, Out], done, total int) {
	if p.cfg.Progress == nil {
		return
	}
	p.progMu.Lock()
	defer p.progMu.Unlock()
	if c.ended {
		return
	}
	switch {
	case done == 0 && total == 0:
		c.ended = true
		total = c.counted - len(c.in) // minus what will never finish
		if total == 0 {
			return
		}
	case done > 0:
		c.counted += done
	}
	p.progDone += done
	p.progTotal += total
	p.cfg.Progress(p.progDone, p.progTotal)
}

// fail fails every input of the chunk with err.
func (ch *chunk[In, Out]) fail(err error) {
	clear(ch.out)
	ch.errs = make([]*TaskError, len(ch.in))
	for i := range ch.in {
		ch.errs[i] = &TaskError{Index: ch.start + i, Err: err}
	}
}

// yield yields the chunk's outputs and errors in order; it reports
// whether the caller wants more.
func (ch *chunk[In, Out]) yield(yield func(Out, error) bool) bool {
	errs := ch.errs
	for i := range ch.out {
		var err error
		if len(errs) > 0 && errs[0].Index == ch.start+i {
			err = errs[0]
			errs = errs[1:]
		}
		if !yield(ch.out[i], err) {
			return false
		}
	}
	return true
}

func sortTaskErrors(errs []*TaskError) {
	slices.SortFunc(errs, func(a, b *TaskError) int { return a.Index - b.Index })
}
