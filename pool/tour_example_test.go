package pool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/mproc-go/mproc/pool"
)

// The functions of the tour, registered at package level.
var (
	tourSquare = pool.Register("tour-square", func(ctx context.Context, x int) (int, error) {
		return x * x, nil
	})
	// Python's starmap(add, [(a, b), ...]) is a function of a struct.
	tourAdd = pool.Register("tour-add", func(ctx context.Context, p pair) (int, error) {
		return p.A + p.B, nil
	})
	tourSleep = pool.Register("tour-sleep", func(ctx context.Context, d time.Duration) (time.Duration, error) {
		return d, sleep(ctx, d)
	})
	tourGreet = pool.Register("tour-greet", func(ctx context.Context, name string) (string, error) {
		return tourGreeting + ", " + name, nil
	})
	// The initializer runs once in each worker, before its first task.
	tourInit = pool.RegisterInit("tour-init", func(ctx context.Context) error {
		tourGreeting = "hello from an initialized worker"
		return nil
	})
	tourGreeting string // set in each worker by tourInit
)

type pair struct{ A, B int }

// Python's tour of multiprocessing.Pool (map, map with a chunksize, apply,
// apply_async, starmap, map_async with a timeout, an initializer), on one
// executor: one set of four workers runs every function.
func Example_tour() {
	ctx := context.Background()
	ex, err := pool.NewExecutor(ctx, pool.Config{Workers: 4, Init: tourInit})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Terminate()
	square := pool.Bind(ex, tourSquare)

	// pool.map(square, range(10))
	out, err := square.Map(ctx, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	fmt.Println("map:", out, err)

	// pool.map(square, range(100), chunksize=10)
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = i
	}
	out, err = square.WithChunkSize(10).Map(ctx, xs)
	fmt.Println("map, chunks of 10:", len(out), out[99], err)

	// pool.apply(square, (20,))
	v, err := square.Apply(ctx, 20)
	fmt.Println("apply:", v, err)

	// r = pool.apply_async(square, (7,)); r.get()
	t := square.Submit(ctx, 7)
	v, err = t.Wait(ctx)
	fmt.Println("apply_async:", v, err)

	// pool.starmap(add, [(1, 2), (3, 4)])
	sums, err := pool.Bind(ex, tourAdd).Map(ctx, []pair{{1, 2}, {3, 4}})
	fmt.Println("starmap:", sums, err)

	// r = pool.map_async(sleep, [3600]); r.get(timeout=0.1): the deadline
	// stops the call and its worker, which a fresh one replaces.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = pool.Bind(ex, tourSleep).Map(tctx, []time.Duration{time.Hour})
	fmt.Println("map_async with a timeout:", errors.Is(err, context.DeadlineExceeded))

	// Pool(initializer=init): each worker ran it first.
	s, err := pool.Bind(ex, tourGreet).Apply(ctx, "tour")
	fmt.Println("initializer:", s, err)

	// Output:
	// map: [0 1 4 9 16 25 36 49 64 81] <nil>
	// map, chunks of 10: 100 9801 <nil>
	// apply: 400 <nil>
	// apply_async: 49 <nil>
	// starmap: [3 7] <nil>
	// map_async with a timeout: true
	// initializer: hello from an initialized worker, tour <nil>
}
