// Command producer-consumer runs the classic JoinableQueue pattern across
// processes: a parent puts jobs, several worker processes take them, and
// the parent waits until every job is done before stopping the workers.
//
//	go run ./examples/producer-consumer
//	go run ./examples/producer-consumer -workers 4 -jobs 50
//
// Step by step:
//
//  1. The parent makes a joinable.Queue of jobs and a queue.Queue for the
//     workers' reports, and starts the workers with both shared.
//  2. It puts the jobs. Each worker loops: Get a job, do it, TaskDone.
//  3. The parent calls Join, which returns once every job put so far has
//     had its TaskDone, in whichever process that happened.
//  4. It puts one sentinel per worker (a nil job, Python's None). A worker
//     that gets one sends its report and returns; each worker takes exactly
//     one sentinel, because it stops taking jobs after it.
//  5. The parent reads the reports, waits for the workers and prints who
//     did what.
//
// The same program in Python:
//
//	def worker(jobs, reports):
//	    done = []
//	    while (job := jobs.get()) is not None:
//	        do(job); done.append(job.id); jobs.task_done()
//	    jobs.task_done(); reports.put(done)
//
//	jobs, reports = JoinableQueue(), Queue()
//	ps = [Process(target=worker, args=(jobs, reports)) for _ in range(3)]
//	for p in ps: p.start()
//	for job in make_jobs(): jobs.put(job)
//	jobs.join()
//	for p in ps: jobs.put(None)
//	done = [reports.get() for p in ps]
//	for p in ps: p.join()
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/queue"
)

// Job is one unit of work: here, pretending to be busy for a while.
type Job struct {
	ID   int
	Work time.Duration
}

// Report is what a worker tells the parent when it stops.
type Report struct {
	Worker int   // the worker's number, 1 to -workers
	Pid    int   // its process ID
	Jobs   []int // the IDs of the jobs it did, in order
}

func init() {
	process.Register("worker", worker)
}

func main() {
	// In a worker process, Main runs worker and exits; in the parent it
	// returns at once.
	process.Main()
	workers := flag.Int("workers", 3, "number of worker processes")
	jobs := flag.Int("jobs", 20, "number of jobs")
	flag.Parse()
	if err := run(context.Background(), *workers, *jobs); err != nil {
		fmt.Fprintln(os.Stderr, "producer-consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, nworkers, njobs int) error {
	if nworkers < 1 || njobs < 0 {
		return errors.New("-workers must be at least 1 and -jobs at least 0")
	}
	// *Job rather than Job so that nil can be the sentinel.
	jobs, err := joinable.New[*Job](0)
	if err != nil {
		return err
	}
	defer jobs.Close()
	reports, err := queue.New[Report](0)
	if err != nil {
		return err
	}
	defer reports.Close()

	// Start the workers. Each inherits both queues; the parent keeps
	// using them, so it keeps them open.
	cmds := make([]*process.Cmd, nworkers)
	for i := range cmds {
		cmd := process.Command("worker", strconv.Itoa(i+1))
		// Like Python's daemon=True, by default: if we fail and exit
		// early, even killed, the workers go with us.
		if err := cmd.Share(jobs, "jobs"); err != nil {
			return err
		}
		if err := cmd.Share(reports, "reports"); err != nil {
			return err
		}
		if err := cmd.Start(ctx); err != nil {
			return err
		}
		cmds[i] = cmd
	}
	fmt.Printf("started %d workers sharing a joinable.Queue of jobs and a queue.Queue of reports\n", nworkers)

	// Produce. The work varies from job to job, so some workers do more
	// jobs than others.
	start := time.Now()
	for id := range njobs {
		if err := jobs.Put(ctx, &Job{ID: id, Work: time.Duration(1+id%4) * time.Millisecond}); err != nil {
			return err
		}
	}
	fmt.Printf("put %d jobs\n", njobs)

	// Join returns when every job put so far has been marked done.
	if err := jobs.Join(ctx); err != nil {
		return err
	}
	fmt.Printf("Join returned after %v: every job has had its TaskDone\n", time.Since(start).Round(time.Millisecond))

	// Shut down: one sentinel per worker.
	for range nworkers {
		if err := jobs.Put(ctx, nil); err != nil {
			return err
		}
	}
	fmt.Printf("put %d sentinels (nil jobs), one per worker\n", nworkers)

	// Read the reports before waiting for the workers: a worker's last
	// Put must reach us before it can finish (see "Joining processes
	// that use queues" in Python's documentation; the same holds here).
	byWorker := make([]Report, nworkers)
	seen := make(map[int]int) // job ID -> how many workers did it
	for range nworkers {
		r, err := reports.Get(ctx)
		if err != nil {
			return err
		}
		byWorker[r.Worker-1] = r
		for _, id := range r.Jobs {
			seen[id]++
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("worker %d: %w", i+1, err)
		}
	}
	fmt.Printf("all %d workers exited cleanly\n", nworkers)

	// Summary, and a check that the queue delivered each job exactly once.
	total := 0
	for _, r := range byWorker {
		fmt.Printf("  worker %d (pid %d) did %2d jobs: %v\n", r.Worker, r.Pid, len(r.Jobs), r.Jobs)
		total += len(r.Jobs)
	}
	for id := range njobs {
		if seen[id] != 1 {
			return fmt.Errorf("job %d was done %d times", id, seen[id])
		}
	}
	fmt.Printf("total: %d jobs, each done exactly once\n", total)
	return nil
}

// worker runs in each worker process: it takes jobs until it takes a
// sentinel, marking each one done, then reports what it did.
func worker(ctx context.Context) error {
	n, err := strconv.Atoi(process.Args()[0])
	if err != nil {
		return err
	}
	jobs, err := joinable.Inherit[*Job]("jobs")
	if err != nil {
		return err
	}
	defer jobs.Close()
	reports, err := queue.Inherit[Report]("reports")
	if err != nil {
		return err
	}
	defer reports.Close() // Close flushes our Put before the process exits

	r := Report{Worker: n, Pid: os.Getpid(), Jobs: []int{}}
	for {
		job, err := jobs.Get(ctx)
		if err != nil {
			return err
		}
		if job == nil { // the sentinel: no more work for us
			// Every Get is matched by a TaskDone, the sentinel's too,
			// so that a later Join would not wait for it forever.
			if err := jobs.TaskDone(); err != nil {
				return err
			}
			return reports.Put(ctx, r)
		}
		time.Sleep(job.Work) // the "work"
		r.Jobs = append(r.Jobs, job.ID)
		if err := jobs.TaskDone(); err != nil {
			return err
		}
	}
}
