package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

var resultLine = regexp.MustCompile(`(?m)^task +(\d+) = +(\d+)  from worker (\d)$`)

// TestProgram builds the example and runs it as a user would: a worker is
// killed while it holds a task, that task is done by another worker, and
// every task has exactly one result.
func TestProgram(t *testing.T) {
	out := runProgram(t, "-workers", "3", "-tasks", "12", "-kill-after", "4")
	require.True(t, strings.HasPrefix(out, "started 3 workers, each with its own task connection, all sharing one results queue\n"), "output:\n%s", out)

	kill := regexp.MustCompile(`(?m)^killing worker (\d) \(pid \d+\) while it holds task (\d+)$`).FindStringSubmatchIndex(out)
	require.NotNil(t, kill, "a worker is killed:\n%s", out)
	victim, task := out[kill[2]:kill[3]], out[kill[4]:kill[5]]
	after := out[kill[1]:]
	assert.Regexp(t, fmt.Sprintf(`(?m)^worker %s is gone: .*signal: killed$`, victim), after, "the parent notices the death")
	assert.Regexp(t, fmt.Sprintf(`(?m)^task +%s goes back to the pending tasks$`, task), after, "the dead worker's task is handed back")

	// Exactly one kept result per task, each right, the killed task's from
	// another worker.
	results := make(map[int]int)
	for _, m := range resultLine.FindAllStringSubmatch(out, -1) {
		id, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		assert.Equal(t, id*id, v, "task %d's result", id)
		results[id]++
		if m[1] == task {
			assert.NotEqual(t, victim, m[3], "task %s done by a living worker", task)
		}
	}
	for id := range 12 {
		assert.Equal(t, 1, results[id], "task %d has one result line", id)
	}
	assert.Len(t, results, 12)
	assert.Equal(t, 2, strings.Count(out, "exited cleanly\n"), "the two other workers exit cleanly:\n%s", out)
	assert.Regexp(t, `12 tasks, 12 results kept, one per task:( worker \d did \d+;){3}\n$`, out)
}

// TestNoKill: without a death, every worker exits cleanly and nothing is
// handed back.
func TestNoKill(t *testing.T) {
	out := runProgram(t, "-workers", "2", "-tasks", "6", "-kill-after", "-1")
	assert.NotContains(t, out, "killing")
	assert.NotContains(t, out, "goes back")
	assert.Len(t, resultLine.FindAllString(out, -1), 6, "one result per task:\n%s", out)
	assert.Equal(t, 2, strings.Count(out, "exited cleanly\n"), "output:\n%s", out)
	assert.Contains(t, out, "6 tasks, 6 results kept, one per task:")
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
