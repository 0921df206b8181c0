// Command nomain is a program that forgot process.Main: a child it starts
// runs its main again. TestForgotMain runs it and checks that Start and
// pool.New fail at once in the parent, saying what to add, instead of
// hanging. NOMAIN_MODE chooses what the child's main does:
//
//	exit  it runs on, its own Start fails, and it returns (the common case)
//	hang  it blocks, as a server's main would (caught by StartTimeout)
//	pool  the parent calls pool.New instead of Start
//
// Each line the program prints starts with its pid, so that the parent's
// lines can be told from those of children that run main again.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mproc-go/mproc/pool"
	"github.com/mproc-go/mproc/process"
)

var square = pool.Register("square", func(ctx context.Context, x int) (int, error) { return x * x, nil })

func init() {
	process.Register("work", func(ctx context.Context) error { return nil })
}

func main() {
	// Missing here: process.Main()
	mode := os.Getenv("NOMAIN_MODE")
	if os.Getenv("NOMAIN_CHILD") == "hang" {
		time.Sleep(time.Hour) // a main that serves forever
	}
	ctx := context.Background()
	var err error
	switch mode {
	case "exit", "hang":
		cmd := process.Command("work")
		cmd.StartTimeout = time.Hour // only the child's exit can end Start early
		if mode == "hang" {
			cmd.StartTimeout = time.Second
			cmd.Env = append(os.Environ(), "NOMAIN_CHILD=hang")
		}
		err = cmd.Start(ctx)
		if err == nil {
			err = cmd.Wait()
		}
	case "pool":
		var p *pool.Pool[int, int]
		p, err = pool.New(ctx, square, pool.Config{Workers: 2})
		if err == nil {
			p.Terminate()
		}
	default:
		err = fmt.Errorf("unknown NOMAIN_MODE %q", mode)
	}
	fmt.Printf("%d: ErrNoMain=%v err=%v\n", os.Getpid(), errors.Is(err, process.ErrNoMain), err)
}
