// Package testproc is the multi-process test harness of mproc's tests, in
// the manner of os/exec's exec_test.go: a test binary re-executes itself to
// run a named helper function as a child process.
//
//	func TestMain(m *testing.M) { testproc.Main(m) }
//
//	func init() { testproc.Register("echo", func() { ... }) }
//
//	cmd := testproc.Command(t, "echo")   // killed and reaped at cleanup
//
// Main also runs goleak after the tests. Every registered helper must be
// used by some test (RegisterBench marks one that only benchmarks use);
// Main fails the run otherwise.
package testproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// envHelper names the helper a child runs.
const envHelper = "MPROC_TEST_HELPER"

var (
	pollerOnce sync.Once

	mu      sync.Mutex
	helpers = map[string]func(){}
	used    = map[string]bool{}
	// benchOnly holds the helpers registered with RegisterBench.
	benchOnly = map[string]bool{}
)

// Register adds a helper. Call it from init or a package-level var.
func Register(name string, fn func()) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := helpers[name]; dup {
		panic("testproc: helper registered twice: " + name)
	}
	helpers[name] = fn
}

// RegisterBench adds a helper that only benchmarks use: Main does not
// count it as unused in a run that does not benchmark.
func RegisterBench(name string, fn func()) {
	Register(name, fn)
	mu.Lock()
	defer mu.Unlock()
	benchOnly[name] = true
}

// IsChild reports whether this process is running a helper.
func IsChild() bool { return os.Getenv(envHelper) != "" }

// Main runs the named helper and exits when this process is a child;
// otherwise it runs the tests, checks for leaked goroutines and unused
// helpers, and exits.
func Main(m *testing.M, opts ...goleak.Option) {
	if name := os.Getenv(envHelper); name != "" {
		fn, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "testproc: unknown helper %q\n", name)
			os.Exit(2)
		}
		fn()
		os.Exit(0)
	}
	code := m.Run()
	removeExample()
	if code == 0 && !testing.Short() && runAll() {
		var unused []string
		for name := range helpers {
			if !used[name] && !benchOnly[name] {
				unused = append(unused, name)
			}
		}
		if len(unused) > 0 {
			sort.Strings(unused)
			fmt.Fprintf(os.Stderr, "testproc: helpers never used: %s\n", strings.Join(unused, ", "))
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// runAll reports whether the whole suite ran (no -run or -skip filter), the
// only case where an unused helper means something.
func runAll() bool {
	return !slices.ContainsFunc(os.Args[1:], func(a string) bool {
		return strings.HasPrefix(a, "-test.run") || strings.HasPrefix(a, "-test.skip") ||
			strings.HasPrefix(a, "-test.fuzz") || strings.HasPrefix(a, "-test.bench")
	})
}

// Command returns a command that runs helper name in a child process, with
// the test's environment, stdout and stderr, plus args in os.Args[1:] of the
// child (after "--"). At cleanup the child is killed if still running and
// reaped, so no test leaves a process behind.
func Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	mu.Lock()
	_, ok := helpers[name]
	used[name] = true
	mu.Unlock()
	if !ok {
		t.Fatalf("testproc: no helper %q", name)
	}
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	// A child built with -race sleeps a second at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), envHelper+"="+name, "GORACE="+gorace)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	t.Cleanup(func() { Reap(cmd) })
	return cmd
}

// Reap kills cmd's process if it is still running and waits for it.
func Reap(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Kill()
	cmd.Wait()
}

// Args returns the arguments a helper was given by Command.
func Args() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

// Fatalf, in a helper, prints the message and exits with status 1.
func Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "helper %s: %s\n", os.Getenv(envHelper), fmt.Sprintf(format, args...))
	os.Exit(1)
}

// Check, in a helper, exits through Fatalf when err is not nil.
func Check(err error, what string) {
	if err != nil {
		Fatalf("%s: %v", what, err)
	}
}

// WaitTimeout waits for cmd, killing it after d.
func WaitTimeout(cmd *exec.Cmd, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("testproc: %s did not exit within %v", cmd.Path, d)
	}
}

// CheckFDs records the open descriptors now and, at cleanup, fails t if
// more are open then: a leak. Use it first in a test, before anything the
// test opens.
func CheckFDs(t testing.TB) {
	t.Helper()
	// The runtime creates its poller's descriptors (epoll, eventfd) on first
	// use: make sure they exist before counting, so that a test run alone
	// does not see them as its leak.
	pollerOnce.Do(func() {
		if r, w, err := os.Pipe(); err == nil {
			r.Close()
			w.Close()
		}
	})
	before := openFDs(t)
	t.Cleanup(func() {
		// Closed descriptors vanish from /proc at once, but give finalizers
		// of dropped files a chance so that a leak is a real leak.
		var after map[string]string
		for i := 0; i < 20; i++ {
			after = openFDs(t)
			if len(after) <= len(before) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		var extra []string
		for fd, target := range after {
			if _, ok := before[fd]; !ok {
				extra = append(extra, fd+" -> "+target)
			}
		}
		sort.Strings(extra)
		t.Errorf("descriptors leaked: %d open before, %d after: %s", len(before), len(after), strings.Join(extra, ", "))
	})
}

func openFDs(t testing.TB) map[string]string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	m := make(map[string]string, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		m[e.Name()] = target
	}
	return m
}
