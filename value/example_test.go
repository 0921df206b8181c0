package value_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/mproc-go/mproc/value"
)

// Update is Python's `with v.get_lock(): v.value += 1`: no addition is
// lost, whichever goroutines or processes make them. See
// examples/shared-value for ten processes.
func ExampleValue_Update() {
	ctx := context.Background()
	counter, err := value.New(0)
	if err != nil {
		panic(err)
	}
	defer counter.Close()

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				counter.Update(ctx, func(n int) int { return n + 1 })
			}
		})
	}
	wg.Wait()
	n, _ := counter.Load(ctx)
	fmt.Println(n)
	// Output: 100
}

// Python's Array is a Value of a Go array (or of a slice). See
// examples/value-array for a child process changing one.
func Example_array() {
	ctx := context.Background()
	a, err := value.New([5]int32{0, 1, 2, 3, 4})
	if err != nil {
		panic(err)
	}
	defer a.Close()

	a.Update(ctx, func(a [5]int32) [5]int32 {
		for i := range a {
			a[i] = -a[i]
		}
		return a
	})
	got, _ := a.Load(ctx)
	fmt.Println(got)
	// Output: [0 -1 -2 -3 -4]
}
