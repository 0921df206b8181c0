// Command lock-and-queue answers, for Go, the classic question "Python
// multiprocessing: sharing a Lock and a Queue between processes".
//
//	go run ./examples/lock-and-queue
//
// # The question
//
// Ten jobs, at most three processes at a time. Each job prints under a lock
// (so that its lines are not mixed with another job's) and puts its result
// on a queue, which the parent reads:
//
//	def job(lock, queue, i):
//	    with lock:
//	        print("job", i, "begin"); print("job", i, "end")
//	    queue.put(i * i)
//
// Four ways to run it, and what Python does with each:
//
//  1. A Pool(3), with a plain Lock() and Queue() passed to pool.map:
//     fails, with "RuntimeError: Lock objects should only be shared
//     between processes through inheritance" (the Queue raises the same).
//  2. A Pool(3), with Manager().Lock() and Manager().Queue(): works.
//  3. One Process per job, with a plain Lock() and Queue() in its args:
//     works.
//  4. One Process per job, with the Manager's Lock and Queue: works.
//
// # Why the first one fails
//
// pool.map sends each call's arguments to workers that are already running,
// as bytes (pickled) through the pool's own task queue. A Lock is a handle
// to a kernel semaphore and a Queue a pair of pipe descriptors plus
// semaphores: a handle means something only in a process the kernel gave
// it to. Turned into bytes and sent to a running process it would name
// nothing there (or the wrong thing), so Python refuses to pickle them
// except while it creates a child process, the moment when the child can
// be given the handles themselves: that is inheritance. Scenario 3 works
// because Process(args=...) hands its arguments over exactly then.
//
// A manager sidesteps the rule: Manager().Lock() lives in a separate server
// process, and what the jobs get is a proxy, an address and an ID, which
// pickles fine. The price is that every acquire, release, put and get is a
// round trip through that server process. Python's own fix for scenario 1
// is inheritance again: Pool(3, initializer=init, initargs=(lock, queue))
// hands the plain objects to each worker as it is created.
//
// # Why inheritance is the answer here
//
// In mproc every object is a set of pipe or socket descriptors, and the
// only way to hand one over is inheritance: Cmd.Share before Cmd.Start puts
// the descriptors in the child's exec.Cmd.ExtraFiles, and the child finds
// them by name (lock.Inherit, queue.Inherit). There is nothing to pickle,
// so nothing to forbid, and no manager: a pool shares the lock and the
// queues when it starts its workers (scenarios 1 and 2), and a process per
// job gets them when it starts (scenarios 3 and 4). Lock and Put go
// straight to the kernel, with no server process in between. What cannot
// be done, in Go as in Python, is to hand a lock to a process that is
// already running.
//
// This program runs both shapes, a pool of 3 and a process per job with at
// most 3 at a time, with the same lock and the same result queue.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/queue"
)

const (
	jobs     = 10 // how many jobs
	parallel = 3  // at most this many processes at a time
)

// Result is what a job puts on the result queue.
type Result struct {
	Job, Square, Pid int
}

func init() {
	process.Register("pool-worker", poolWorker)
	process.Register("job", job)
}

func main() {
	process.Main() // in a child: runs poolWorker or job, and exits
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "lock-and-queue:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	// One lock and one result queue, used by both scenarios.
	printLock, err := lock.New()
	if err != nil {
		return err
	}
	defer printLock.Close()
	results, err := queue.New[Result](0)
	if err != nil {
		return err
	}
	defer results.Close()

	fmt.Printf("A pool of %d processes that inherited the lock and the queues when they started (Python's scenarios 1 and 2):\n", parallel)
	if err := pool(ctx, printLock, results); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	fmt.Printf("One process per job, at most %d at a time, each inheriting the lock and the result queue when it starts (Python's scenarios 3 and 4):\n", parallel)
	if err := perJob(ctx, printLock, results); err != nil {
		return fmt.Errorf("process per job: %w", err)
	}
	return nil
}

// pool starts 3 workers, all inheriting the lock, the result queue and a job
// queue, and feeds them the 10 jobs, then one sentinel (-1) each.
func pool(ctx context.Context, printLock *lock.Lock, results *queue.Queue[Result]) error {
	todo, err := queue.New[int](0)
	if err != nil {
		return err
	}
	defer todo.Close()

	cmds := make([]*process.Cmd, parallel)
	for i := range cmds {
		cmd := process.Command("pool-worker", strconv.Itoa(i+1))
		// Inheritance: the objects themselves go to the child as it starts.
		for name, obj := range map[string]process.Sharer{"lock": printLock, "results": results, "jobs": todo} {
			if err := cmd.Share(obj, name); err != nil {
				return err
			}
		}
		if err := cmd.Start(ctx); err != nil {
			return err
		}
		cmds[i] = cmd
	}
	for i := range jobs {
		if err := todo.Put(ctx, i); err != nil {
			return err
		}
	}
	for range parallel {
		if err := todo.Put(ctx, -1); err != nil {
			return err
		}
	}
	// Read the results before waiting for the workers, as with any queue.
	if err := collect(ctx, results); err != nil {
		return err
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			return err
		}
	}
	fmt.Printf("  %d processes ran, all at once, and exited cleanly\n\n", parallel)
	return nil
}

// perJob starts one process per job, each inheriting the lock and the
// result queue and told its job number in its arguments. A semaphore keeps
// at most 3 of them running.
func perJob(ctx context.Context, printLock *lock.Lock, results *queue.Queue[Result]) error {
	var (
		slots   = make(chan struct{}, parallel) // the semaphore
		mu      sync.Mutex                      // guards the three below
		running int
		most    int
		errs    []error
		wg      sync.WaitGroup
	)
	// Start them from a goroutine, so that this one can read the results
	// meanwhile.
	wg.Go(func() {
		for i := range jobs {
			slots <- struct{}{}
			cmd := process.Command("job", strconv.Itoa(i))
			err := cmd.Share(printLock, "lock")
			if err == nil {
				err = cmd.Share(results, "results")
			}
			// Counted as running from just before Start to just after
			// Wait: what we print is an upper bound.
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			if err == nil {
				err = cmd.Start(ctx)
			}
			if err != nil {
				mu.Lock()
				running--
				errs = append(errs, err)
				mu.Unlock()
				<-slots
				continue
			}
			wg.Go(func() {
				err := cmd.Wait() // the slot is free once the process is gone
				mu.Lock()
				running--
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				<-slots
			})
		}
	})
	err := collect(ctx, results)
	wg.Wait()
	if err := errors.Join(append(errs, err)...); err != nil {
		return err
	}
	fmt.Printf("  %d processes ran, at most %d at once, and exited cleanly\n", jobs, most)
	return nil
}

// collect gets the 10 results from the queue and prints them.
func collect(ctx context.Context, results *queue.Queue[Result]) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second) // never hang on a lost result
	defer cancel()
	squares := make([]int, jobs)
	pids := make(map[int]bool)
	for range jobs {
		r, err := results.Get(ctx)
		if err != nil {
			return err
		}
		if r.Square != r.Job*r.Job {
			return fmt.Errorf("job %d says its square is %d", r.Job, r.Square)
		}
		squares[r.Job] = r.Square
		pids[r.Pid] = true
	}
	fmt.Printf("  the queue brought back %d results from %d processes: %v\n", jobs, len(pids), squares)
	return nil
}

// poolWorker runs in each pool process: it does jobs from the job queue until
// it gets the sentinel -1.
func poolWorker(ctx context.Context) error {
	who := "pool worker " + process.Args()[0]
	printLock, results, err := inherit()
	if err != nil {
		return err
	}
	defer printLock.Close()
	defer results.Close() // flushes our results before the process exits
	todo, err := queue.Inherit[int]("jobs")
	if err != nil {
		return err
	}
	defer todo.Close()
	for {
		i, err := todo.Get(ctx)
		if err != nil {
			return err
		}
		if i < 0 {
			return nil
		}
		if err := do(ctx, who, i, printLock, results); err != nil {
			return err
		}
	}
}

// job runs in each per-job process: it does the one job in its arguments.
func job(ctx context.Context) error {
	i, err := strconv.Atoi(process.Args()[0])
	if err != nil {
		return err
	}
	printLock, results, err := inherit()
	if err != nil {
		return err
	}
	defer printLock.Close()
	defer results.Close()
	return do(ctx, "process for job "+process.Args()[0], i, printLock, results)
}

// inherit returns the lock and the result queue this child inherited.
func inherit() (*lock.Lock, *queue.Queue[Result], error) {
	printLock, err := lock.Inherit("lock")
	if err != nil {
		return nil, nil, err
	}
	results, err := queue.Inherit[Result]("results")
	if err != nil {
		printLock.Close()
		return nil, nil, err
	}
	return printLock, results, nil
}

// do is the job itself: two lines printed under the lock, with a pause
// between them (without the lock, other jobs' lines would land in the
// pause), then the result put on the queue.
func do(ctx context.Context, who string, i int, printLock *lock.Lock, results *queue.Queue[Result]) error {
	if err := printLock.LockContext(ctx); err != nil {
		return err
	}
	fmt.Printf("  [%s, pid %d] job %d: begin\n", who, os.Getpid(), i)
	time.Sleep(5 * time.Millisecond)
	fmt.Printf("  [%s, pid %d] job %d: end, %d² = %d\n", who, os.Getpid(), i, i, i*i)
	printLock.Unlock()
	return results.Put(ctx, Result{Job: i, Square: i * i, Pid: os.Getpid()})
}
