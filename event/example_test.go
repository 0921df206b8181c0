package event_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/mproc-go/mproc/event"
)

// Workers wait for a start signal; one Set wakes all of them, in every
// process.
func ExampleEvent_Wait() {
	start, err := event.New()
	if err != nil {
		panic(err)
	}
	defer start.Close()

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := start.Wait(context.Background()); err != nil {
				panic(err)
			}
		})
	}
	fmt.Println(start.IsSet())
	start.Set()
	wg.Wait()
	fmt.Println(start.IsSet())
	// Output:
	// false
	// true
}
