package conn_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/queue"
)

// A server and a client authenticated by Python's authkey handshake, here
// in one process; a Python client connects to the same Listener with
// multiprocessing.connection.Client(path, authkey=key).
func ExampleListen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "server.sock")
	key := []byte("secret shared by server and clients")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l, err := conn.Listen("unix", path, conn.WithAuthKey(key))
	if err != nil {
		panic(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			return // conn.ErrClosed after l.Close
		}
		defer c.Close()
		var n int
		for c.Recv(&n) == nil {
			c.Send(n * n)
		}
	}()

	c, err := conn.Dial(ctx, "unix", path, conn.WithAuthKey(key))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var sq int
	c.Send(12)
	c.Recv(&sq)
	fmt.Println(sq)

	_, err = conn.Dial(ctx, "unix", path, conn.WithAuthKey([]byte("guess")))
	fmt.Println(err)
	// Output:
	// 144
	// conn: authentication failed: the other side rejected our digest (is the authkey the same?)
}

// Wait returns the Conns that have a message, of any number given, as
// Python's multiprocessing.connection.wait does.
func ExampleWait() {
	var mine, theirs [3]*conn.Conn
	for i := range mine {
		mine[i], theirs[i], _ = pipe.Duplex()
		defer mine[i].Close()
		defer theirs[i].Close()
	}
	theirs[2].Send("from 2")
	theirs[0].Send("from 0")

	ready, err := conn.Wait(context.Background(), mine[:]...)
	if err != nil {
		panic(err)
	}
	for _, c := range ready {
		var s string
		c.Recv(&s)
		fmt.Println(s)
	}
	// Output:
	// from 0
	// from 2
}

// SendShare hands a queue to the process at the other end of a unix
// socket Conn, which may have been running for hours; RecvShare and the
// queue's own Inherit give it a working queue. Here both ends are in one
// process, to show the calls.
func ExampleConn_SendShare() {
	ctx := context.Background()
	parent, worker, _ := pipe.Duplex()
	defer parent.Close()
	defer worker.Close()

	// The parent: a queue made now, sent under a name.
	q, _ := queue.New[string](0)
	defer q.Close()
	if err := parent.SendShare(ctx, q, "jobs"); err != nil {
		panic(err)
	}
	q.Put(ctx, "first job")

	// The worker: receive the name, inherit the queue by it.
	name, err := worker.RecvShare(ctx)
	if err != nil {
		panic(err)
	}
	jobs, err := queue.Inherit[string](name)
	if err != nil {
		panic(err)
	}
	defer jobs.Close()
	job, _ := jobs.Get(ctx)
	fmt.Println(name, job)
	// Output: jobs first job
}
