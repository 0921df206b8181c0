package pool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/pool"
	"github.com/mproc-go/mproc/process"
)

// The task function is registered at package level, so that the parent
// and the workers (this program executed again) both know it.
var cube = pool.Register("cube", func(ctx context.Context, x int) (int, error) {
	return x * x * x, nil
})

// A program's main starts with process.Main (in a test binary, TestMain
// does): in a worker, it serves tasks and never returns.
func Example() {
	// func main() {
	//	process.Main()
	ctx := context.Background()
	p, err := pool.New(ctx, cube, pool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Terminate()

	out, err := p.Map(ctx, []int{1, 2, 3, 4, 5, 6})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out)
	// Output: [1 8 27 64 125 216]
}

var parseNumber = pool.Register("parse-number", func(ctx context.Context, s string) (int, error) {
	return strconv.Atoi(s)
})

// Map returns every output, and a MapError listing the inputs that
// failed, each with the worker's error text.
func ExamplePool_Map_errors() {
	ctx := context.Background()
	p, err := pool.New(ctx, parseNumber, pool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Terminate()

	out, err := p.Map(ctx, []string{"1", "two", "3", "4x"})
	fmt.Println(out)
	var merr *pool.MapError
	if errors.As(err, &merr) {
		for _, te := range merr.Tasks {
			fmt.Printf("input %d: %s\n", te.Index, te.Msg)
		}
	}
	// Output:
	// [1 0 3 0]
	// input 1: strconv.Atoi: parsing "two": invalid syntax
	// input 3: strconv.Atoi: parsing "4x": invalid syntax
}

// ImapUnordered yields the outputs as they arrive.
func ExamplePool_ImapUnordered() {
	ctx := context.Background()
	p, err := pool.New(ctx, upper, pool.Config{Workers: 2, ChunkSize: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Terminate()

	var got []string
	for s, err := range p.ImapUnordered(ctx, slices.Values([]string{"b", "a", "c"})) {
		if err != nil {
			log.Fatal(err)
		}
		got = append(got, s)
	}
	slices.Sort(got) // the order of arrival varies
	fmt.Println(got)
	// Output: [A B C]
}

// Submit submits a task and returns at once, like Python's apply_async.
func ExamplePool_Submit() {
	ctx := context.Background()
	p, err := pool.New(ctx, cube, pool.Config{Workers: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Terminate()

	t := p.Submit(ctx, 10)
	// ... other work ...
	v, err := t.Wait(ctx)
	fmt.Println(v, err)
	// Output: 1000 <nil>
}

// Set in each worker by openCounter.
var counterLock *lock.Lock

// openCounter, the workers' initializer, picks up the lock that the pool
// shares with every worker.
var openCounter = pool.RegisterInit("open-counter", func(ctx context.Context) error {
	var err error
	counterLock, err = lock.Inherit("counter")
	return err
})

// increment adds one to the number in the file at path: a read, then a
// write, which only the lock keeps from losing updates.
var increment = pool.Register("increment", func(ctx context.Context, path string) (int, error) {
	if err := counterLock.LockContext(ctx); err != nil {
		return 0, err
	}
	defer counterLock.Unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	return n + 1, os.WriteFile(path, []byte(strconv.Itoa(n+1)), 0o600)
})

// The classic way to give every worker a lock: the pool shares it with each
// worker it starts, and the initializer inherits it by name.
func Example_initializer() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pool-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "counter")
	if err := os.WriteFile(path, []byte("0"), 0o600); err != nil {
		log.Fatal(err)
	}

	l, err := lock.New()
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	p, err := pool.New(ctx, increment, pool.Config{
		Workers:   2,
		ChunkSize: 1,
		Init:      openCounter,
		Shares:    map[string]process.Sharer{"counter": l},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Terminate()

	if _, err := p.Map(ctx, slices.Repeat([]string{path}, 50)); err != nil {
		log.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("counter:", string(b))
	// Output: counter: 50
}
