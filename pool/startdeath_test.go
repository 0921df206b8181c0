package pool_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pool"
)

// dieUnlessFirst kills its worker in the initializer, except for the first
// worker to run it with the directory in POOL_TEST_LIVES (all of them when
// the variable is empty).
var dieUnlessFirst = pool.RegisterInit("die-unless-first", func(ctx context.Context) error {
	dir := os.Getenv("POOL_TEST_LIVES")
	if dir != "" && firstTime(dir) {
		return nil
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
})

// Workers that die while starting are lost workers, whether New or a
// replacement starts them.
func TestWorkerDiesStarting(t *testing.T) {
	testproc.CheckFDs(t)
	t.Run("New", func(t *testing.T) {
		t.Setenv("POOL_TEST_LIVES", "")
		p, err := pool.New(context.Background(), square, pool.Config{Workers: 2, Init: dieUnlessFirst})
		require.Error(t, err)
		assert.Nil(t, p)
		assert.ErrorIs(t, err, pool.ErrWorkerLost)
		assert.Contains(t, err.Error(), "a worker exited before it was ready")
		assert.Contains(t, err.Error(), "signal: killed")
		assert.Empty(t, children(t), "no worker left behind")
	})
	t.Run("replacement", func(t *testing.T) {
		t.Setenv("POOL_TEST_LIVES", t.TempDir())
		p := newPool(t, square, pool.Config{Workers: 1, Init: dieUnlessFirst, MaxTries: 2})
		// The first worker lives; kill it, and every one after it dies
		// in its initializer.
		pids := children(t)
		require.Len(t, pids, 1)
		require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := p.Apply(ctx, 3)
		require.Error(t, err)
		assert.ErrorIs(t, err, pool.ErrWorkerLost)
		var te *pool.TaskError
		require.ErrorAs(t, err, &te)
		assert.Contains(t, err.Error(), "a worker exited before it was ready")
	})
}
