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

var (
	mu    sync.Mutex
	next  uint64
	funcs = map[uint64]Func{}
)

// Handle identifies a registered function.
type Handle uint64

// Register adds fn and returns the handle to remove it with.
func Register(fn Func) Handle {
	mu.Lock()
	defer mu.Unlock()
	next++
	funcs[next] = fn
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
		fn, ok := funcs[h]
		delete(funcs, h)
		mu.Unlock()
		if ok {
			errs = append(errs, fn(ctx))
		}
	}
	return errors.Join(errs...)
}
