package conn

import (
	"context"
	"errors"
	"sync"
)

// Wait waits until at least one of conns is ready and returns every one
// that is: a message is waiting, or the peer has closed, or the Conn is
// closed or broken, so that its Recv returns without blocking (what Poll
// reports). It is Python's multiprocessing.connection.wait. The ready
// Conns come in the order given. When ctx ends first, Wait returns nil and
// ctx.Err(); with no conns it waits for ctx. A write-only Conn (the write
// end of a Simplex pipe) is ErrWriteOnly.
//
// Wait is safe for use by several goroutines. While it waits on a Conn it
// holds the Conn's receive side as Poll does: a Recv on it from another
// goroutine waits until Wait returns.
func Wait(ctx context.Context, conns ...*Conn) ([]*Conn, error) {
	for {
		ready, err := readyNow(conns)
		if err != nil || len(ready) > 0 {
			return ready, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(conns) == 0 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		waitAny(ctx, conns)
	}
}

// readyNow returns the conns whose Recv would not block.
func readyNow(conns []*Conn) ([]*Conn, error) {
	var ready []*Conn
	for _, c := range conns {
		ok, err := c.Poll(0)
		if errors.Is(err, ErrWriteOnly) {
			return nil, err
		}
		if ok || err != nil {
			ready = append(ready, c)
		}
	}
	return ready, nil
}

// waitAny returns when one of conns may have become ready, or ctx ended.
// Each Conn waits in the runtime's poller in a goroutine of its own; the
// first to wake ends the others' waits, and waitAny returns once all have
// returned.
func waitAny(ctx context.Context, conns []*Conn) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel() // ready, broken, or the wait is over anyway
			c.PollContext(wctx)
		}()
	}
	wg.Wait()
}
