package process

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/atexit"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

func init() {
	// Registers a flush that says it carries three items, then returns.
	Register("atexit-counted", func(ctx context.Context) error {
		atexit.RegisterCounted(func(ctx context.Context) error { return nil }, func() int { return 3 })
		return nil
	})
	// Writes three lines to stderr, the last one unfinished.
	Register("stderr-lines", func(ctx context.Context) error {
		_, err := os.Stderr.WriteString("first line\nsecond line\r\nno newline at the end")
		return err
	})
	// Runs the child "ok" with no Logger: MPROC_DEBUG alone decides.
	testproc.Register("run-ok", func() {
		testproc.Check(Command("ok").Run(context.Background()), "run ok")
	})
}

func TestLogStartExitFlush(t *testing.T) {
	testproc.CheckFDs(t)
	log, rec := testproc.NewLogRecorder()
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	cmd := Command("atexit-counted")
	cmd.Logger = log
	require.NoError(t, cmd.Share(theirs, "out"))
	before := time.Now()
	require.NoError(t, cmd.Start(context.Background()))
	reap(t, cmd)
	theirs.Close()
	require.NoError(t, waitFor(t, cmd, 10*time.Second))
	elapsed := time.Since(before)

	started := rec.Records("process: child started")
	require.Len(t, started, 1)
	assert.Equal(t, map[string]any{"name": "atexit-counted", "pid": int64(cmd.Pid()), "shares": []string{"out"}}, started[0].Attrs)

	flushed := rec.Records("process: child flushed its queues at exit")
	require.Len(t, flushed, 1, "the child's report carries its flush")
	assert.Equal(t, int64(3), flushed[0].Attrs["items"])
	assert.Equal(t, int64(1), flushed[0].Attrs["queues"])

	exited := rec.Records("process: child exited")
	require.Len(t, exited, 1)
	a := exited[0].Attrs
	assert.Equal(t, "atexit-counted", a["name"])
	assert.Equal(t, int64(cmd.Pid()), a["pid"])
	assert.Equal(t, "exit status 0", a["status"])
	d, _ := a["duration"].(time.Duration)
	assert.True(t, d > 0 && d <= elapsed, "duration %v within the %v the test measured", d, elapsed)
	assert.NotContains(t, a, "err")
	assert.Empty(t, rec.Records("process: grace period ended in SIGKILL"))
}

func TestLogGraceKill(t *testing.T) {
	testproc.CheckFDs(t)
	log, rec := testproc.NewLogRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mine, theirs, err := pipe.Duplex()
	require.NoError(t, err)
	defer mine.Close()
	cmd := Command("ignore-term")
	cmd.Grace = 100 * time.Millisecond
	cmd.Logger = log
	require.NoError(t, cmd.Share(theirs, "out"))
	require.NoError(t, cmd.Start(ctx))
	reap(t, cmd)
	theirs.Close()
	require.Equal(t, "ready", recvString(t, mine))
	// A child past its grace exits by itself; one that cannot (stopped
	// here) is killed.
	require.NoError(t, cmd.Signal(syscall.SIGSTOP))
	cancel()
	require.ErrorIs(t, waitFor(t, cmd, 10*time.Second), context.Canceled)

	killed := rec.Records("process: grace period ended in SIGKILL")
	require.Len(t, killed, 1)
	assert.Equal(t, map[string]any{"name": "ignore-term", "pid": int64(cmd.Pid()), "grace": 100 * time.Millisecond}, killed[0].Attrs)
	exited := rec.Records("process: child exited")
	require.Len(t, exited, 1)
	assert.Equal(t, "signal: killed", exited[0].Attrs["status"])
	assert.ErrorIs(t, exited[0].Attrs["err"].(error), context.Canceled)
}

// MPROC_DEBUG=1 turns the records on without a Logger; without it a Cmd
// is silent.
func TestLogDebugEnv(t *testing.T) {
	for _, on := range []bool{true, false} {
		var stderr bytes.Buffer
		c := testproc.Command(t, "run-ok")
		c.Env = append(c.Env, "MPROC_DEBUG=0")
		if on {
			c.Env = append(c.Env, "MPROC_DEBUG=1")
		}
		c.Stderr = &stderr
		require.NoError(t, c.Start())
		require.NoError(t, testproc.WaitTimeout(c, 20*time.Second), "stderr: %s", stderr.String())
		out := stderr.String()
		if !on {
			assert.NotContains(t, out, "process:", "silent without MPROC_DEBUG")
			continue
		}
		assert.Contains(t, out, `level=DEBUG msg="process: child started" name=ok pid=`)
		assert.Contains(t, out, `msg="process: child exited" name=ok`)
		assert.Contains(t, out, `status="exit status 0"`)
		assert.Equal(t, 2, strings.Count(out, "level=DEBUG"), "stderr: %s", out)
	}
}

// With LogStderr, the child's stderr lines go to the logger, with its name
// and pid.
func TestLogStderr(t *testing.T) {
	testproc.CheckFDs(t)
	log, rec := testproc.NewLogRecorder()
	cmd := Command("stderr-lines")
	cmd.Logger = log
	cmd.LogStderr = true
	require.NoError(t, cmd.Start(context.Background()))
	reap(t, cmd)
	require.NoError(t, waitFor(t, cmd, 10*time.Second))
	var lines []string
	for _, r := range rec.Records("process: child stderr") {
		assert.Equal(t, "stderr-lines", r.Attrs["name"])
		assert.Equal(t, int64(cmd.Pid()), r.Attrs["pid"])
		lines = append(lines, r.Attrs["line"].(string))
	}
	assert.Equal(t, []string{"first line", "second line", "no newline at the end"}, lines)
}
