package barrier_test

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/mproc-go/mproc/barrier"
)

// Three parties meet twice; each Wait returns the party's arrival index.
func ExampleBarrier_Wait() {
	b, err := barrier.New(3)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	var mu sync.Mutex
	var indices []int
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 2 {
				i, err := b.Wait(context.Background())
				if err != nil {
					panic(err)
				}
				mu.Lock()
				indices = append(indices, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Ints(indices)
	fmt.Println(indices)
	// Output: [0 0 1 1 2 2]
}
