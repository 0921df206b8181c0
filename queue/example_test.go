package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/mproc-go/mproc/queue"
)

// Three workers share one queue of jobs. Here they are goroutines; a
// child process gets the queue with Share and Inherit (see the Share
// example) and runs the same loop.
func Example() {
	ctx := context.Background()
	jobs, err := queue.New[int](0) // unbounded
	if err != nil {
		panic(err)
	}
	defer jobs.Close()

	var mu sync.Mutex
	sum := 0
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				n, err := jobs.Get(ctx)
				if err != nil || n < 0 {
					return
				}
				mu.Lock()
				sum += n
				mu.Unlock()
			}
		})
	}
	for n := 1; n <= 100; n++ {
		if err := jobs.Put(ctx, n); err != nil {
			panic(err)
		}
	}
	for range 3 {
		jobs.Put(ctx, -1) // one stop per worker
	}
	wg.Wait()
	fmt.Println("sum:", sum)
	// Output:
	// sum: 5050
}

// A bounded queue holds at most maxsize items: Put waits for room, TryPut
// says the queue is full, and Qsize, Full and Empty are exact when no call
// is under way.
func ExampleNew_bounded() {
	ctx := context.Background()
	q, err := queue.New[string](2)
	if err != nil {
		panic(err)
	}
	defer q.Close()

	q.Put(ctx, "a")
	q.Put(ctx, "b")
	fmt.Println(q.Qsize(), q.Full())
	err = q.TryPut("c")
	fmt.Println(errors.Is(err, queue.ErrFull))

	v, _ := q.Get(ctx)
	fmt.Println(v, q.Qsize(), q.Full())
	v, _ = q.TryGet()
	fmt.Println(v, q.Empty())
	_, err = q.TryGet()
	fmt.Println(errors.Is(err, queue.ErrEmpty))
	// Output:
	// 2 true
	// true
	// a 1 false
	// b true
	// true
}

// New refuses a maxsize that the queue's token pipe cannot hold.
func ExampleNew_maxsize() {
	_, err := queue.New[int](1 << 30)
	fmt.Println(errors.Is(err, queue.ErrMaxsize))
	// Output:
	// true
}

// Get and Put give up when their context ends, and leave the queue as it
// was.
func ExampleQueue_Get_timeout() {
	q, err := queue.New[int](1)
	if err != nil {
		panic(err)
	}
	defer q.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = q.Get(ctx) // nothing to get
	fmt.Println(err)

	q.Put(context.Background(), 1)
	err = q.Put(ctx, 2) // no room: ctx has ended
	fmt.Println(err, q.Qsize())
	// Output:
	// context deadline exceeded
	// context deadline exceeded 1
}

// An item that cannot be encoded fails in Put, in the caller: nothing is
// put, and the queue goes on.
func ExampleQueue_Put_unencodable() {
	q, err := queue.New[any](0)
	if err != nil {
		panic(err)
	}
	defer q.Close()

	fmt.Println(q.Put(context.Background(), make(chan int)))
	fmt.Println(q.Put(context.Background(), "fine"), q.Qsize())
	// Output:
	// queue: encode interface {}: msgpack: Encode(unsupported chan int)
	// <nil> 1
}

// Close wakes the calls of this process that wait on the queue, with
// ErrClosed; other processes keep their own handles.
func ExampleQueue_Close() {
	q, err := queue.New[int](0)
	if err != nil {
		panic(err)
	}
	got := make(chan error)
	go func() {
		_, err := q.Get(context.Background()) // waits: the queue is empty
		got <- err
	}()
	q.Close()
	fmt.Println(<-got)
	fmt.Println(q.Close()) // Close is idempotent
	// Output:
	// queue: closed
	// <nil>
}

// A parent shares a queue with a child process, which opens it with
// Inherit. A child must Close (or run under process.Main, which flushes at
// exit) before it returns, or the items it still buffers are lost.
func ExampleQueue_Share() {
	if os.Getenv("ROLE") == "child" {
		q, err := queue.Inherit[string]("results")
		if err != nil {
			panic(err)
		}
		q.Put(context.Background(), "hello from the child")
		q.Close() // flushes
		return
	}

	q, err := queue.New[string](0)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ROLE=child")
	if err := q.Share(cmd, "results"); err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer cmd.Wait()
	msg, err := q.Get(context.Background())
	fmt.Println(msg, err)
}
