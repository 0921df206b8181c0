package simplequeue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/mproc-go/mproc/simplequeue"
)

// Put returns once the item is in the kernel; Get takes the oldest. Here
// both ends are in one process; with Share and Inherit (see the Share
// example) any number of processes use the same queue.
func Example() {
	q, err := simplequeue.New[string]()
	if err != nil {
		panic(err)
	}
	defer q.Close()

	ctx := context.Background()
	fmt.Println(q.Empty())
	for _, s := range []string{"one", "two", "three"} {
		if err := q.Put(ctx, s); err != nil {
			panic(err)
		}
	}
	fmt.Println(q.Empty())
	for !q.Empty() {
		s, err := q.Get(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Println(s)
	}
	// Output:
	// true
	// false
	// one
	// two
	// three
}

// Get gives up when its context ends, taking nothing.
func ExampleQueue_Get() {
	q, err := simplequeue.New[int]()
	if err != nil {
		panic(err)
	}
	defer q.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = q.Get(ctx)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// true
}

// An item that cannot be encoded fails in Put, in the caller.
func ExampleQueue_Put_unencodable() {
	q, err := simplequeue.New[any]()
	if err != nil {
		panic(err)
	}
	defer q.Close()

	fmt.Println(q.Put(context.Background(), func() {}))
	fmt.Println(q.Empty())
	// Output:
	// simplequeue: encode interface {}: msgpack: Encode(unsupported func())
	// true
}

// Close wakes the calls of this process that wait on the queue, with
// ErrClosed; other processes keep their own handles.
func ExampleQueue_Close() {
	q, err := simplequeue.New[int]()
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
	fmt.Println(errors.Is(q.Put(context.Background(), 1), simplequeue.ErrClosed))
	// Output:
	// simplequeue: closed
	// true
}

// A parent shares a queue with a child process, which opens it with
// Inherit. Put is synchronous: a child may exit as soon as its last Put
// has returned, and nothing is lost.
func ExampleQueue_Share() {
	if os.Getenv("ROLE") == "child" {
		q, err := simplequeue.Inherit[string]("results")
		if err != nil {
			panic(err)
		}
		q.Put(context.Background(), "hello from the child")
		os.Exit(0)
	}

	q, err := simplequeue.New[string]()
	if err != nil {
		panic(err)
	}
	defer q.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ROLE=child")
	if err := q.Share(cmd, "results"); err != nil {
		panic(err)
	}
	if err := cmd.Run(); err != nil {
		panic(err)
	}
	s, err := q.Get(context.Background()) // the child is gone; its item is not
	fmt.Println(s, err)
}
