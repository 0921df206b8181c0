package main

import (
	"context"
	"errors"
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

// TestProgram builds the example, runs it as a user would and checks from
// its output that every job was done by exactly one worker.
func TestProgram(t *testing.T) {
	out := runProgram(t, "-workers", "3", "-jobs", "30")
	assert.Regexp(t, `^started 3 workers sharing a joinable.Queue of jobs and a queue.Queue of reports\n`+
		`put 30 jobs\n`+
		`Join returned after \S+: every job has had its TaskDone\n`+
		`put 3 sentinels \(nil jobs\), one per worker\n`+
		`all 3 workers exited cleanly\n`, out)
	assert.True(t, strings.HasSuffix(out, "total: 30 jobs, each done exactly once\n"), "the summary ends the output:\n%s", out)

	// Check the summary's claim ourselves from the per-worker lines.
	lines := regexp.MustCompile(`(?m)^  worker (\d) \(pid \d+\) did +(\d+) jobs: \[([\d ]*)\]$`).FindAllStringSubmatch(out, -1)
	require.Len(t, lines, 3, "one summary line per worker:\n%s", out)
	done := make(map[int]int)
	for i, l := range lines {
		assert.Equal(t, strconv.Itoa(i+1), l[1], "workers in order")
		ids := strings.Fields(l[3])
		assert.Equal(t, l[2], strconv.Itoa(len(ids)), "worker %s's count matches its list", l[1])
		for _, id := range ids {
			n, err := strconv.Atoi(id)
			require.NoError(t, err)
			done[n]++
		}
	}
	for id := range 30 {
		assert.Equal(t, 1, done[id], "job %d done exactly once", id)
	}
	assert.Len(t, done, 30, "no job outside 0..29")
}

// TestNoJobs: Join with nothing put returns at once, and the workers still
// shut down on their sentinels.
func TestNoJobs(t *testing.T) {
	out := runProgram(t, "-workers", "2", "-jobs", "0")
	assert.Contains(t, out, "put 2 sentinels")
	assert.Contains(t, out, "all 2 workers exited cleanly")
	assert.Contains(t, out, "total: 0 jobs, each done exactly once")
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
