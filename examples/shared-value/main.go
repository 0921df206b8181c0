// Command shared-value is the first program of many Python users, in Go:
// ten processes each add 1 to a shared counter twenty times, pausing 10 ms
// between additions.
//
//	go run ./examples/shared-value            # 5 runs with Update: 200 every time
//	go run ./examples/shared-value -loadstore # Load then Store: updates are lost
//
// In Python:
//
//	def add(counter):
//	    for _ in range(20):
//	        time.sleep(0.01)
//	        with counter.get_lock():
//	            counter.value += 1
//
//	counter = Value('i', 0)
//	procs = [Process(target=add, args=(counter,)) for _ in range(10)]
//
// Here the counter is a value.Value[int] made by the parent and handed to
// each child with Cmd.Share; a child gets it with value.Inherit. Update is
// the `with counter.get_lock(): counter.value += 1`: the read, the addition
// and the write happen under the value's lock, atomically against every
// process. Load then Store, like `counter.value += 1` without the lock,
// reads and writes in two steps, and another process's addition between
// them is lost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/value"
)

const (
	workers = 10
	adds    = 20
)

func init() {
	process.Register("add", add)
}

func main() {
	process.Main() // in a child, runs add and exits
	loadstore := flag.Bool("loadstore", false, "add with Load then Store instead of Update")
	runs := flag.Int("runs", 5, "how many times to run the program")
	flag.Parse()
	how := "Update"
	if *loadstore {
		how = "Load then Store"
	}
	fmt.Printf("%d processes add 1 to a shared value, %d times each, with %s\n", workers, adds, how)
	for range *runs {
		n, err := run(context.Background(), *loadstore)
		if err != nil {
			fmt.Fprintln(os.Stderr, "shared-value:", err)
			os.Exit(1)
		}
		if n == workers*adds {
			fmt.Printf("counter = %d\n", n)
		} else {
			fmt.Printf("counter = %d (%d updates lost)\n", n, workers*adds-n)
		}
	}
}

func run(ctx context.Context, loadstore bool) (int, error) {
	counter, err := value.New(0)
	if err != nil {
		return 0, err
	}
	defer counter.Close()
	var cmds []*process.Cmd
	var errs []error
	for range workers {
		cmd := process.Command("add")
		if loadstore {
			cmd.Args = []string{"loadstore"}
		}
		if err := cmd.Share(counter, "counter"); err != nil {
			errs = append(errs, err)
			break
		}
		if err := cmd.Start(ctx); err != nil {
			errs = append(errs, err)
			break
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		errs = append(errs, cmd.Wait())
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return counter.Load(ctx)
}

// add runs in each child.
func add(ctx context.Context) error {
	counter, err := value.Inherit[int]("counter")
	if err != nil {
		return err
	}
	defer counter.Close()
	loadstore := len(process.Args()) > 0 && process.Args()[0] == "loadstore"
	for range adds {
		time.Sleep(10 * time.Millisecond)
		if !loadstore {
			if _, err := counter.Update(ctx, func(n int) int { return n + 1 }); err != nil {
				return err
			}
			continue
		}
		n, err := counter.Load(ctx)
		if err != nil {
			return err
		}
		time.Sleep(time.Millisecond) // Python's `counter.value += 1` also reads, works, then writes
		if err := counter.Store(ctx, n+1); err != nil {
			return err
		}
	}
	return nil
}
