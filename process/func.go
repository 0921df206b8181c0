package process

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/codec"
)

// Func is a function registered with [RegisterFunc]: the handle that makes
// its commands, so that a misspelled name is a compile error rather than
// [ErrNotRegistered] at Start. In and Out travel between the processes as
// msgpack (github.com/vmihailenco/msgpack/v5: exported fields, no
// channels or functions). A Func is safe for use by several goroutines.
type Func[In, Out any] struct {
	name string
}

// RegisterFunc makes fn startable in a child under name, with an argument
// of type In and a result of type Out, and returns its handle:
//
//	var resize = process.RegisterFunc("resize", func(ctx context.Context, job Job) (Stats, error) {
//		...
//	})
//
//	stats, err := resize.Command(job).Run(ctx)
//
// Call it in a package-level variable declaration or an init function, so
// that the parent and the child (the same program) both know the name. In
// the child, fn runs as a function given to [Register] does (on the main
// goroutine, its ctx canceled by SIGTERM, shares from the Inherit
// functions), with the argument decoded from what the parent gave
// [Func.Command]; what it returns comes back to [TypedCmd.Wait].
//
// RegisterFunc panics where [Register] panics; a name is registered once,
// by one of the two. It is safe for use by several goroutines.
func RegisterFunc[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error)) *Func[In, Out] {
	if fn == nil {
		panic("process: RegisterFunc " + name + " with a nil function")
	}
	register("RegisterFunc", name, entry{typed: func(ctx context.Context, arg []byte) ([]byte, error) {
		var in In
		if err := codec.Unmarshal(arg, &in); err != nil {
			return nil, fmt.Errorf("process: decode the argument: %w", err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		b, err := msgpack.Marshal(&out)
		if err != nil {
			return nil, fmt.Errorf("process: encode the result: %w", err)
		}
		return b, nil
	}})
	return &Func[In, Out]{name: name}
}

// Name returns the name the function was registered under.
func (f *Func[In, Out]) Name() string { return f.name }

// Command returns a command that runs the function on in, in a child. The
// argument is encoded by [TypedCmd.Start], in the caller: a value msgpack
// cannot encode fails there.
func (f *Func[In, Out]) Command(in In) *TypedCmd[Out] {
	return &TypedCmd[Out]{Cmd: &Cmd{Name: f.name}, encode: func() ([]byte, error) {
		return msgpack.Marshal(&in)
	}}
}

// TypedCmd is a [Cmd] running a function registered with [RegisterFunc],
// whose result comes back to Wait. Everything of Cmd applies (its fields,
// Share, Pid, Done, Signal, Kill); Start, Run and Wait are typed. The
// concurrency contract is Cmd's.
type TypedCmd[Out any] struct {
	*Cmd
	encode func() ([]byte, error)
}

// Start encodes the argument and starts the child, as [Cmd.Start]. An
// argument that cannot be encoded fails here, with an error wrapping
// [ErrEncode]; the Cmd then cannot be started again.
func (c *TypedCmd[Out]) Start(ctx context.Context) error {
	c.Cmd.mu.Lock()
	if c.Cmd.started {
		c.Cmd.mu.Unlock()
		return fmt.Errorf("process %s: %w", c.Name, ErrStarted)
	}
	arg, err := c.encode()
	if err != nil {
		c.Cmd.started = true
		c.Cmd.mu.Unlock()
		return fmt.Errorf("%w: the argument of %s: %w", ErrEncode, c.Name, err)
	}
	c.Cmd.arg = arg
	c.Cmd.mu.Unlock()
	return c.Cmd.Start(ctx)
}

// Wait waits for the child as [Cmd.Wait] does and returns the function's
// result. The result is the zero value when err is not nil; a result the
// parent cannot decode is an error wrapping [ErrEncode].
func (c *TypedCmd[Out]) Wait() (Out, error) {
	var out Out
	if err := c.Cmd.Wait(); err != nil {
		return out, err
	}
	c.Cmd.mu.Lock()
	b, pid := c.Cmd.result, c.Cmd.cmd.Process.Pid
	c.Cmd.mu.Unlock()
	if err := codec.Unmarshal(b, &out); err != nil {
		var zero Out
		return zero, fmt.Errorf("%w: the result of %s (pid %d): %w", ErrEncode, c.Name, pid, err)
	}
	return out, nil
}

// Run starts the child and waits for it.
func (c *TypedCmd[Out]) Run(ctx context.Context) (Out, error) {
	if err := c.Start(ctx); err != nil {
		var zero Out
		return zero, err
	}
	return c.Wait()
}
