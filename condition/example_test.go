package condition_test

import (
	"context"
	"fmt"

	"github.com/mproc-go/mproc/condition"
	"github.com/mproc-go/mproc/value"
)

// A consumer waits, under the condition's lock, for a shared count to be
// positive; a producer raises it and notifies. The count is a value.Value
// so that other processes see it too.
func ExampleCondition_WaitFor() {
	ctx := context.Background()
	c, err := condition.New(nil)
	if err != nil {
		panic(err)
	}
	defer c.L.Close()
	defer c.Close()
	items, err := value.New(0)
	if err != nil {
		panic(err)
	}
	defer items.Close()

	done := make(chan int)
	go func() {
		c.L.Lock()
		defer c.L.Unlock()
		err := c.WaitFor(ctx, func() bool {
			n, _ := items.Load(ctx)
			return n > 0
		})
		if err != nil {
			panic(err)
		}
		n, _ := items.Update(ctx, func(n int) int { return n - 1 })
		done <- n
	}()

	c.L.Lock()
	items.Update(ctx, func(n int) int { return n + 1 })
	c.Notify(1)
	c.L.Unlock()
	fmt.Println(<-done)
	// Output: 0
}
