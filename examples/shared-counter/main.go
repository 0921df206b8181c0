// Command shared-counter shows what a cross-process lock is for: 10 worker
// processes each add 1, 20 times, to a counter kept in a file. An update
// is read, then write: without a lock, two workers read the same value and
// one of the two additions is lost.
//
//	go run ./examples/shared-counter          # prints 200, every time
//	go run ./examples/shared-counter -nolock  # prints less: lost updates
//
// Each worker is a function of this program run in a child process
// (process.RegisterFunc; the child is this program executed again), given
// the counter's path as a typed argument. The parent creates one lock.Lock
// and hands it to each worker with Cmd.Share; a worker gets it with
// lock.Inherit. The lock's descriptors travel in the child's inherited
// descriptors: there is no lock file, no name to clean up, nothing left
// when the processes exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/process"
)

const (
	workers = 10
	adds    = 20
)

// job is a worker's argument.
type job struct {
	Path   string
	NoLock bool
}

// counterWorker runs in each worker process.
var counterWorker = process.RegisterFunc("counter-worker", func(ctx context.Context, j job) (struct{}, error) {
	return struct{}{}, worker(j.Path, j.NoLock)
})

func main() {
	process.Main() // in a worker: runs counterWorker, then exits
	nolock := flag.Bool("nolock", false, "update the counter without taking the lock")
	flag.Parse()
	log.SetFlags(0)
	if err := parent(*nolock); err != nil {
		log.Fatal(err)
	}
}

func parent(nolock bool) error {
	dir, err := os.MkdirTemp("", "shared-counter")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "counter")
	if err := os.WriteFile(path, []byte("0"), 0o644); err != nil {
		return err
	}
	l, err := lock.New()
	if err != nil {
		return err
	}
	defer l.Close()

	how := "each update under one shared lock.Lock"
	if nolock {
		how = "with no lock (-nolock)"
	}
	fmt.Printf("%d processes add 1 to the counter in a file, %d times each, %s\n", workers, adds, how)

	// The lock doubles as a starting gate: the workers wait for it until
	// they have all started, so that they really run at the same time.
	l.Lock()
	cmds, err := startWorkers(l, path, nolock)
	l.Unlock()
	for _, cmd := range cmds {
		if _, werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("a worker failed: %v", werr)
		}
	}
	if err != nil {
		return err
	}

	n, err := readCounter(path)
	if err != nil {
		return err
	}
	fmt.Printf("counter = %d (%d expected)\n", n, workers*adds)
	switch {
	case n == workers*adds:
		fmt.Println("no update lost: each read-sleep-write ran alone, under the lock")
	case nolock:
		fmt.Printf("%d updates lost: workers read the same value while another was between its read and its write\n", workers*adds-n)
	default:
		return fmt.Errorf("%d updates lost under the lock", workers*adds-n)
	}
	return nil
}

// startWorkers starts the worker processes, each inheriting l under the
// name "counter". On error it stops the ones it started.
func startWorkers(l *lock.Lock, path string, nolock bool) ([]*process.TypedCmd[struct{}], error) {
	var cmds []*process.TypedCmd[struct{}]
	for range workers {
		cmd := counterWorker.Command(job{Path: path, NoLock: nolock})
		err := cmd.Share(l, "counter")
		if err == nil {
			err = cmd.Start(context.Background())
		}
		if err != nil {
			for _, c := range cmds {
				c.Kill()
				c.Wait()
			}
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

func worker(path string, nolock bool) error {
	l, err := lock.Inherit("counter")
	if err != nil {
		return err
	}
	defer l.Close()
	l.Lock() // wait at the starting gate
	//lint:ignore SA2001 waiting for the lock is the point: the parent holds it until every worker is ready
	l.Unlock()

	for range adds {
		if !nolock {
			l.Lock()
		}
		err := add(path)
		if !nolock {
			l.Unlock()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// add reads the counter, sleeps a little (the window where another process
// can read the same value), and writes the counter plus one.
func add(path string) error {
	n, err := readCounter(path)
	if err != nil {
		return err
	}
	time.Sleep(time.Millisecond)
	// Write a new file and rename it over the counter, so that a reader
	// never sees a half-written file, even with -nolock.
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n+1)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readCounter(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
