// Command worker-pool runs a pool of worker processes that survives the
// death of a worker: the task the dead worker held goes to another one,
// and every task's result is counted exactly once.
//
//	go run ./examples/worker-pool
//	go run ./examples/worker-pool -workers 4 -tasks 30 -kill-after 10
//
// How it is wired:
//
//   - Each worker has a connection of its own from the parent (one end of a
//     pipe.Simplex), on which it receives one task at a time. So the parent
//     always knows which task each worker holds.
//   - All workers put their results on one shared queue.Queue, which the
//     parent reads.
//   - The parent notices a dead worker through Cmd.Done, which is closed the
//     moment the child has exited, and puts the task that worker held back
//     in front of the pending tasks, for the next idle worker.
//
// To show it, the parent kills a busy worker itself (Cmd.Kill, SIGKILL) once
// -kill-after results are in. A result can still arrive from the dead
// worker if it finished its task just before dying; the task then runs
// twice, and the parent keeps the first result and ignores the second:
// each task is accounted for exactly once either way.
//
// Python's multiprocessing.Pool cannot do this: when a worker is killed,
// the Pool starts a new one, but the task the dead worker held is lost and
// map() waits for its result forever (cpython#66587). Package pool does
// what this example does by hand (one connection per worker, a dead
// worker's task retried) behind Map and friends; read this program to see
// the mechanism, use package pool to get it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/queue"
)

// Task is one unit of work: square ID, taking Work to do it.
type Task struct {
	ID   int
	Work time.Duration
}

// Result is a worker's answer to a Task.
type Result struct {
	Task   int // the Task's ID
	Value  int // ID squared
	Worker int // who computed it
}

func init() {
	process.Register("worker", worker)
}

func main() {
	process.Main() // in a worker: runs worker and exits
	workers := flag.Int("workers", 3, "number of worker processes")
	tasks := flag.Int("tasks", 12, "number of tasks")
	killAfter := flag.Int("kill-after", 4, "kill a busy worker once this many results are in (negative: never)")
	flag.Parse()
	if err := run(context.Background(), *workers, *tasks, *killAfter); err != nil {
		fmt.Fprintln(os.Stderr, "worker-pool:", err)
		os.Exit(1)
	}
}

// A member is the parent's view of one worker.
type member struct {
	n     int          // 1 to -workers
	cmd   *process.Cmd // the worker process
	tasks *conn.Conn   // the parent's end of its task connection
	task  *Task        // the task it holds, nil when idle
	done  int          // results it delivered
	dead  bool         // its process has exited
}

func run(ctx context.Context, nworkers, ntasks, killAfter int) error {
	if nworkers < 2 || ntasks < 1 {
		return errors.New("-workers must be at least 2 (one may be killed) and -tasks at least 1")
	}
	results, err := queue.New[Result](0)
	if err != nil {
		return err
	}
	defer results.Close()

	// Start the workers, each with its own task connection and the shared
	// results queue.
	members := make([]*member, 0, nworkers)
	defer func() {
		// On the way out, closing the task connections makes the workers
		// that are left return.
		for _, m := range members {
			m.tasks.Close()
		}
	}()
	died := make(chan *member, nworkers) // buffered: a notice never blocks
	for i := range nworkers {
		m, err := start(ctx, i+1, results)
		if err != nil {
			return err
		}
		members = append(members, m)
		// Cmd.Done is closed as soon as the worker exits, however it exits.
		go func() {
			<-m.cmd.Done()
			died <- m
		}()
	}
	fmt.Printf("started %d workers, each with its own task connection, all sharing one results queue\n", nworkers)

	// Results come from a queue, deaths from channels: a goroutine turns
	// the queue into a channel so that one select can wait for both.
	// Canceling readCtx ends it.
	readCtx, stopReading := context.WithCancel(ctx)
	resultsCh := make(chan Result)
	readErr := make(chan error, 1)
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			r, err := results.Get(readCtx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case resultsCh <- r:
			case <-readCtx.Done():
				return
			}
		}
	})
	defer func() { stopReading(); reader.Wait() }()

	pending := make([]Task, ntasks)
	for id := range pending {
		pending[id] = Task{ID: id, Work: time.Duration(20+10*(id%3)) * time.Millisecond}
	}
	// handOut gives the next pending task to each idle, living worker.
	handOut := func() {
		for _, m := range members {
			if len(pending) == 0 {
				return
			}
			if m.dead || m.task != nil {
				continue
			}
			t := pending[0]
			if err := m.tasks.Send(t); err != nil {
				continue // it just died: its notice is on the way
			}
			pending = pending[1:]
			m.task = &t
		}
	}
	handOut()

	got := make(map[int]Result) // task ID -> its result, kept exactly once
	alive, closing, killed := nworkers, false, false
	for alive > 0 {
		select {
		case r := <-resultsCh:
			m := members[r.Worker-1]
			if m.task != nil && m.task.ID == r.Task {
				m.task = nil
			}
			if _, dup := got[r.Task]; dup {
				fmt.Printf("task %2d: second result, from worker %d, ignored\n", r.Task, r.Worker)
				break
			}
			if r.Value != r.Task*r.Task {
				return fmt.Errorf("worker %d says task %d gives %d", r.Worker, r.Task, r.Value)
			}
			got[r.Task] = r
			m.done++
			fmt.Printf("task %2d = %3d  from worker %d\n", r.Task, r.Value, r.Worker)

			if killAfter >= 0 && len(got) >= killAfter && !killed {
				// Kill a worker in the middle of a task, to show the pool
				// surviving it.
				if v := busy(members, m); v != nil {
					fmt.Printf("killing worker %d (pid %d) while it holds task %d\n", v.n, v.cmd.Pid(), v.task.ID)
					if err := v.cmd.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
						return err
					}
					killed = true
				}
			}

		case err := <-readErr:
			return fmt.Errorf("results queue: %w", err)

		case m := <-died:
			m.dead = true
			alive--
			m.tasks.Close()
			err := m.cmd.Wait()
			if closing && err == nil {
				fmt.Printf("worker %d exited cleanly\n", m.n)
				break
			}
			fmt.Printf("worker %d is gone: %v\n", m.n, err)
			if m.task != nil {
				if _, ok := got[m.task.ID]; !ok {
					fmt.Printf("task %2d goes back to the pending tasks\n", m.task.ID)
					pending = append([]Task{*m.task}, pending...)
				}
				m.task = nil
			}
			if alive == 0 && !closing {
				return errors.New("every worker died")
			}
		}

		if len(got) == ntasks && !closing {
			// All done: closing its task connection tells each worker to
			// return (it sees EOF). Its late results, if any, still come
			// in and are ignored as second results.
			closing = true
			fmt.Printf("all %d results are in: closing the task connections\n", ntasks)
			for _, m := range members {
				m.tasks.Close()
			}
		}
		handOut()
	}

	if len(got) != ntasks {
		return fmt.Errorf("%d results for %d tasks", len(got), ntasks)
	}
	fmt.Printf("%d tasks, %d results kept, one per task:", ntasks, len(got))
	for _, m := range members {
		fmt.Printf(" worker %d did %d;", m.n, m.done)
	}
	fmt.Println()
	return nil
}

// start starts worker n with a task connection of its own and the shared
// results queue.
func start(ctx context.Context, n int, results *queue.Queue[Result]) (*member, error) {
	theirs, ours, err := pipe.Simplex() // the worker reads, we write
	if err != nil {
		return nil, err
	}
	defer theirs.Close() // after Start the worker has its own copy
	cmd := process.Command("worker", strconv.Itoa(n))
	err = cmd.Share(theirs, "tasks")
	if err == nil {
		err = cmd.Share(results, "results")
	}
	if err == nil {
		err = cmd.Start(ctx)
	}
	if err != nil {
		ours.Close()
		return nil, err
	}
	return &member{n: n, cmd: cmd, tasks: ours}, nil
}

// busy returns a living worker other than not that holds a task, or nil.
func busy(members []*member, not *member) *member {
	for _, m := range members {
		if m != not && !m.dead && m.task != nil {
			return m
		}
	}
	return nil
}

// worker runs in each worker process: it does the tasks that arrive on its
// connection, one at a time, and puts each result on the shared queue,
// until the parent closes the connection.
func worker(ctx context.Context) error {
	n, err := strconv.Atoi(process.Args()[0])
	if err != nil {
		return err
	}
	tasks, err := conn.Inherit("tasks")
	if err != nil {
		return err
	}
	defer tasks.Close()
	results, err := queue.Inherit[Result]("results")
	if err != nil {
		return err
	}
	defer results.Close() // flushes what we put before we exit

	for {
		var t Task
		err := tasks.RecvContext(ctx, &t)
		if errors.Is(err, io.EOF) {
			return nil // the parent closed our connection: no more tasks
		}
		if err != nil {
			return err
		}
		time.Sleep(t.Work) // the "work"
		if err := results.Put(ctx, Result{Task: t.ID, Value: t.ID * t.ID, Worker: n}); err != nil {
			return err
		}
	}
}
