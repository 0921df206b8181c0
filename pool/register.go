package pool

import (
	"context"
	"fmt"
	"sync"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/process"
)

// workerName is the function of package process that every worker runs;
// its arguments name the task function and the initializer.
const workerName = "mproc.pool.worker"

func init() {
	process.Register(workerName, workerMain)
}

// Func is a task function registered with [Register]: the handle that
// [New] takes. Its type parameters are the function's input and output;
// both travel between processes as msgpack, so they must be types that
// github.com/vmihailenco/msgpack/v5 encodes and decodes (exported fields).
// A Func is safe for use by several goroutines.
type Func[In, Out any] struct {
	name string
	fn   func(ctx context.Context, in In) (Out, error)
}

// Name returns the name fn was registered under.
func (f *Func[In, Out]) Name() string { return f.name }

// Init is a worker initializer registered with [RegisterInit], for
// [Config.Init]. It is safe for use by several goroutines.
type Init struct {
	name string
	fn   func(ctx context.Context) error
}

// Name returns the name the initializer was registered under.
func (i *Init) Name() string { return i.name }

// server is the worker side of a Func, without its type parameters.
type server interface {
	runChunk(ctx context.Context, b, buf []byte) ([]byte, error)
}

var registry struct {
	sync.Mutex
	funcs map[string]server
	inits map[string]*Init
}

// Register makes fn runnable by the workers of a pool under name and
// returns the handle that [New] takes. Call it where both the parent and
// the workers (the same program, executed again) run it: in an init
// function or a package-level variable declaration,
//
//	var square = pool.Register("square", func(ctx context.Context, x int) (int, error) {
//		return x * x, nil
//	})
//
// In a worker, fn is called once per input, one input at a time, with a
// context that is canceled when the pool stops the worker. The error it
// returns, or the panic it raises, reaches the caller as a [TaskError];
// the worker carries on with the next input.
//
// Register panics if name is empty, is not made of ASCII letters, digits,
// '_', '-' and '.', or is already registered, or if fn is nil. It is safe
// for use by several goroutines.
func Register[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error)) *Func[In, Out] {
	if fn == nil {
		panic("pool: Register " + name + " with a nil function")
	}
	checkName("Register", name)
	f := &Func[In, Out]{name: name, fn: fn}
	registry.Lock()
	defer registry.Unlock()
	if registry.funcs == nil {
		registry.funcs = make(map[string]server)
	}
	if _, dup := registry.funcs[name]; dup {
		panic("pool: Register " + name + " twice")
	}
	registry.funcs[name] = f
	return f
}

// RegisterInit makes fn a worker initializer under name, for
// [Config.Init]: each worker runs it once, before its first task, as
// Python's Pool runs its initializer. It is the place to pick up the
// objects shared with every worker through [Config.Shares] (a lock, a
// queue: their package's Inherit) and to keep them, or anything else the
// tasks need, in package variables. An error it returns fails [New] (or,
// for a worker started later, the inputs that worker was to run), wrapped
// with [ErrInit].
//
// Call it in an init function or a package-level variable declaration,
// like [Register]. RegisterInit panics if name is empty, is not made of
// ASCII letters, digits, '_', '-' and '.', or is already registered as an
// initializer, or if fn is nil. It is safe for use by several goroutines.
func RegisterInit(name string, fn func(ctx context.Context) error) *Init {
	if fn == nil {
		panic("pool: RegisterInit " + name + " with a nil function")
	}
	checkName("RegisterInit", name)
	in := &Init{name: name, fn: fn}
	registry.Lock()
	defer registry.Unlock()
	if registry.inits == nil {
		registry.inits = make(map[string]*Init)
	}
	if _, dup := registry.inits[name]; dup {
		panic("pool: RegisterInit " + name + " twice")
	}
	registry.inits[name] = in
	return in
}

func checkName(what, name string) {
	if !share.ValidName(name) {
		panic(fmt.Sprintf("pool: %s %q: use ASCII letters, digits, '_', '-' and '.'", what, name))
	}
}

func lookup(name string) (server, bool) {
	registry.Lock()
	defer registry.Unlock()
	s, ok := registry.funcs[name]
	return s, ok
}

func lookupInit(name string) (*Init, bool) {
	registry.Lock()
	defer registry.Unlock()
	in, ok := registry.inits[name]
	return in, ok
}
