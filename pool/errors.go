package pool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/process"
)

var (
	// ErrClosed is returned by a call made after [Executor.Close]. Test with
	// errors.Is.
	ErrClosed = errors.New("pool: closed")
	// ErrTerminated is returned by a call that [Executor.Terminate], or the end
	// of the context given to [New], interrupted or came after. In the
	// second case the error also wraps the context's error. Test with
	// errors.Is.
	ErrTerminated = errors.New("pool: terminated")
	// ErrRunning is returned by [Executor.Join] on a pool that is neither
	// closed nor terminated: Join would wait forever. Test with errors.Is.
	ErrRunning = errors.New("pool: Join before Close or Terminate")
	// ErrWorkerLost is wrapped by the [TaskError] of each input of a chunk
	// whose worker died [Config.MaxTries] times in a row while running
	// it, or while starting (before it was ready), and by the error of
	// [New] when a worker died while starting. The error also says how the
	// last worker ended (an error of package process: test with
	// errors.As). Test with errors.Is.
	ErrWorkerLost = errors.New("pool: worker lost")
	// ErrPanic is wrapped by the [TaskError] of an input whose task
	// panicked in the worker. Test with errors.Is.
	ErrPanic = errors.New("pool: task panicked")
	// ErrInit is returned by [New], and wrapped by the [TaskError]s of the
	// inputs that could not run, when a worker's initializer failed. The
	// error carries the initializer's text. Test with errors.Is.
	ErrInit = errors.New("pool: worker initializer failed")
	// ErrNotSendable is wrapped by the [TaskError]s of a chunk holding an
	// input that holds a Pool, a process.Cmd, or a lock, queue or Conn
	// (which workers get through [Config.Shares] instead): the chunk fails
	// in the caller's process, before it goes to a worker. An output that
	// holds one fails its task in the worker, with the same text. Test
	// with errors.Is.
	ErrNotSendable = share.ErrNotSendable
	// ErrNotRegistered is wrapped by the [TaskError]s of a call whose
	// task function the workers do not know, and returned by
	// [NewExecutor] when they do not know its initializer (a Register
	// call that runs in the parent only). Test with errors.Is.
	ErrNotRegistered = errors.New("pool: not registered in the worker")
	// ErrFlush is wrapped by the error of [Executor.Join] when a worker that
	// exited (closed, retired or terminated) did not complete the flush of
	// the queues it had put items on: its [Config.FlushTimeout] ran out,
	// or a queue failed. Items may be lost. It is process.ErrFlush. Test
	// with errors.Is.
	ErrFlush = process.ErrFlush
)

// TaskError is the failure of one input. Its task either ran in a worker
// and returned an error or panicked (the value stayed in the worker; its
// text, type and stack came back), or never finished: its worker kept
// dying, it could not be encoded, or its call ended first.
//
// Test with errors.As; a TaskError wraps [ErrPanic] for a panic and the
// cause for a task that never finished ([ErrWorkerLost], ...).
type TaskError struct {
	Index int    // the input's index in the call's inputs (0 for Apply and Go)
	Msg   string // the text of the error (err.Error() in the worker) or of the panic value
	Type  string // the error's dynamic type in the worker, as printed by %T ("" for a panic or a task that did not finish)
	Stack string // the panicking goroutine's stack, for a panic
	Err   error  // ErrPanic, the reason the task did not finish, or nil for an error the function returned
}

func (e *TaskError) Error() string {
	switch {
	case errors.Is(e.Err, ErrPanic):
		return fmt.Sprintf("pool: input %d: task panicked: %s", e.Index, e.Msg)
	case e.Err != nil:
		return fmt.Sprintf("pool: input %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("pool: input %d: %s", e.Index, e.Msg)
}

// Unwrap returns Err.
func (e *TaskError) Unwrap() error { return e.Err }

// MapError is the error of a [Pool.Map] some of whose inputs failed. Map
// still returns every result: the failed inputs' results are zero values.
// errors.As and errors.Is look at every task error in turn.
type MapError struct {
	Tasks []*TaskError // one per failed input, in input order
	Total int          // the number of inputs of the call
}

func (e *MapError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pool: %d of %d tasks failed", len(e.Tasks), e.Total)
	for i, t := range e.Tasks {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Tasks)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(strings.TrimPrefix(t.Error(), "pool: "))
	}
	return b.String()
}

// Unwrap returns the task errors.
func (e *MapError) Unwrap() []error {
	errs := make([]error, len(e.Tasks))
	for i, t := range e.Tasks {
		errs[i] = t
	}
	return errs
}
