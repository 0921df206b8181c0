package testproc

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BlockedIn returns how many goroutines of this process are parked by the
// runtime (waiting for I/O, a channel, a select, a lock, a condition or a
// timer) with a call of a function whose name contains fn on their stack,
// for example "queue.(*Queue[...]).Get". It is the condition a test polls
// instead of sleeping "long enough" for another goroutine to block.
func BlockedIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	k := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, stack, _ := strings.Cut(string(g), "\n")
		// "goroutine 7 [IO wait, 2 minutes]:"
		_, state, ok := strings.Cut(header, "[")
		if !ok {
			continue
		}
		state, _, _ = strings.Cut(state, "]")
		state, _, _ = strings.Cut(state, ",")
		switch state {
		case "running", "runnable", "syscall":
			continue
		}
		// The frames only: not the "created by" line, which names the
		// function that started the goroutine.
		stack, _, _ = strings.Cut(stack, "\ncreated by ")
		if strings.Contains(stack, fn) {
			k++
		}
	}
	return k
}

// WaitBlocked polls BlockedIn(fn) until at least n goroutines are blocked
// there. It fails t after 30 s; with a nil t (in a helper), it exits the
// helper through Fatalf.
func WaitBlocked(t testing.TB, fn string, n int) {
	if t != nil {
		t.Helper()
	}
	deadline := time.Now().Add(30 * time.Second)
	for BlockedIn(fn) < n {
		if time.Now().After(deadline) {
			if t != nil {
				t.Fatalf("testproc: %d goroutine(s) blocked in %s after 30 s, want %d", BlockedIn(fn), fn, n)
			}
			Fatalf("%d goroutine(s) blocked in %s after 30 s, want %d", BlockedIn(fn), fn, n)
		}
		time.Sleep(time.Millisecond)
	}
}
