package conn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

// hello is the first message of the echo helper.
type hello struct {
	Pid, Ppid int
}

// envReport is what the names helper sends on each inherited Conn.
type envReport struct {
	Name, FDS, Foo string
}

func init() {
	// conn-echo inherits "c", says hello, then sends back every payload
	// until EOF.
	testproc.Register("conn-echo", func() {
		c, err := conn.Inherit("c")
		testproc.Check(err, "Inherit")
		testproc.Check(c.Send(hello{os.Getpid(), os.Getppid()}), "Send hello")
		for {
			p, err := c.RecvBytes()
			if errors.Is(err, io.EOF) {
				return
			}
			testproc.Check(err, "RecvBytes")
			testproc.Check(c.SendBytes(p), "SendBytes")
		}
	})
	// conn-names inherits every name in its arguments and reports, on
	// each, what it sees in its environment.
	testproc.Register("conn-names", func() {
		for _, name := range testproc.Args() {
			c, err := conn.Inherit(name)
			testproc.Check(err, "Inherit "+name)
			testproc.Check(c.Send(envReport{name, os.Getenv(share.EnvVar), os.Getenv("FOO")}), "Send")
			testproc.Check(c.Close(), "Close")
		}
	})
	// conn-inherit-error: Inherit(args[0]) must fail with the sentinel
	// named by args[1], in a message containing each of args[2:].
	testproc.Register("conn-inherit-error", func() {
		args := testproc.Args()
		c, err := conn.Inherit(args[0])
		if err == nil {
			c.Close()
			testproc.Fatalf("Inherit(%q) succeeded", args[0])
		}
		want := map[string]error{
			"not-inherited": conn.ErrNotInherited,
			"wrong-kind":    conn.ErrWrongKind,
			"bad-fd":        conn.ErrBadFD,
			"other":         nil,
		}[args[1]]
		if want != nil && !errors.Is(err, want) {
			testproc.Fatalf("Inherit(%q) = %v, not %v", args[0], err, want)
		}
		for _, s := range args[2:] {
			if !strings.Contains(err.Error(), s) {
				testproc.Fatalf("Inherit(%q) = %q, which does not mention %q", args[0], err, s)
			}
		}
	})
	// conn-inherit-twice checks that a second Inherit returns the same
	// Conn, and that the descriptor survives garbage collection.
	testproc.Register("conn-inherit-twice", func() {
		a, err := conn.Inherit("c")
		testproc.Check(err, "Inherit")
		b, err := conn.Inherit("c")
		testproc.Check(err, "second Inherit")
		if a != b {
			testproc.Fatalf("two Inherits of one name returned two Conns")
		}
		testproc.Check(a.Send("same"), "Send")
		b = nil
		runtime.GC()
		runtime.GC()
		testproc.Check(a.Send("after GC"), "Send after GC")
	})
	// conn-relay hands the "c" it inherited to a grandchild running
	// conn-echo, closes its own copy and waits for the grandchild.
	testproc.Register("conn-relay", func() {
		c, err := conn.Inherit("c")
		testproc.Check(err, "Inherit")
		cmd := exec.Command(os.Args[0], "-test.run=^$", "--")
		// testproc's helper variable; the last value wins.
		cmd.Env = append(os.Environ(), "MPROC_TEST_HELPER=conn-echo")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		testproc.Check(c.Share(cmd, "c"), "Share with the grandchild")
		testproc.Check(cmd.Start(), "start the grandchild")
		testproc.Check(c.Close(), "Close")
		testproc.Check(cmd.Wait(), "the grandchild")
	})
	// conn-block says it is ready and waits to be killed.
	testproc.Register("conn-block", func() {
		c, err := conn.Inherit("c")
		testproc.Check(err, "Inherit")
		testproc.Check(c.Send("ready"), "Send")
		time.Sleep(time.Hour)
	})
	// conn-partial starts a frame too big for the kernel's buffer and
	// blocks in the middle of it, waiting to be killed.
	testproc.Register("conn-partial", func() {
		c, err := conn.Inherit("c")
		testproc.Check(err, "Inherit")
		testproc.Check(c.SendBytes(make([]byte, 16<<20)), "SendBytes")
		testproc.Fatalf("a 16 MiB frame went through though nobody reads")
	})
}

// startWith starts helper with b shared as "c" and closes the parent's copy.
func startWith(t *testing.T, helper string, b *conn.Conn, args ...string) *exec.Cmd {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	require.NoError(t, b.Share(cmd, "c"), "Share")
	require.NoError(t, cmd.Start(), "start %s", helper)
	require.NoError(t, b.Close(), "close the parent's copy of the child's end")
	return cmd
}

func TestShareInherit(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	cmd := testproc.Command(t, "conn-echo")
	require.NoError(t, b.Share(cmd, "c"))
	require.Len(t, cmd.ExtraFiles, 1, "Share appends exactly one file")
	require.NoError(t, cmd.Start())
	require.NoError(t, b.Close())

	var h hello
	require.NoError(t, a.Recv(&h))
	assert.Equal(t, cmd.Process.Pid, h.Pid, "the child answers")
	for i, p := range [][]byte{{}, []byte("héllo"), pattern(20<<10, 1), pattern(3<<20, 2)} {
		done := goSend(func() error { return a.SendBytes(p) })
		got, err := a.RecvBytes()
		require.NoError(t, err, "echo %d", i)
		require.NoError(t, waitErr(t, done, "SendBytes"))
		require.True(t, bytes.Equal(p, got), "echo %d of %d bytes, got %d", i, len(p), len(got))
	}
	require.NoError(t, a.Close(), "closing our end ends the child's loop with EOF")
	require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second), "the child exits cleanly on EOF")
}

func TestShareSeveral(t *testing.T) {
	names := []string{"x", "y", "z"}
	run := func(t *testing.T, cmd *exec.Cmd) []envReport {
		var ends []*conn.Conn
		for _, name := range names {
			a, b, err := pipe.Duplex()
			require.NoError(t, err)
			defer a.Close()
			require.NoError(t, b.Share(cmd, name), "Share %s", name)
			defer b.Close()
			ends = append(ends, a)
		}
		require.Len(t, cmd.ExtraFiles, len(names), "one file per Share")
		require.NoError(t, cmd.Start())
		var reports []envReport
		for i, a := range ends {
			var r envReport
			require.NoError(t, a.Recv(&r), "report on %s", names[i])
			reports = append(reports, r)
		}
		require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second))
		return reports
	}
	const want = "x=conn:3;y=conn:4;z=conn:5"

	t.Run("user env", func(t *testing.T) {
		testproc.CheckFDs(t)
		cmd := testproc.Command(t, "conn-names", names...)
		cmd.Env = append(cmd.Env, "FOO=user", share.EnvVar+"=stale=conn:99")
		for i, r := range run(t, cmd) {
			assert.Equal(t, envReport{names[i], want, "user"}, r,
				"every Share survives, the user's variables stay, a stale entry is dropped")
		}
	})
	t.Run("nil env", func(t *testing.T) {
		testproc.CheckFDs(t)
		cmd := testproc.Command(t, "conn-names", names...)
		cmd.Env = nil
		// With cmd.Env nil the child gets this process's environment, so
		// the helper's name goes there (testproc's variable).
		t.Setenv("MPROC_TEST_HELPER", "conn-names")
		t.Setenv("FOO", "parent")
		t.Setenv(share.EnvVar, "parents-own=conn:3")
		for i, r := range run(t, cmd) {
			assert.Equal(t, envReport{names[i], want, "parent"}, r,
				"Share starts from os.Environ() without the parent's own %s", share.EnvVar)
		}
	})
}

func TestInheritErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, cmd *exec.Cmd)
		args  []string // name to inherit, expected sentinel, words the message must contain
	}{
		{"unknown name lists the others", func(t *testing.T, cmd *exec.Cmd) {
			for _, name := range []string{"alpha", "beta"} {
				a, b, err := pipe.Duplex()
				require.NoError(t, err)
				t.Cleanup(func() { a.Close(); b.Close() })
				require.NoError(t, b.Share(cmd, name))
			}
		}, []string{"nope", "not-inherited", `"nope"`, "alpha", "beta"}},
		{"nothing inherited", func(t *testing.T, cmd *exec.Cmd) {}, []string{"c", "not-inherited", share.EnvVar}},
		{"wrong kind", func(t *testing.T, cmd *exec.Cmd) {
			r, w, err := fd.Pipe("test")
			require.NoError(t, err)
			t.Cleanup(func() { r.Close(); w.Close() })
			require.NoError(t, share.Add(cmd, "q", "queue", r))
		}, []string{"q", "wrong-kind", "queue"}},
		{"two descriptors", func(t *testing.T, cmd *exec.Cmd) {
			r, w, err := fd.Pipe("test")
			require.NoError(t, err)
			t.Cleanup(func() { r.Close(); w.Close() })
			require.NoError(t, share.Add(cmd, "c", conn.Kind, r, w))
		}, []string{"c", "wrong-kind", "one descriptor"}},
		{"a regular file", func(t *testing.T, cmd *exec.Cmd) {
			f, err := os.Open(os.Args[0])
			require.NoError(t, err)
			t.Cleanup(func() { f.Close() })
			require.NoError(t, share.Add(cmd, "c", conn.Kind, f))
		}, []string{"c", "wrong-kind", "neither a pipe nor a socket"}},
		{"descriptor not open", func(t *testing.T, cmd *exec.Cmd) {
			cmd.Env = append(cmd.Env, share.EnvVar+"=c=conn:900")
		}, []string{"c", "bad-fd", "900"}},
		{"malformed variable", func(t *testing.T, cmd *exec.Cmd) {
			cmd.Env = append(cmd.Env, share.EnvVar+"=c=conn")
		}, []string{"c", "other", "malformed", share.EnvVar}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			cmd := testproc.Command(t, "conn-inherit-error", tc.args...)
			tc.setup(t, cmd)
			require.NoError(t, cmd.Run(), "the child checks Inherit(%q)'s error (see its stderr)", tc.args[0])
		})
	}
}

func TestInheritTwice(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	cmd := startWith(t, "conn-inherit-twice", b)
	for _, want := range []string{"same", "after GC"} {
		var s string
		require.NoError(t, a.Recv(&s))
		assert.Equal(t, want, s)
	}
	require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second))
}

func TestShareWithGrandchild(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	cmd := startWith(t, "conn-relay", b)
	var h hello
	require.NoError(t, a.Recv(&h))
	assert.Equal(t, cmd.Process.Pid, h.Ppid, "the grandchild, whose parent is the child, answers")
	require.NoError(t, a.SendBytes([]byte("through two generations")))
	got, err := a.RecvBytes()
	require.NoError(t, err)
	assert.Equal(t, "through two generations", string(got))
	require.NoError(t, a.Close())
	require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second), "child and grandchild exit cleanly")
}

func TestChildKilled(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	cmd := startWith(t, "conn-block", b)
	var s string
	require.NoError(t, a.Recv(&s))
	require.Equal(t, "ready", s)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	assert.ErrorIs(t, a.RecvContext(ctx, &s), io.EOF, "Recv returns io.EOF within a second of the child's death")
	err = testproc.WaitTimeout(cmd, 10*time.Second)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal())
}

func TestChildKilledMidFrame(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	cmd := startWith(t, "conn-partial", b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := a.PollContext(ctx)
	require.NoError(t, err)
	require.True(t, ok, "the child has begun its frame")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_, err = a.RecvBytes()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "a frame cut by the writer's death")
	testproc.WaitTimeout(cmd, 10*time.Second)
}

func TestShareErrors(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer b.Close()

	cmd := exec.Command("true")
	assert.ErrorIs(t, a.Share(cmd, "bad name"), share.ErrBadName, "a name with a space")
	assert.ErrorIs(t, a.Share(cmd, ""), share.ErrBadName, "an empty name")
	assert.Empty(t, cmd.ExtraFiles, "a refused Share adds no file")
	require.NoError(t, a.Share(cmd, "c"))
	assert.Error(t, b.Share(cmd, "c"), "a name already shared with this command")
	assert.Len(t, cmd.ExtraFiles, 1)
	require.NoError(t, cmd.Run())
	assert.Error(t, b.Share(cmd, "d"), "Share after the command started")

	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.Share(exec.Command("true"), "c"), conn.ErrClosed, "Share of a closed Conn")
}

// A peer's payload that nests too deep (8 Mi one-byte array headers, which
// overflowed the decoder's stack) or that carries bytes after its value
// is refused with a clear error, consumed, and the Conn goes on: the
// payloads come from a child, which echoes them without decoding.
func TestRecvRefusesHostilePayloads(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	cmd := startWith(t, "conn-echo", b)
	var h hello
	require.NoError(t, a.Recv(&h))

	deep := bytes.Repeat([]byte{0x91}, 8<<20)
	deep = append(deep, 0xc0)
	atLimit := append(bytes.Repeat([]byte{0x91}, conn.MaxDepth), 0xc0)
	// A struct field the decoder does not know is skipped, recursively.
	unknown := append([]byte{0x81, 0xa7}, "Unknown"...)
	unknown = append(unknown, deep...)
	type known struct{ X int }
	for _, c := range []struct {
		name    string
		payload []byte
		into    func() any
		want    error
	}{
		{"deep into any", deep, func() any { return new(any) }, conn.ErrTooDeep},
		{"deep under an unknown key", unknown, func() any { return new(known) }, conn.ErrTooDeep},
		{"trailing bytes", []byte{0x2a, 0xc1, 0xc1, 0xc1}, func() any { return new(int) }, conn.ErrMalformed},
		{"at the limit", atLimit, func() any { return new(any) }, nil},
	} {
		done := goSend(func() error { return a.SendBytes(c.payload) })
		err := a.Recv(c.into())
		require.NoError(t, waitErr(t, done, "SendBytes"), c.name)
		if c.want == nil {
			assert.NoError(t, err, c.name)
		} else {
			assert.ErrorIs(t, err, c.want, c.name)
			assert.ErrorIs(t, err, conn.ErrMalformed, c.name)
		}
		// The Conn goes on.
		require.NoError(t, a.Send(42))
		var n int
		require.NoError(t, a.Recv(&n), "after %s", c.name)
		assert.Equal(t, 42, n)
	}
	require.NoError(t, a.Close())
	require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second))
}
