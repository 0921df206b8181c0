package joinable_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mproc-go/mproc/joinable"
)

// Workers mark each job done; Join waits for all of them. Here the workers
// are goroutines; a child process gets the queue with Share and Inherit and
// runs the same loop.
func Example() {
	ctx := context.Background()
	jobs, err := joinable.New[int](0)
	if err != nil {
		panic(err)
	}
	defer jobs.Close()

	var sum atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				n, err := jobs.Get(ctx)
				if err != nil {
					return // ErrClosed
				}
				sum.Add(int64(n * n))
				jobs.TaskDone()
			}
		})
	}
	for n := 1; n <= 10; n++ {
		if err := jobs.Put(ctx, n); err != nil {
			panic(err)
		}
	}
	if err := jobs.Join(ctx); err != nil {
		panic(err)
	}
	fmt.Println("sum of squares:", sum.Load())
	fmt.Println("extra TaskDone:", jobs.TaskDone())

	jobs.Close() // wakes the workers
	wg.Wait()
	// Output:
	// sum of squares: 385
	// extra TaskDone: joinable: TaskDone called more times than items were put
}
