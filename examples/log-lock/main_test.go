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

var summary = regexp.MustCompile(`(?m)^read back (\d+) lines: (\d+) whole, (\d+) torn$`)

func counts(t *testing.T, out string) (total, whole, torn int) {
	t.Helper()
	m := summary.FindStringSubmatch(out)
	require.NotNil(t, m, "the program prints a summary:\n%s", out)
	total, _ = strconv.Atoi(m[1])
	whole, _ = strconv.Atoi(m[2])
	torn, _ = strconv.Atoi(m[3])
	return total, whole, torn
}

// With the lock, every line is whole and in order (the program checks the
// order itself and fails otherwise).
func TestWithLock(t *testing.T) {
	out := run(t, build(t))
	total, whole, torn := counts(t, out)
	assert.Equal(t, 200, total, "8 workers x 25 lines:\n%s", out)
	assert.Equal(t, 200, whole)
	assert.Zero(t, torn, "no torn line under the lock:\n%s", out)
	assert.Contains(t, out, "every line whole")
}

// Without the lock, lines tear. Certain enough to assert: 8 workers leave
// the starting gate together and each line takes 10 writes with pauses
// between them, so the workers' writes interleave all the time (runs show
// nearly every line torn).
func TestWithoutLock(t *testing.T) {
	out := run(t, build(t), "-nolock")
	total, _, torn := counts(t, out)
	assert.Positive(t, torn, "torn lines without the lock:\n%s", out)
	assert.Positive(t, total)
	assert.Regexp(t, `(?m)^torn line \d+: "`, out, "shows a torn line")
}

// build compiles the example (with -race when the test runs with it).
func build(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err, "the go command (go test puts it on PATH)")
	bin := filepath.Join(t.TempDir(), "log-lock")
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
