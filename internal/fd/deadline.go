package fd

import (
	"context"
	"sync"
	"time"
)

// aLongTimeAgo is a deadline already past: setting it makes a call blocked
// in the runtime poller return os.ErrDeadlineExceeded at once.
var aLongTimeAgo = time.Unix(1, 0)

// WatchDeadline turns the end of ctx into an expired deadline: when ctx
// ends, it calls set with a time in the past (set is typically an
// *os.File's SetReadDeadline or SetWriteDeadline), which wakes a call
// blocked in the poller. The returned stop disarms the watch, clears the
// deadline if it had been set, and reports whether ctx ended meanwhile; call
// it exactly once, after the blocking call. With a ctx that can never end,
// it costs nothing.
func WatchDeadline(ctx context.Context, set func(time.Time) error) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	var mu sync.Mutex
	fired, done := false, false
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			fired = true
			set(aLongTimeAgo)
		}
	})
	return func() bool {
		stopAfter()
		mu.Lock()
		defer mu.Unlock()
		done = true
		if fired {
			set(time.Time{})
		}
		return fired
	}
}
