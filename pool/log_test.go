package pool_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pool"
)

func init() {
	// Runs a pool with no Logger whose worker retires after each input:
	// MPROC_DEBUG alone decides whether its records are printed.
	testproc.Register("debug-pool", func() {
		ctx := context.Background()
		p, err := pool.New(ctx, square, pool.Config{Workers: 1, MaxTasksPerChild: 1, ChunkSize: 1})
		testproc.Check(err, "New")
		_, err = p.Map(ctx, []int{1, 2})
		testproc.Check(err, "Map")
		p.Terminate()
	})
}

// complain writes a line to the worker's stderr.
var complain = pool.Register("complain", func(ctx context.Context, x int) (int, error) {
	_, err := fmt.Fprintf(os.Stderr, "complaint %d from %d\n", x, os.Getpid())
	return x, err
})

func TestLogWorkerLostAndRetry(t *testing.T) {
	testproc.CheckFDs(t)
	log, rec := testproc.NewLogRecorder()
	p := newPool(t, crash, pool.Config{Workers: 2, ChunkSize: 5, Logger: log})
	dir := t.TempDir()
	var in []crashJob
	for i := range 40 {
		in = append(in, crashJob{Index: i, Die: 17, How: "kill", Dir: dir})
	}
	_, err := p.Map(context.Background(), in)
	require.NoError(t, err)

	started := map[int64]bool{}
	for _, r := range rec.Records("process: child started") {
		assert.Equal(t, "mproc.pool.worker", r.Attrs["name"])
		assert.Contains(t, r.Attrs["shares"], "mproc_pool")
		started[r.Attrs["pid"].(int64)] = true
	}
	assert.Len(t, started, 3, "two workers, and the one that replaced the killed one")

	replaced := rec.Records("pool: worker replaced")
	require.Len(t, replaced, 1)
	assert.Equal(t, "it died running a chunk", replaced[0].Attrs["reason"])
	assert.True(t, started[replaced[0].Attrs["pid"].(int64)], "the pid of a worker the pool started")
	assert.ErrorContains(t, replaced[0].Attrs["err"].(error), "signal: killed")

	retried := rec.Records("pool: chunk retried")
	require.Len(t, retried, 1)
	assert.Equal(t, map[string]any{"first": int64(15), "last": int64(19), "try": int64(2), "max_tries": int64(pool.DefaultMaxTries)}, retried[0].Attrs)

	exited := rec.Records("process: child exited")
	require.NotEmpty(t, exited)
	assert.Equal(t, "signal: killed", exited[0].Attrs["status"], "the killed worker is the only one that exited")
}

func TestLogMaxTasksPerChild(t *testing.T) {
	testproc.CheckFDs(t)
	log, rec := testproc.NewLogRecorder()
	p := newPool(t, pid, pool.Config{Workers: 1, ChunkSize: 2, MaxTasksPerChild: 2, Logger: log})
	_, err := p.Map(context.Background(), []job{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 3}})
	require.NoError(t, err)
	// The second worker retires after its results came back, so after Map
	// may have returned: wait for its record.
	require.Eventually(t, func() bool { return len(rec.Records("pool: worker replaced")) >= 2 },
		30*time.Second, time.Millisecond, "two workers retired after two inputs each")
	replaced := rec.Records("pool: worker replaced")
	require.Len(t, replaced, 2, "two workers retired after two inputs each")
	for _, r := range replaced {
		assert.Equal(t, "it ran MaxTasksPerChild inputs", r.Attrs["reason"])
		assert.Equal(t, int64(2), r.Attrs["tasks"])
	}
}

// With LogStderr, the workers' stderr lines go to the logger, with the
// worker's pid.
func TestLogStderr(t *testing.T) {
	testproc.CheckFDs(t)
	log, rec := testproc.NewLogRecorder()
	ex, err := pool.NewExecutor(context.Background(), pool.Config{Workers: 1, Logger: log, LogStderr: true})
	require.NoError(t, err)
	out, err := pool.Bind(ex, complain).Map(context.Background(), []int{1, 2})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, out)
	ex.Terminate() // the worker is reaped: its stderr is read to the end
	var lines []string
	for _, r := range rec.Records("process: child stderr") {
		pid := r.Attrs["pid"].(int64)
		assert.Equal(t, "mproc.pool.worker", r.Attrs["name"])
		lines = append(lines, r.Attrs["line"].(string))
		assert.Contains(t, r.Attrs["line"], fmt.Sprintf("from %d", pid), "the line carries its worker's pid")
	}
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "complaint 1")
	assert.Contains(t, lines[1], "complaint 2")
	assert.Empty(t, children(t))
}

// MPROC_DEBUG=1 prints the pool's records without a Logger.
func TestLogDebugEnv(t *testing.T) {
	var stderr bytes.Buffer
	c := testproc.Command(t, "debug-pool")
	c.Env = append(c.Env, "MPROC_DEBUG=1")
	c.Stderr = &stderr
	require.NoError(t, c.Start())
	require.NoError(t, testproc.WaitTimeout(c, 60*time.Second), "stderr: %s", stderr.String())
	out := stderr.String()
	assert.Contains(t, out, `msg="process: child started" name=mproc.pool.worker`)
	assert.Contains(t, out, `msg="pool: worker replaced"`)
	assert.Contains(t, out, `reason="it ran MaxTasksPerChild inputs"`)
	assert.Contains(t, out, `msg="process: child exited" name=mproc.pool.worker`)
}
