package testproc

import (
	"bufio"
	"io"
	"os/exec"
	"testing"
	"time"
)

// Child is a helper process whose standard output is read line by line, for
// helpers that report what they did by printing it.
type Child struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser // the child's standard input
	Lines <-chan string  // the child's output lines; closed when it ends
	done  chan struct{}  // closed when the reader goroutine has ended
}

// StartLines starts cmd (typically from Command) with pipes on its standard
// input and output. At cleanup the child is killed if still running and
// reaped, and the reader goroutine is ended.
func StartLines(t testing.TB, cmd *exec.Cmd) *Child {
	t.Helper()
	cmd.Stdout = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	lines := make(chan string, 1024)
	c := &Child{Cmd: cmd, Stdin: stdin, Lines: lines, done: make(chan struct{})}
	quit := make(chan struct{})
	go func() {
		defer close(c.done)
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			select {
			case lines <- s.Text():
			case <-quit:
				return
			}
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		close(quit)
		Reap(cmd)
		<-c.done
	})
	return c
}

// Line returns the next line the child prints, failing t if it ends first
// or prints nothing within 30 s.
func (c *Child) Line(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-c.Lines:
		if !ok {
			t.Fatal("the child ended without printing a line")
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("the child printed nothing within 30 s")
	}
	return ""
}

// Wait returns every line the child prints until it exits, and fails t if
// it does not exit cleanly within 30 s.
func (c *Child) Wait(t testing.TB) []string {
	t.Helper()
	var lines []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-c.Lines:
			if !ok {
				// The output ended: the child closed its stdout, or exited.
				if err := WaitTimeout(c.Cmd, 30*time.Second); err != nil {
					t.Fatalf("the child's exit: %v", err)
				}
				return lines
			}
			lines = append(lines, l)
		case <-timeout:
			t.Fatal("the child did not end within 30 s")
		}
	}
}
