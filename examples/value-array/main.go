// Command value-array is the Value and Array example of Python's
// multiprocessing documentation, in Go:
//
//	def f(n, a):
//	    n.value = 3.1415927
//	    for i in range(len(a)):
//	        a[i] = -a[i]
//
//	num = Value('d', 0.0)
//	arr = Array('i', range(10))
//	p = Process(target=f, args=(num, arr))
//	p.start(); p.join()
//	print(num.value)  # 3.1415927
//	print(arr[:])     # [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//
//	go run ./examples/value-array
//
// Python's Value('d') is a value.Value[float64], and its Array('i', 10) a
// value.Value of a slice ([]int32) or of a Go array ([10]int32): a Value
// holds any type msgpack can encode. The child changes both; the parent
// reads them back after the child exits. The child negates the array with
// one Update, so that no other process could see it half negated.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/value"
)

func init() {
	process.Register("f", f)
}

func main() {
	process.Main() // in the child, runs f and exits
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "value-array:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	num, err := value.New(0.0)
	if err != nil {
		return err
	}
	defer num.Close()
	arr, err := value.New([10]int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if err != nil {
		return err
	}
	defer arr.Close()

	p := process.Command("f")
	if err := p.Share(num, "n"); err != nil {
		return err
	}
	if err := p.Share(arr, "a"); err != nil {
		return err
	}
	if err := p.Run(ctx); err != nil {
		return err
	}

	n, err := num.Load(ctx)
	if err != nil {
		return err
	}
	a, err := arr.Load(ctx)
	if err != nil {
		return err
	}
	fmt.Println(n)
	fmt.Println(a)
	return nil
}

// f runs in the child.
func f(ctx context.Context) error {
	n, err := value.Inherit[float64]("n")
	if err != nil {
		return err
	}
	defer n.Close()
	a, err := value.Inherit[[10]int32]("a")
	if err != nil {
		return err
	}
	defer a.Close()
	if err := n.Store(ctx, 3.1415927); err != nil {
		return err
	}
	_, err = a.Update(ctx, func(a [10]int32) [10]int32 {
		for i := range a {
			a[i] = -a[i]
		}
		return a
	})
	return err
}
