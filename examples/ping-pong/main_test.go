package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestProgram builds the example and runs it as a user would.
func TestProgram(t *testing.T) {
	out := runProgram(t, "-n", "2000")
	assert.Regexp(t, `^parent \d+: started child \d+ running pong, sharing one end of a pipe.Duplex as "ball"\n`+
		`first answer after \S+, the child's start included\n`+
		`2000 round trips in \S+, every answer was the number sent plus one\n`+
		`round trip: min \S+  p50 \S+  p99 \S+  max \S+\n`+
		`closed our end: the child saw EOF, returned, and exited cleanly\n$`, out)
	assert.NotRegexp(t, regexp.MustCompile(`min 0s|p50 0s`), out, "round trips take some time")
}

// runProgram builds the example (with -race when the test has it) and runs
// it in a process group of its own, killed after a minute. It fails t if the
// example fails or leaves a process of that group running, and returns its
// standard output.
func runProgram(t *testing.T, args ...string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err, "the go command (go test puts it on PATH)")
	bin := filepath.Join(t.TempDir(), "example")
	build := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				build = append(build, "-race")
			}
		}
	}
	out, err := exec.Command(goCmd, append(build, ".")...).CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // a leftover child holding stdout must not hang the test
	cmd.Stderr = os.Stderr
	out, err = cmd.Output()
	// The example's children are in its process group: whatever happened,
	// none of them may outlive the test.
	pgid := cmd.Process.Pid
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	require.NoError(t, err, "the example exits cleanly within a minute; its output:\n%s", out)

	// Once the example has returned, its children must be gone too.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the example left processes of its group %d running", pgid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH), "no process left in the example's group")
	return string(out)
}
