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
// argument names the initializer ("" for none).
func workerMain(ctx context.Context) error {
	args := process.Args()
	if len(args) != 1 {
		return fmt.Errorf("pool: worker started with arguments %q", args)
	}
	c, err := conn.Inherit(connName)
	if err != nil {
		return fmt.Errorf("pool: worker: %w", err)
	}
	defer c.Close()
	if args[0] != "" {
		in, ok := lookupInit(args[0])
		if !ok {
			h := hello{Unregistered: true, Msg: fmt.Sprintf("no initializer registered as %q in the worker (call pool.RegisterInit at package level or in init)", args[0])}
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
	return serve(ctx, c)
}

// serve runs chunks, of whichever task functions they name, until the pool
// closes the connection (io.EOF: the worker retires) or stops the worker.
func serve(ctx context.Context, c *conn.Conn) error {
	var (
		buf   []byte
		name  string // of the last chunk's function
		srv   server
		known bool
	)
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
		fname, in, err := readChunkName(b)
		if err != nil {
			return fmt.Errorf("pool: worker: decode inputs: %w", err)
		}
		if fname != name || !known {
			name = fname
			srv, known = lookup(fname)
		}
		if !known {
			buf = appendRefusal(buf[:0], fmt.Sprintf("no task function registered as %q in the worker (call pool.Register at package level or in init)", fname))
		} else if buf, err = srv.runChunk(ctx, in, buf[:0]); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err() // the pool stopped this worker and will not read the result
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

// runChunk runs the function on the inputs of one chunk message and
// appends the result message to buf.
func (f *Func[In, Out]) runChunk(ctx context.Context, b, buf []byte) ([]byte, error) {
	in, err := readChunk[In](b)
	if err != nil {
		return buf, fmt.Errorf("pool: worker: decode inputs: %w", err)
	}
	out := make([]Out, len(in))
	var errs []taskErr
	for i := 0; i < len(in); {
		i = f.run(ctx, in, out, i, &errs)
	}
	if ctx.Err() != nil {
		return buf, nil
	}
	res, err := appendResult(buf, out, errs)
	if err != nil {
		if res, err = encodeEach(buf, out, errs); err != nil {
			return buf, fmt.Errorf("pool: worker: encode results: %w", err)
		}
	}
	return res, nil
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
