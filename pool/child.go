package pool

// The worker side: what runs in each worker process.

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/process"
)

// connName is the share name of a worker's connection to the pool; see
// [Config.Shares].
const connName = "mproc_pool"

// maxKeptBuf is the largest encoding buffer kept from one chunk to the next.
const maxKeptBuf = 1 << 20

// workerMain is the function of package process that a worker runs. Its
// arguments name the task function and the initializer ("" for none).
func workerMain(ctx context.Context) error {
	args := process.Args()
	if len(args) != 2 {
		return fmt.Errorf("pool: worker started with arguments %q", args)
	}
	c, err := conn.Inherit(connName)
	if err != nil {
		return fmt.Errorf("pool: worker: %w", err)
	}
	defer c.Close()
	srv, ok := lookup(args[0])
	if !ok {
		h := hello{Unregistered: true, Msg: fmt.Sprintf("no task function registered as %q in the worker (call pool.Register at package level or in init)", args[0])}
		c.Send(h)
		return fmt.Errorf("%w: %s", ErrNotRegistered, h.Msg)
	}
	if args[1] != "" {
		in, ok := lookupInit(args[1])
		if !ok {
			h := hello{Unregistered: true, Msg: fmt.Sprintf("no initializer registered as %q in the worker (call pool.RegisterInit at package level or in init)", args[1])}
			c.Send(h)
			return fmt.Errorf("%w: %s", ErrNotRegistered, h.Msg)
		}
		if err := in.fn(ctx); err != nil {
			c.Send(hello{Msg: err.Error(), Type: fmt.Sprintf("%T", err), Init: true})
			return err
		}
	}
	if err := c.SendContext(ctx, hello{}); err != nil {
		return fmt.Errorf("pool: worker: %w", err)
	}
	return srv.serve(ctx, c)
}

// serve runs chunks until the pool closes the connection (io.EOF: the
// worker retires) or stops the worker.
func (f *Func[In, Out]) serve(ctx context.Context, c *conn.Conn) error {
	var buf []byte
	for {
		b, err := c.RecvBytesContext(ctx)
		switch {
		case err == io.EOF:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("pool: worker: %w", err)
		}
		in, err := readChunk[In](b)
		if err != nil {
			return fmt.Errorf("pool: worker: decode inputs: %w", err)
		}
		out := make([]Out, len(in))
		var errs []taskErr
		for i := 0; i < len(in); {
			i = f.run(ctx, in, out, i, &errs)
		}
		if ctx.Err() != nil {
			return ctx.Err() // the pool stopped this worker and will not read the result
		}
		if buf, err = appendResult(buf[:0], out, errs); err != nil {
			if buf, err = encodeEach(buf[:0], out, errs); err != nil {
				return fmt.Errorf("pool: worker: encode results: %w", err)
			}
		}
		if err := c.SendBytesContext(ctx, buf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pool: worker: %w", err)
		}
		if cap(buf) > maxKeptBuf {
			buf = nil
		}
	}
}

// run runs the task function on in[i:], the outputs going to out and the
// failures to errs, until the end, a panic or the end of ctx; it returns
// the index to go on from (len(in) when done). One deferred recover for
// many tasks: a defer per task would cost as much as a tiny task.
func (f *Func[In, Out]) run(ctx context.Context, in []In, out []Out, i int, errs *[]taskErr) (next int) {
	defer func() {
		if r := recover(); r != nil {
			*errs = append(*errs, taskErr{Index: i, Panic: true, Msg: fmt.Sprint(r), Stack: string(debug.Stack())})
			next = i + 1
		}
	}()
	done := ctx.Done()
	for ; i < len(in); i++ {
		select {
		case <-done:
			return len(in)
		default:
		}
		o, err := f.fn(ctx, in[i])
		if err != nil {
			*errs = append(*errs, taskErr{Index: i, Msg: err.Error(), Type: fmt.Sprintf("%T", err)})
			continue
		}
		out[i] = o
	}
	return i
}

// encodeEach encodes a result whose outputs did not all encode: each output
// that fails alone becomes the zero value and a task error.
func encodeEach[Out any](b []byte, out []Out, errs []taskErr) ([]byte, error) {
	for i := range out {
		if _, err := msgpack.Marshal(&out[i]); err != nil {
			var zero Out
			out[i] = zero
			errs = append(errs, taskErr{Index: i, Msg: "pool: encode the result: " + err.Error(), Type: fmt.Sprintf("%T", err)})
		}
	}
	slices.SortStableFunc(errs, func(a, b taskErr) int { return a.Index - b.Index })
	return appendResult(b, out, errs)
}
