// Package atexit keeps the flush functions of the primitives a process has
// open, because Go has no atexit: a process that returns from main loses
// what a queue still buffers. Queues Register a flush when they are created
// or inherited and Unregister it on Close; process.Main runs what is left
// with Run before the child exits.
package atexit

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// Func flushes one primitive. It must honour ctx.
type Func func(ctx context.Context) error

type entry struct {
	fn      Func
	pending func() int // items fn is to carry, or nil
}

var (
	mu    sync.Mutex
	next  uint64
	funcs = map[uint64]entry{}
)

// Handle identifies a registered function.
type Handle uint64

// Register adds fn and returns the handle to remove it with.
func Register(fn Func) Handle { return RegisterCounted(fn, nil) }

// RegisterCounted is Register for a primitive that can tell how many items
// its flush is to carry: Run adds up pending() before each flush, for the
// report of the exit (the parent logs it).
func RegisterCounted(fn Func, pending func() int) Handle {
	mu.Lock()
	defer mu.Unlock()
	next++
	funcs[next] = entry{fn, pending}
	return Handle(next)
}

// Unregister removes the function registered under h; unknown handles are
// ignored.
func Unregister(h Handle) {
	mu.Lock()
	defer mu.Unlock()
	delete(funcs, uint64(h))
}

// Run calls every registered function, in registration order, removing
// each, and returns their errors joined.
func Run(ctx context.Context) error {
	_, _, err := RunCounted(ctx)
	return err
}

// RunCounted is Run, also returning how many functions it called and the
// items they were to carry (as counted before each flush).
func RunCounted(ctx context.Context) (flushes, items int, err error) {
	mu.Lock()
	var hs []uint64
	for h := range funcs {
		hs = append(hs, h)
	}
	mu.Unlock()
	slices.Sort(hs)
	var errs []error
	for _, h := range hs {
		mu.Lock()
		e, ok := funcs[h]
		delete(funcs, h)
		mu.Unlock()
		if ok {
			flushes++
			if e.pending != nil {
				items += e.pending()
			}
			errs = append(errs, e.fn(ctx))
		}
	}
	return flushes, items, errors.Join(errs...)
}
