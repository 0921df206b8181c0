package pool_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pool"
	"github.com/mproc-go/mproc/process"
	"github.com/mproc-go/mproc/queue"
)

// Set by withOut in a worker.
var outQueue *queue.Queue[string]

var (
	// withOut inherits the queue "out" of Config.Shares.
	withOut = pool.RegisterInit("with-out", func(ctx context.Context) error {
		q, err := queue.Inherit[string]("out")
		outQueue = q
		return err
	})
	// putMany puts n items of 1 KiB on "out", far more than its socket
	// holds: most wait in the worker's put buffer when the task returns.
	putMany = pool.Register("put-many", func(ctx context.Context, n int) (int, error) {
		pad := strings.Repeat("x", 1024)
		for i := range n {
			if err := outQueue.Put(ctx, fmt.Sprintf("%d %d %s", os.Getpid(), i, pad)); err != nil {
				return i, err
			}
		}
		return n, nil
	})
)

const flushItems = 4000

// flushPool runs putMany once in a pool of one worker sharing a fresh
// queue, and returns both; the test drains the queue.
func flushPool(t *testing.T, cfg pool.Config) (*pool.Pool[int, int], *queue.Queue[string]) {
	t.Helper()
	q, err := queue.New[string](0)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	cfg.Workers, cfg.Init, cfg.Shares = 1, withOut, map[string]process.Sharer{"out": q}
	p := newPool(t, putMany, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := p.Map(ctx, []int{flushItems})
	require.NoError(t, err)
	require.Equal(t, []int{flushItems}, out)
	return p, q
}

// drain gets what arrives on q until n items or a pause of quiet, and
// returns how many distinct items came.
func drain(t *testing.T, q *queue.Queue[string], n int, quiet time.Duration) int {
	t.Helper()
	seen := make(map[string]bool)
	for len(seen) < n {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		v, err := q.Get(ctx)
		cancel()
		if err != nil {
			break
		}
		id, _, _ := strings.Cut(v[strings.IndexByte(v, ' ')+1:], " ")
		assert.False(t, seen[id], "item %s twice", id)
		seen[id] = true
	}
	return len(seen)
}

// A worker that leaves (the pool closed, the worker retired after
// MaxTasksPerChild, the pool terminated) while its put buffer still holds
// most of its items is not stopped after Grace: its flush runs to its
// end, however long the consumer takes, and every item arrives.
func TestExitFlushCompletes(t *testing.T) {
	testproc.CheckFDs(t)
	const grace = 100 * time.Millisecond
	for _, mode := range []string{"close", "retire", "terminate"} {
		t.Run(mode, func(t *testing.T) {
			cfg := pool.Config{Grace: grace, FlushTimeout: time.Minute}
			if mode == "retire" {
				cfg.MaxTasksPerChild = 1
			}
			p, q := flushPool(t, cfg)
			left := time.Now()
			joined := make(chan error, 1)
			go func() {
				if mode == "terminate" {
					p.Terminate()
				} else {
					p.Close()
				}
				joined <- p.Join(context.Background())
			}()
			// The bound under test is time itself: the consumer starts
			// only well after the worker would have been killed had it
			// been stopped at Grace (plus the parent's margin).
			time.Sleep(time.Until(left.Add(grace + 3*time.Second)))
			assert.Equal(t, flushItems, drain(t, q, flushItems, 30*time.Second), "every item the worker put arrived")
			select {
			case err := <-joined:
				assert.NoError(t, err, "Join: every flush completed")
			case <-time.After(30 * time.Second):
				t.Fatal("Join did not return after the queue was drained")
			}
		})
	}
}

// A flush that cannot complete (nobody reads the queue, FlushTimeout
// short) is not a silent loss: Join says so.
func TestExitFlushFails(t *testing.T) {
	testproc.CheckFDs(t)
	p, q := flushPool(t, pool.Config{Grace: 100 * time.Millisecond, FlushTimeout: 300 * time.Millisecond})
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.Join(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, pool.ErrFlush)
	assert.Contains(t, err.Error(), "1 worker(s) did not complete their flush at exit")
	assert.Equal(t, err, p.Join(ctx), "Join says it again")
	// The worker is gone: what it sent is in the socket already.
	assert.Less(t, drain(t, q, flushItems, time.Second), flushItems, "items were indeed lost")
}
