package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

var counterLine = regexp.MustCompile(`(?m)^counter = (\d+) \(200 expected\)$`)

func counter(t *testing.T, out string) int {
	t.Helper()
	m := counterLine.FindStringSubmatch(out)
	require.NotNil(t, m, "the program prints the counter:\n%s", out)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// With the lock, no update is lost, run after run.
func TestWithLock(t *testing.T) {
	bin := build(t)
	for range 3 {
		out := run(t, bin)
		assert.Equal(t, 200, counter(t, out), "every update counted:\n%s", out)
		assert.Contains(t, out, "no update lost")
	}
}

// Without the lock, updates are lost. This is certain enough to assert:
// the workers leave the starting gate together and each holds a read
// value for a millisecond before writing it back plus one, so 10 workers
// doing 20 updates each overlap constantly (runs print 20 to 50, never
// near 200); a count of 200 would need every update to miss every other
// worker's window.
func TestWithoutLock(t *testing.T) {
	out := run(t, build(t), "-nolock")
	n := counter(t, out)
	assert.Less(t, n, 200, "updates lost without the lock:\n%s", out)
	assert.Positive(t, n)
	assert.Regexp(t, `(?m)^\d+ updates lost: `, out)
}

// build compiles the example (with -race when the test runs with it).
func build(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err, "the go command (go test puts it on PATH)")
	bin := filepath.Join(t.TempDir(), "shared-counter")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	out, err := exec.Command(goCmd, append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// run runs the example in a process group of its own, which is killed at
// the end: no worker outlives the test.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	require.NoError(t, err, "the example exits cleanly within a minute; its output:\n%s", out)
	return string(out)
}
