// Command ping-pong bats a message back and forth between two processes
// over a pipe.Duplex and prints how long the round trips took.
//
//	go run ./examples/ping-pong            # 10000 round trips
//	go run ./examples/ping-pong -n 100000
//
// The parent makes a Duplex (a socketpair: each end can send and receive),
// starts a child running pong with one end shared under the name "ball",
// and keeps the other end. It sends a number, the child sends it back plus
// one, and the parent times each round trip. Closing its end is how the
// parent says "game over": the child's Recv returns io.EOF and it returns.
//
// In Python this is:
//
//	a, b = multiprocessing.Pipe()
//	p = multiprocessing.Process(target=pong, args=(b,)); p.start(); b.close()
//	for i in range(n): a.send(i); a.recv()
//	a.close(); p.join()
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
	"github.com/mproc-go/mproc/process"
)

// Both the parent and the child are this program, so the child's function
// is registered in init, where both sides see it.
func init() {
	process.Register("pong", pong)
}

func main() {
	// In the child, Main runs pong and exits; in the parent it returns at
	// once. It comes first, before flags and anything else that
	// only the parent should do.
	process.Main()
	n := flag.Int("n", 10000, "number of round trips")
	flag.Parse()
	if err := run(context.Background(), *n); err != nil {
		fmt.Fprintln(os.Stderr, "ping-pong:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int) error {
	if n < 1 {
		return errors.New("-n must be at least 1")
	}
	ping, ball, err := pipe.Duplex()
	if err != nil {
		return err
	}
	defer ping.Close()

	cmd := process.Command("pong")
	if err := cmd.Share(ball, "ball"); err != nil {
		return err
	}
	if err := cmd.Start(ctx); err != nil {
		return err
	}
	// The child has its own copy of its end now. Close ours: while we hold
	// it, we would never see EOF if the child died.
	ball.Close()
	fmt.Printf("parent %d: started child %d running pong, sharing one end of a pipe.Duplex as %q\n",
		os.Getpid(), cmd.Pid(), "ball")

	// The first serve is not timed with the others: its answer waits for
	// the child to start.
	first, err := hit(ping, 0)
	if err != nil {
		return fmt.Errorf("%w (child: %v)", err, cmd.Wait())
	}
	fmt.Printf("first answer after %v, the child's start included\n", round(first))

	rtts := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		if rtts[i], err = hit(ping, i+1); err != nil {
			return fmt.Errorf("%w (child: %v)", err, cmd.Wait())
		}
	}
	total := time.Since(start)

	// Game over: the child sees EOF on its end and returns nil, which is
	// what Wait reports.
	ping.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("child: %w", err)
	}

	slices.Sort(rtts)
	fmt.Printf("%d round trips in %v, every answer was the number sent plus one\n", n, total.Round(time.Millisecond))
	fmt.Printf("round trip: min %v  p50 %v  p99 %v  max %v\n",
		round(rtts[0]), round(percentile(rtts, 50)), round(percentile(rtts, 99)), round(rtts[n-1]))
	fmt.Println("closed our end: the child saw EOF, returned, and exited cleanly")
	return nil
}

// hit sends i, waits for the answer, checks it and returns the round trip
// time.
func hit(ping *conn.Conn, i int) (time.Duration, error) {
	t0 := time.Now()
	if err := ping.Send(i); err != nil {
		return 0, fmt.Errorf("send %d: %w", i, err)
	}
	var got int
	if err := ping.Recv(&got); err != nil {
		return 0, fmt.Errorf("receive the answer to %d: %w", i, err)
	}
	rtt := time.Since(t0)
	if got != i+1 {
		return 0, fmt.Errorf("sent %d, got %d back instead of %d", i, got, i+1)
	}
	return rtt, nil
}

// round keeps a duration readable: 12.5µs, not 12.529µs.
func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

// percentile returns the p-th percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)]
}

// pong runs in the child: it answers every number with the next one until
// the parent closes its end.
func pong(ctx context.Context) error {
	ball, err := conn.Inherit("ball")
	if err != nil {
		return err
	}
	defer ball.Close()
	for {
		var i int
		err := ball.RecvContext(ctx, &i)
		if errors.Is(err, io.EOF) {
			return nil // the parent closed its end: game over
		}
		if err != nil {
			return err
		}
		if err := ball.Send(i + 1); err != nil {
			return err
		}
	}
}
