package pool

// A call (one Map, Imap, ImapUnordered or Submit) and its chunks, as the
// executor sees them: without their types, which only the caller's side
// (pool.go, stream.go) and the chunk's own methods know.

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// errStreamEnd is what next returns once a stream call's feeder has ended
// and every chunk it made has been taken by the caller.
var errStreamEnd = errors.New("pool: end of the stream")

// call is one request of the executor's caller: chunks of inputs that the
// drivers take in turn, and the chunks finished so far. A slice call (Map,
// Submit) cuts its chunks as drivers take them; a stream call (Imap) gets
// them from its feeder.
type call struct {
	ex       *Executor
	ctx      context.Context // the caller's
	fname    string          // the task function's registered name
	size     int             // chunk size
	onFinish func(chunk)     // called for each finished chunk (Submit)

	// A slice call: n inputs, chunk i covering cut(start, end).
	cut    func(start, end int) chunk
	n      int
	cursor int // start of the next chunk to hand out; guarded by ex.mu

	// A stream call: chunks pushed by the feeder, waiting for a driver.
	stream  bool
	pending []chunk // guarded by ex.mu
	queued  bool    // in ex.queue; guarded by ex.mu

	mu       sync.Mutex
	ready    []chunk // finished, not yet taken by the caller
	made     int     // chunks made (known at once for a slice call)
	finished int
	fed      bool          // a stream call's feeder has ended
	whole    bool          // ... having pushed the whole sequence
	notify   chan struct{} // receives a token when a chunk is ready

	quitOnce sync.Once
	quit     chan struct{}  // closed when the caller is gone; under ex.mu
	encoded  sync.WaitGroup // chunks handed out and not yet encoded

	counted int  // inputs counted as done in the progress; guarded by ex.progMu
	total   int  // inputs counted in the progress total; guarded by ex.progMu
	ended   bool // guarded by ex.progMu
}

// chunk is a run of consecutive inputs of one call, sent to a worker as
// one message. Its typed half (tchunk) holds the inputs and outputs.
type chunk interface {
	state() *chunkState
	// encode appends the inputs, as one msgpack array, to b.
	encode(b []byte) ([]byte, error)
	// decode decodes a result message into the outputs.
	decode(b []byte) ([]taskErr, error)
	// clearOut sets the outputs to their zero value.
	clearOut()
}

// chunkState is what the executor keeps of a chunk.
type chunkState struct {
	c     *call
	start int // index of the first input in the call's inputs
	n     int
	errs  []*TaskError // in index order
	tries int
}

func (s *chunkState) state() *chunkState { return s }

// tchunk is a chunk with its types.
type tchunk[In, Out any] struct {
	chunkState
	in  []In
	out []Out
}

func (ch *tchunk[In, Out]) encode(b []byte) ([]byte, error) { return appendArray(b, ch.in) }

func (ch *tchunk[In, Out]) decode(b []byte) ([]taskErr, error) { return readResult(b, ch.out) }

func (ch *tchunk[In, Out]) clearOut() { clear(ch.out) }

// yield yields the chunk's outputs and errors in order; it reports
// whether the caller wants more.
func (ch *tchunk[In, Out]) yield(yield func(Out, error) bool) bool {
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

// newCall makes a call of the function named fname; it fails when ctx has
// ended or the executor does not take calls any more.
func (ex *Executor) newCall(ctx context.Context, fname string, size int) (*call, error) {
	if ctx == nil {
		panic("pool: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &call{
		ex:     ex,
		ctx:    ctx,
		fname:  fname,
		size:   max(size, 1),
		notify: make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}, nil
}

// submitSlice queues a slice call of n inputs.
func (ex *Executor) submitSlice(c *call, n int, cut func(start, end int) chunk) error {
	c.n, c.cut = n, cut
	c.made = (n + c.size - 1) / c.size
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if err := ex.refuse(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	// The total grows before any chunk can finish: under ex.mu, no driver
	// can take one yet.
	ex.progress(c, 0, n)
	ex.queue = append(ex.queue, c)
	ex.wake()
	return nil
}

// openStream checks that a stream call may start, and counts its feeder:
// after Close, the drivers stay until every feeder has ended, since a call
// made before Close runs to its end.
func (ex *Executor) openStream(c *call) error {
	c.stream = true
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if err := ex.refuse(); err != nil {
		return err
	}
	ex.feeds++
	return nil
}

// push queues a chunk of a stream call; it reports false when the call
// or the executor is over (the chunk is dropped).
func (ex *Executor) push(ch chunk) bool {
	c := ch.state().c
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if c.gone() || ex.ctx.Err() != nil {
		return false
	}
	c.mu.Lock()
	c.made++
	c.mu.Unlock()
	ex.progress(c, 0, ch.state().n)
	c.pending = append(c.pending, ch)
	if !c.queued {
		c.queued = true
		ex.queue = append(ex.queue, c)
	}
	ex.wake()
	return true
}

// fedAll records that a stream call's feeder has ended.
func (c *call) fedAll() {
	c.mu.Lock()
	c.fed = true
	c.mu.Unlock()
	c.signal()
	c.ex.mu.Lock()
	c.ex.feeds--
	c.ex.wake() // idle drivers of a closed executor may go now
	c.ex.mu.Unlock()
}

// exhausted reports whether a stream call's feeder pushed the whole
// sequence (rather than stopping early).
func (c *call) exhausted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.whole
}

// refuse returns the error of a call the executor does not take. The
// caller holds ex.mu.
func (ex *Executor) refuse() error {
	if ex.ctx.Err() != nil {
		return ex.stopErr()
	}
	if ex.closed {
		return ErrClosed
	}
	return nil
}

// take hands out the next chunk to run. Without one, it returns the
// channel that announces new work, or nil when the driver should exit (the
// executor is closed and nothing is left).
func (ex *Executor) take() (chunk, <-chan struct{}) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.ctx.Err() != nil {
		return nil, nil // terminated: the callers have been told
	}
	for len(ex.queue) > 0 {
		c := ex.queue[0]
		if c.gone() {
			ex.dequeue()
			c.stop()
			c.pending = nil
			ex.progress(c, 0, 0)
			continue
		}
		var ch chunk
		last := false
		if c.stream {
			ch = c.pending[0]
			c.pending[0] = nil
			c.pending = c.pending[1:]
			last = len(c.pending) == 0
		} else {
			end := min(c.cursor+c.size, c.n)
			ch = c.cut(c.cursor, end)
			c.cursor = end
			last = end == c.n
		}
		c.encoded.Add(1) // before end() can wait: both under ex.mu
		if last {
			ex.dequeue()
		}
		return ch, nil
	}
	if ex.closed && ex.feeds == 0 {
		return nil, nil
	}
	return nil, ex.kick
}

// dequeue removes the oldest call from the queue. The caller holds ex.mu.
func (ex *Executor) dequeue() {
	ex.queue[0].queued = false
	ex.queue[0] = nil
	ex.queue = ex.queue[1:]
}

// gone reports whether the caller no longer wants the call's results.
func (c *call) gone() bool {
	select {
	case <-c.quit:
		return true
	default:
		return c.ctx.Err() != nil
	}
}

// finish records a finished chunk and tells the caller.
func (c *call) finish(ch chunk) {
	c.ex.progress(c, ch.state().n, 0)
	c.mu.Lock()
	c.ready = append(c.ready, ch)
	c.finished++
	all := !c.stream && c.finished == c.made
	c.mu.Unlock()
	c.signal()
	if c.onFinish != nil {
		c.onFinish(ch)
	}
	if all {
		c.end()
	}
}

func (c *call) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// next returns the next finished chunk, waiting for one; for a stream
// call, errStreamEnd once there is none left to wait for.
func (c *call) next(ctx context.Context) (chunk, error) {
	for {
		c.mu.Lock()
		if len(c.ready) > 0 {
			ch := c.ready[0]
			c.ready[0] = nil
			c.ready = c.ready[1:]
			c.mu.Unlock()
			return ch, nil
		}
		over := c.stream && c.fed && c.finished == c.made
		c.mu.Unlock()
		if over {
			return nil, errStreamEnd
		}
		select {
		case <-c.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ex.ctx.Done():
			return nil, c.ex.stopErr()
		}
	}
}

// end marks the caller gone: no more chunks are handed out, and the
// inputs not finished leave the progress total. It returns once the
// chunks already handed out are encoded: from then on, nothing reads the
// caller's inputs. It is idempotent.
func (c *call) end() {
	c.ex.mu.Lock()
	c.stop()
	c.pending = nil
	c.ex.mu.Unlock()
	c.encoded.Wait()
	c.ex.progress(c, 0, 0)
}

// stop closes quit, once. The caller holds ex.mu.
func (c *call) stop() {
	c.quitOnce.Do(func() { close(c.quit) })
}

// progress adds done and total to the executor's counts and reports
// them; with both zero, it ends c's part in them.
func (ex *Executor) progress(c *call, done, total int) {
	if ex.cfg.Progress == nil {
		return
	}
	ex.progMu.Lock()
	defer ex.progMu.Unlock()
	if c.ended {
		return
	}
	switch {
	case done == 0 && total == 0:
		c.ended = true
		total = c.counted - c.total // minus what will never finish
		if total == 0 {
			return
		}
	case done > 0:
		c.counted += done
	default:
		c.total += total
	}
	ex.progDone += done
	ex.progTotal += total
	ex.cfg.Progress(ex.progDone, ex.progTotal)
}

// fail fails every input of the chunk with err.
func fail(ch chunk, err error) {
	ch.clearOut()
	st := ch.state()
	st.errs = make([]*TaskError, st.n)
	for i := range st.n {
		st.errs[i] = &TaskError{Index: st.start + i, Err: err}
	}
}

func sortTaskErrors(errs []*TaskError) {
	slices.SortFunc(errs, func(a, b *TaskError) int { return a.Index - b.Index })
}
