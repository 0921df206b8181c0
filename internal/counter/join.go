package counter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// testHookRegistered runs after each registration of a Join (tests only).
var testHookRegistered = func() {}

// Join waits until the count is zero, or has been zero at some moment since
// Join was called, and returns nil. On ctx's end it returns ctx.Err(); on
// Close, ErrClosed.
func (c *Counter) Join(ctx context.Context) error {
	rec, err := c.take(ctx)
	if err != nil {
		return err
	}
	if err := c.put(rec); err != nil || rec.count == 0 {
		return err
	}

	// Watch the wake pipe before registering, so that no signal written
	// after the registration can be missed.
	w, err := c.watch()
	if err != nil {
		return err
	}
	defer w.stop()
	registered := false
	var gen uint32
	for {
		rec, err := c.take(ctx)
		if err != nil {
			return err
		}
		if rec.count == 0 || registered && rec.gen != gen {
			return c.put(rec)
		}
		if !registered {
			registered, gen = true, rec.gen
		}
		rec.flags |= flagWaiting
		if err := c.put(rec); err != nil {
			return err
		}
		testHookRegistered()
		select {
		case <-w.edge:
			// The wake pipe got a byte: check the generation.
		case <-w.done:
			select {
			case <-c.closing:
				return ErrClosed
			default:
			}
			return fmt.Errorf("wait on the wake pipe: %w", w.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-c.closing:
			return ErrClosed
		}
	}
}

// signal wakes every Join registered since the last zero; the caller holds
// the baton with rec, whose count has just reached zero.
func (c *Counter) signal(rec *record) error {
	rec.gen++
	if rec.flags&flagWaiting == 0 {
		return nil
	}
	// Empty the pipe first, so that the byte written below makes it go from
	// empty to readable: every watcher's poller sees that edge.
	if rec.flags&flagWakeFull != 0 {
		var b [8]byte
		if err := rawIO(c.wr, func(fd int) error { _, err := unix.Read(fd, b[:]); return err }); err != nil && !errors.Is(err, syscall.EAGAIN) {
			return fmt.Errorf("empty the wake pipe: %w", err)
		}
		rec.flags &^= flagWakeFull
	}
	if err := rawIO(c.ww, func(fd int) error { _, err := unix.Write(fd, []byte{1}); return err }); err != nil {
		return fmt.Errorf("signal the wake pipe: %w", err)
	}
	rec.flags = rec.flags&^flagWaiting | flagWakeFull
	return nil
}

// rawIO runs one nonblocking syscall on f's descriptor.
func rawIO(f *os.File, op func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if opErr = op(int(fd)); opErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return opErr
}

// watcher reports each new readable edge of the wake pipe, seen through its
// own duplicate of the read end (one poller registration per Join, so that
// several Joins of one process do not queue on one file's read lock).
type watcher struct {
	f    *os.File
	edge chan struct{} // one pending edge at most
	done chan struct{} // closed when the goroutine has ended, err set
	err  error
}

// watch starts watching and returns once the poller is armed.
func (c *Counter) watch() (*watcher, error) {
	f, err := fd.Dup(c.wr, "mproc:counter:wake-watch")
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &watcher{f: f, edge: make(chan struct{}, 1), done: make(chan struct{})}
	armed := make(chan struct{})
	go func() {
		defer close(w.done)
		first := true
		// RawConn.Read arms the poller, then calls the function; every
		// later call follows an event. The function never reads: the byte
		// is for every waiter.
		w.err = rc.Read(func(uintptr) bool {
			if first {
				first = false
				close(armed)
				return false
			}
			select {
			case w.edge <- struct{}{}:
			default:
			}
			return false
		})
	}()
	select {
	case <-armed:
		return w, nil
	case <-w.done:
		f.Close()
		return nil, fmt.Errorf("watch the wake pipe: %w", w.err)
	}
}

// stop ends the goroutine and closes the duplicate.
func (w *watcher) stop() {
	w.f.SetReadDeadline(aLongTimeAgo)
	<-w.done
	w.f.Close()
}
