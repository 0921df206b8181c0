package process_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/process"
)

// The function a child runs is registered in init, so that the parent and
// the child (the same program) both know its name.
func init() {
	process.Register("shout", shout)
}

// shout runs in the child: it answers on the Conn it inherited as "reply".
func shout(ctx context.Context) error {
	reply, err := conn.Inherit("reply")
	if err != nil {
		return err
	}
	return reply.Send(strings.ToUpper(strings.Join(process.Args(), " ")))
}

// A program's main starts with process.Main (in a test binary, TestMain
// does); then the parent starts a child with a shared Conn.
func Example() {
	// func main() {
	//	process.Main()
	mine, theirs, err := pipe.Duplex()
	if err != nil {
		log.Fatal(err)
	}
	defer mine.Close()

	cmd := process.Command("shout", "hello", "child")
	if err := cmd.Share(theirs, "reply"); err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	theirs.Close() // the child has its own copy; ours would hide its EOF

	var s string
	if err := mine.Recv(&s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s)
	if err := cmd.Wait(); err != nil {
		log.Fatal(err)
	}
	// Output: HELLO CHILD
}

func init() {
	process.Register("divide", func(ctx context.Context) error {
		return fmt.Errorf("cannot divide %s by zero", process.Args()[0])
	})
}

// The error a child's function returns reaches Wait with its text.
func ExampleCmd_Wait() {
	err := process.Command("divide", "42").Run(context.Background())
	var perr *process.Error
	if errors.As(err, &perr) {
		fmt.Println(perr.Msg)
	}
	// Output: cannot divide 42 by zero
}
