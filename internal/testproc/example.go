package testproc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"testing"
	"time"
)

var example struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

// BuildExample builds the example program in the current directory (the
// package under test), with -race when the test binary has it, once per
// test binary, and returns the path of the executable.
func BuildExample(t testing.TB) string {
	t.Helper()
	example.once.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			example.err = err
			return
		}
		example.dir, example.err = os.MkdirTemp("", "mproc-example-")
		if example.err != nil {
			return
		}
		example.bin = filepath.Join(example.dir, "example")
		args := []string{"build", "-o", example.bin}
		if raceEnabled() {
			args = append(args, "-race")
		}
		example.out, example.err = exec.Command(goCmd, append(args, ".")...).CombinedOutput()
	})
	if example.err != nil {
		t.Fatalf("go build of the example: %v\n%s", example.err, example.out)
	}
	return example.bin
}

// removeExample deletes what BuildExample built; Main calls it.
func removeExample() {
	if example.dir != "" {
		os.RemoveAll(example.dir)
	}
}

func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

// RunExample builds the example (BuildExample) and runs it as a user would,
// with args and the test's environment plus env, in a process group of its
// own that is killed after a minute. It fails t if the example exits with
// an error, or if any process of its group is still running 5 s after it
// exited: an example must not leave a child behind. It returns the
// example's standard output; its standard error goes to the test's.
func RunExample(t testing.TB, env []string, args ...string) string {
	t.Helper()
	bin := BuildExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // a leftover child holding stdout must not hang the test
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if cmd.Process == nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	pgid := cmd.Process.Pid
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("the example did not exit cleanly within a minute: %v; its output:\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example left processes of its group %d running", pgid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return string(out)
}
