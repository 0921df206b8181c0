package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/mproc-go/mproc/lock"
)

// Goroutines and processes use a Lock the same way; here four goroutines
// of one process. See examples/shared-counter for several processes.
func Example() {
	l, err := lock.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	var wg sync.WaitGroup
	total := 0
	for range 4 {
		wg.Go(func() {
			l.Lock()
			defer l.Unlock()
			total++
		})
	}
	wg.Wait()
	fmt.Println(total)
	// Output: 4
}

// A process that must not wait long behind a slow holder gives up at its
// deadline. (A holder that dies frees the Lock: the kernel drops its flock.)
func ExampleLock_LockContext() {
	l, err := lock.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	l.Lock() // held, as if by another process that is slow
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = l.LockContext(ctx)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	l.Unlock()
	// Output: true
}

// Unlocking a Lock this process does not hold is reported; Unlock would
// panic with the same error, as sync.Mutex does.
func ExampleLock_Release() {
	l, err := lock.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	l.Lock()
	fmt.Println(l.Release())
	fmt.Println(l.Release())
	// Output:
	// <nil>
	// lock: unlock of a lock this process does not hold
}

// The parent shares the Lock with a child that re-executes this program;
// the child inherits it by name. Both then contend for the same lock.
func ExampleLock_Share() {
	if os.Getenv("ROLE") == "child" {
		l, err := lock.Inherit("log")
		if err != nil {
			panic(err)
		}
		l.Lock()
		fmt.Println("child in the critical section")
		l.Unlock()
		return
	}

	l, err := lock.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ROLE=child")
	cmd.Stdout = os.Stdout
	if err := l.Share(cmd, "log"); err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	l.Lock()
	fmt.Println("parent in the critical section")
	l.Unlock()
	if err := cmd.Wait(); err != nil {
		panic(err)
	}
}
