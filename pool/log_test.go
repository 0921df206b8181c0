package pool_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pool"
)

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
	replaced := rec.Records("pool: worker replaced")
	require.Len(t, replaced, 2, "two workers retired after two inputs each")
	for _, r := range replaced {
		assert.Equal(t, "it ran MaxTasksPerChild inputs", r.Attrs["reason"])
		assert.Equal(t, int64(2), r.Attrs["tasks"])
	}
}
