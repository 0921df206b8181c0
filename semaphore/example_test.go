package semaphore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mproc-go/mproc/semaphore"
)

// At most two workers at once, whichever goroutines or processes they are.
func ExampleSemaphore_Acquire() {
	ctx := context.Background()
	s, err := semaphore.New(2)
	if err != nil {
		panic(err)
	}
	defer s.Close()

	var mu sync.Mutex
	inside, most := 0, 0
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if err := s.Acquire(ctx); err != nil {
				panic(err)
			}
			defer s.Release()
			mu.Lock()
			inside++
			most = max(most, inside)
			inside--
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Println(most <= 2)
	// Output: true
}

// A bounded semaphore refuses a Release past its initial value.
func ExampleNewBounded() {
	s, err := semaphore.NewBounded(1)
	if err != nil {
		panic(err)
	}
	defer s.Close()

	fmt.Println(s.TryAcquire(), s.TryAcquire())
	fmt.Println(s.Release())
	fmt.Println(errors.Is(s.Release(), semaphore.ErrTooManyReleases))
	// Output:
	// true false
	// <nil>
	// true
}
