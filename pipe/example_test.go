package pipe_test

import (
	"errors"
	"fmt"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
)

func ExampleDuplex() {
	a, b, err := pipe.Duplex()
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()

	a.Send("ping")
	var s string
	b.Recv(&s)
	b.Send(s + " pong")
	a.Recv(&s)
	fmt.Println(s)
	// Output: ping pong
}

func ExampleSimplex() {
	r, w, err := pipe.Simplex()
	if err != nil {
		panic(err)
	}
	defer r.Close()
	defer w.Close()

	w.Send(map[string]int{"answer": 42})
	var m map[string]int
	r.Recv(&m)
	fmt.Println(m)

	// One way only, like Python's Pipe(duplex=False).
	fmt.Println(errors.Is(r.Send("back"), conn.ErrReadOnly))
	_, err = w.RecvBytes()
	fmt.Println(errors.Is(err, conn.ErrWriteOnly))
	// Output:
	// map[answer:42]
	// true
	// true
}
