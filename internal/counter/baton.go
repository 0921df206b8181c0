package counter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

var aLongTimeAgo = time.Unix(1, 0)

// take takes the baton and returns the record; the caller must give it back
// with put. It returns ctx.Err() or ErrClosed without taking it.
func (c *Counter) take(ctx context.Context) (record, error) {
	if err := ctx.Err(); err != nil {
		return record{}, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return record{}, ctx.Err()
	case <-c.closing:
		return record{}, ErrClosed
	}
	rec, err := c.read(ctx)
	if err != nil {
		<-c.sem
		return record{}, err
	}
	return rec, nil
}

// tryTake takes the baton if no goroutine or process holds it; ok is false
// when one does. It never waits.
func (c *Counter) tryTake() (rec record, ok bool, err error) {
	select {
	case c.sem <- struct{}{}:
	default:
		return record{}, false, nil
	}
	select {
	case <-c.closing:
		<-c.sem
		return record{}, false, ErrClosed
	default:
	}
	var b [recordLen]byte
	n, rerr := unix.Read(c.brFD, b[:])
	switch {
	case rerr == unix.EAGAIN || rerr == unix.EINTR:
		<-c.sem
		return record{}, false, nil
	case rerr != nil:
		<-c.sem
		return record{}, false, fmt.Errorf("counter: take the baton: %w", os.NewSyscallError("read", rerr))
	}
	rec, err = decode(b[:n])
	if err != nil {
		<-c.sem
		return record{}, false, err
	}
	return rec, true, nil
}

// read reads the record, waiting until ctx ends or Close. The caller holds
// sem, so it is the only reader of this process and owns the read deadline.
func (c *Counter) read(ctx context.Context) (record, error) {
	select {
	case <-c.closing:
		return record{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return record{}, err
	}
	var b [recordLen]byte
	// Usually the baton is free: try once without the poller. The
	// descriptor stays open while we hold sem (Close takes sem first).
	n, err := unix.Read(c.brFD, b[:])
	if err == nil {
		return decode(b[:n])
	}
	if err != unix.EAGAIN && err != unix.EINTR {
		return record{}, fmt.Errorf("take the baton: %w", os.NewSyscallError("read", err))
	}
	var stop func() bool
	var fired chan struct{}
	if ctx.Done() != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			c.br.SetReadDeadline(aLongTimeAgo)
			close(fired)
		})
	}
	n, err = c.br.Read(b[:])
	if stop != nil && !stop() {
		<-fired
		// Clearing a deadline that Close set as well is harmless: whoever
		// takes sem next sees closing before reading.
		c.br.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
			select {
			case <-c.closing:
				return record{}, ErrClosed
			default:
			}
			if ctx.Err() != nil {
				return record{}, ctx.Err()
			}
		}
		return record{}, fmt.Errorf("take the baton: %w", err)
	}
	return decode(b[:n])
}

// put gives the baton back with rec.
func (c *Counter) put(rec record) error {
	var b [recordLen]byte
	rec.encode(&b)
	// The pipe is empty while we hold the baton, so this write neither
	// blocks nor splits.
	var err error
	for {
		if _, err = unix.Write(c.bwFD, b[:]); err != unix.EINTR {
			break
		}
	}
	<-c.sem
	if err != nil {
		return fmt.Errorf("give back the baton (the count is lost): %w", os.NewSyscallError("write", err))
	}
	return nil
}
