package joinable

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mproc-go/mproc/internal/counter"
)

const (
	// flushDelay is how long a TaskDone may wait in this process before
	// it reaches the shared count, and so how late Join may return.
	flushDelay = time.Millisecond
	// flushAt is the tally that is flushed at once.
	flushAt = 1024
	// flushGap is the least time between two flushes of the flusher, so
	// that a consumer that waits in Get after every item does not take the
	// count's baton once per item, away from the producers.
	flushGap = 100 * time.Microsecond
)

// tally batches this process's TaskDones for items it got itself, so that
// TaskDone costs no syscall: see internal/mq/FORMAT.md, "Joinable queues". The shared count
// still holds those items; a flush takes the tally off it.
type tally struct {
	gotten atomic.Int64 // items got here and not yet marked done here
	done   atomic.Int64 // TaskDones not yet taken off the shared count

	// flushing serializes flushes, so that the checked path of TaskDone
	// sees every earlier TaskDone of this process in the shared count. A
	// channel rather than a mutex, to wait for it with a ctx.
	flushing chan struct{}

	arm   chan struct{} // done left zero: flush within flushDelay
	kick  chan struct{} // flush now
	quit  chan struct{} // ends the flusher
	ended chan struct{} // closed by the flusher when it returns
	once  sync.Once

	mu  sync.Mutex
	err error // TaskDones that a flush found nothing left for
}

func (t *tally) init() {
	t.flushing = make(chan struct{}, 1)
	t.arm = make(chan struct{}, 1)
	t.kick = make(chan struct{}, 1)
	t.quit = make(chan struct{})
	t.ended = make(chan struct{})
}

// notify never blocks: one pending signal is enough.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// doneLocal marks done one item this process got, if it has one pending,
// and reports whether it did.
func (t *tally) doneLocal() bool {
	for {
		g := t.gotten.Load()
		if g <= 0 {
			return false
		}
		if t.gotten.CompareAndSwap(g, g-1) {
			break
		}
	}
	switch n := t.done.Add(1); {
	case n == 1:
		notify(t.arm)
	case n >= flushAt:
		notify(t.kick)
	}
	return true
}

// kickNow asks for a flush at once: this process is about to wait in Get.
func (t *tally) kickNow() {
	if t.done.Load() > 0 {
		notify(t.kick)
	}
}

// flusher flushes the tally when kicked, or flushDelay after it leaves
// zero, at most once per flushGap, until stop. ctx bounds each flush.
func (t *tally) flusher(ctx context.Context, c *counter.Counter) {
	defer close(t.ended)
	timer := time.NewTimer(flushDelay)
	timer.Stop()
	var last time.Time
	for {
		select {
		case <-t.quit:
			return
		case <-t.kick:
		case <-t.arm:
			timer.Reset(flushDelay)
			select {
			case <-timer.C:
			case <-t.kick:
				timer.Stop()
			case <-t.quit:
				timer.Stop()
				return
			}
		}
		if wait := time.Until(last.Add(flushGap)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-t.quit:
				timer.Stop()
				return
			}
		}
		// An error leaves the tally for the next flush (Close's at the
		// latest); a refusal is kept for Join and Close.
		t.flushTally(ctx, c)
		last = time.Now()
	}
}

// stop ends the flusher and waits for it.
func (t *tally) stop() {
	t.once.Do(func() { close(t.quit) })
	<-t.ended
}

// flushTally takes this process's tally off the shared count.
func (t *tally) flushTally(ctx context.Context, c *counter.Counter) error {
	select {
	case t.flushing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.flushing }()
	n := t.done.Swap(0)
	if n == 0 {
		return nil
	}
	took, err := c.DoneUpTo(ctx, n)
	if took == 0 && err != nil {
		// The count is unchanged: keep the tally for a later flush.
		if t.done.Add(n) == n {
			notify(t.arm)
		}
		return err
	}
	if took < n {
		// Another process's extra TaskDone took tasks this process had
		// got: the count is at zero and these TaskDones found nothing.
		t.mu.Lock()
		t.err = fmt.Errorf("%w: %d TaskDone calls of this process found no unfinished task when they reached the shared count", ErrTooManyTaskDone, n-took)
		t.mu.Unlock()
	}
	return err
}

// takeErr returns and forgets the refusal a flush met, if any.
func (t *tally) takeErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.err
	t.err = nil
	return err
}

// untilClosed is a context.Context that ends (context.Canceled) when done
// is closed: the ctx of a call that has none of its own, bounded by the
// queue's Close. It is a value made per call, so that no context lives in
// a struct, and converting it to a Context does not allocate.
type untilClosed <-chan struct{}

func (c untilClosed) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c untilClosed) Done() <-chan struct{}       { return c }
func (c untilClosed) Value(any) any               { return nil }
func (c untilClosed) Err() error {
	select {
	case <-c:
		return context.Canceled
	default:
		return nil
	}
}
