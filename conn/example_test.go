package conn_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
)

// Point is a message. msgpack encodes a struct as a map keyed by field
// name, which a Python peer receives as a dict.
type Point struct {
	X, Y  int
	Label string
}

func Example() {
	a, b, err := pipe.Duplex()
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()

	if err := a.Send(Point{1, 2, "héllo"}); err != nil {
		panic(err)
	}
	var p Point
	if err := b.Recv(&p); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", p)
	// Output: {X:1 Y:2 Label:héllo}
}

func ExampleConn_Recv_eof() {
	r, w, err := pipe.Simplex()
	if err != nil {
		panic(err)
	}
	defer r.Close()

	w.Send("last words")
	w.Close()
	for {
		var s string
		err := r.Recv(&s)
		if errors.Is(err, io.EOF) {
			fmt.Println("EOF: the writer closed (or died) between messages")
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Println(s)
	}
	// Output:
	// last words
	// EOF: the writer closed (or died) between messages
}

func ExampleConn_SendBytes() {
	a, b, err := pipe.Duplex()
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()

	// Raw payloads skip msgpack: Python's Connection.recv_bytes sees exactly
	// these bytes.
	a.SendBytes([]byte{0xca, 0xfe})
	a.SendBytes(nil)
	for range 2 {
		p, err := b.RecvBytes()
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d bytes: %q\n", len(p), p)
	}
	// Output:
	// 2 bytes: "\xca\xfe"
	// 0 bytes: ""
}

func ExampleConn_Poll() {
	a, b, err := pipe.Duplex()
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ready, _ := b.Poll(0) // do not wait
	fmt.Println("nothing sent:", ready)
	ready, _ = b.Poll(10 * time.Millisecond) // wait at most 10ms
	fmt.Println("after waiting:", ready)

	a.Send(42)
	ready, _ = b.Poll(-1) // wait as long as it takes
	fmt.Println("message sent:", ready)
	var n int
	b.Recv(&n)

	a.Close()
	ready, _ = b.Poll(0)
	fmt.Println("peer closed:", ready) // Recv would return io.EOF at once
	// Output:
	// nothing sent: false
	// after waiting: false
	// message sent: true
	// peer closed: true
}

func ExampleConn_SetMaxMessageSize() {
	a, b, err := pipe.Duplex()
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()

	a.SetMaxMessageSize(16)
	err = a.SendBytes(make([]byte, 17))
	fmt.Println(errors.Is(err, conn.ErrMessageTooLarge))
	// Output: true
}

// A parent shares one end with a child; the child calls conn.Inherit with
// the same name. (Not run: it needs a child program.)
func ExampleConn_Share() {
	parent, child, err := pipe.Duplex()
	if err != nil {
		panic(err)
	}
	defer parent.Close()

	cmd := exec.Command("./worker") // a Go program that calls conn.Inherit("jobs")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := child.Share(cmd, "jobs"); err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	child.Close() // the child has its own copy; ours would hide its death

	parent.Send("work")
	var result string
	if err := parent.Recv(&result); errors.Is(err, io.EOF) {
		fmt.Println("the worker exited without answering")
	}
	cmd.Wait()
}

// The child side of ExampleConn_Share. (Not run: it needs a parent.)
func ExampleInherit() {
	c, err := conn.Inherit("jobs")
	if err != nil {
		// For example: mproc: no inherited object with that name "jobs"
		// (inherited: results, logs)
		panic(err)
	}
	var job string
	for c.Recv(&job) == nil {
		c.Send("done: " + job)
	}
}

func ExampleAppendHeader() {
	fmt.Printf("% x\n", conn.AppendHeader(nil, 5))
	fmt.Printf("% x\n", conn.AppendHeader(nil, 1<<31)) // over 0x7fffffff: -1, then 8 bytes
	// Output:
	// 00 00 00 05
	// ff ff ff ff 00 00 00 00 80 00 00 00
}

func ExampleReadFrame() {
	stream := append(conn.AppendHeader(nil, 5), "hello"...)
	stream = append(stream, 0, 0, 0, 9, 'c', 'u', 't') // a frame cut short
	r := bytes.NewReader(stream)
	for {
		p, err := conn.ReadFrame(r, 0, nil)
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("%q\n", p)
	}
	// Output:
	// "hello"
	// unexpected EOF
}
