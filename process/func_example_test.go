package process_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/mproc-go/mproc/process"
)

// Job is the typed argument of resize, Stats its result: both travel as
// msgpack.
type Job struct {
	Name  string
	Sizes []int
	Opts  map[string]bool
}

type Stats struct {
	Name   string
	Total  int
	InPool bool
}

// resize is registered at package level, so that the parent and the child
// both know it; the handle makes its commands.
var resize = process.RegisterFunc("resize", func(ctx context.Context, job Job) (Stats, error) {
	total := 0
	for _, s := range job.Sizes {
		total += s
	}
	return Stats{Name: job.Name, Total: total, InPool: os.Getenv("IN_POOL") == "1"}, nil
})

// A typed function takes its argument and returns its result across the
// process boundary: Python's Process(target=f, args=(job,)) with a result.
func ExampleRegisterFunc() {
	cmd := resize.Command(Job{Name: "cat.png", Sizes: []int{64, 128, 256}, Opts: map[string]bool{"sharp": true}})
	cmd.Env = append(os.Environ(), "IN_POOL=1")
	stats, err := cmd.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", stats)
	// Output: {Name:cat.png Total:448 InPool:true}
}
