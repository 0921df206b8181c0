package share

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func TestParse(t *testing.T) {
	valid := []struct {
		in   string
		want []Entry
	}{
		{"", nil},
		{"a=conn:3", []Entry{{"a", "conn", []int{3}}}},
		{"results=conn:3;jobs=queue:4,5,6,7", []Entry{{"results", "conn", []int{3}}, {"jobs", "queue", []int{4, 5, 6, 7}}}},
		{"A-b_c.9=x:0", []Entry{{"A-b_c.9", "x", []int{0}}}},
	}
	for _, tc := range valid {
		got, err := Parse(tc.in)
		require.NoError(t, err, "Parse(%q)", tc.in)
		assert.Equal(t, tc.want, got, "Parse(%q)", tc.in)
		assert.Equal(t, tc.in, Format(got), "Format is the inverse of Parse for %q", tc.in)
	}
	invalid := []string{
		"a", "a=conn", "a=:3", "=conn:3", "a=conn:", "a=conn:x", "a=conn:-1", "a=conn:3,,4",
		"a b=conn:3", "a=conn:3;", ";a=conn:3", "a=conn:3;b", "é=conn:3", "a=conn:3 ",
	}
	for _, in := range invalid {
		_, err := Parse(in)
		if assert.Error(t, err, "Parse(%q) must fail", in) {
			assert.Contains(t, err.Error(), "malformed "+EnvVar, "Parse(%q)'s error", in)
		}
	}
}

func TestFormat(t *testing.T) {
	entries := []Entry{{"x", "conn", []int{3}}, {"q", "queue", []int{4, 5}}}
	assert.Equal(t, "x=conn:3;q=queue:4,5", Format(entries))
	assert.Equal(t, "q=queue:4,5", entries[1].String())
	assert.Equal(t, "", Format(nil))
	back, err := Parse(Format(entries))
	require.NoError(t, err)
	assert.Equal(t, entries, back)
}

func TestValidName(t *testing.T) {
	for _, name := range []string{"a", "Z9", "jobs.in", "my-queue_2"} {
		assert.True(t, ValidName(name), "%q", name)
	}
	for _, name := range []string{"", "a b", "a=b", "a;b", "a:b", "a,b", "é", "a/b"} {
		assert.False(t, ValidName(name), "%q", name)
	}
}

// envVar returns the values of key in env, in order.
func envVar(env []string, key string) []string {
	var vals []string
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			vals = append(vals, v)
		}
	}
	return vals
}

func pipeFiles(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := fd.Pipe("test")
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestAddNilEnv(t *testing.T) {
	t.Setenv(EnvVar, "parents-own=conn:3")
	t.Setenv("MPROC_SHARE_TEST", "kept")
	r, w := pipeFiles(t)
	cmd := exec.Command("true")
	require.NoError(t, Add(cmd, "a", "conn", r))
	require.NoError(t, Add(cmd, "b", "queue", r, w))
	assert.Equal(t, []*os.File{r, r, w}, cmd.ExtraFiles, "Add appends the files")
	assert.Equal(t, []string{"a=conn:3;b=queue:4,5"}, envVar(cmd.Env, EnvVar),
		"one variable, the parent's own entries dropped, every Add kept")
	assert.Equal(t, []string{"kept"}, envVar(cmd.Env, "MPROC_SHARE_TEST"), "the rest of os.Environ()")
	assert.Equal(t, []string{"parents-own=conn:3"}, envVar(os.Environ(), EnvVar), "this process's environment is untouched")
}

func TestAddUserEnv(t *testing.T) {
	r, w := pipeFiles(t)
	user := []string{"A=1", EnvVar + "=mine=conn:3;stale=conn:7", "B=2"}
	cmd := exec.Command("true")
	cmd.ExtraFiles = []*os.File{w} // fd 3, which "mine" refers to
	cmd.Env = user
	require.NoError(t, Add(cmd, "a", "conn", r))
	assert.Equal(t, []string{"mine=conn:3;a=conn:4"}, envVar(cmd.Env, EnvVar),
		"an entry that refers to this command's files is kept, a stale one dropped, the new file is fd 4")
	assert.Equal(t, []string{"1"}, envVar(cmd.Env, "A"))
	assert.Equal(t, []string{"2"}, envVar(cmd.Env, "B"))
	assert.Equal(t, []string{"A=1", EnvVar + "=mine=conn:3;stale=conn:7", "B=2"}, user, "the caller's slice is not modified")
	assert.ErrorContains(t, Add(cmd, "mine", "conn", r), "already shared", "a name kept from the user's variable")

	cmd = exec.Command("true")
	cmd.Env = []string{EnvVar + "=x=conn:3", EnvVar + "=garbage"}
	require.NoError(t, Add(cmd, "a", "conn", r))
	assert.Equal(t, []string{"a=conn:3"}, envVar(cmd.Env, EnvVar), "the last of several variables wins, as in os/exec; a malformed one is dropped")
}

func TestAddErrors(t *testing.T) {
	r, _ := pipeFiles(t)
	cmd := exec.Command("true")
	for _, name := range []string{"", "a b", "a;b", "a=b"} {
		assert.ErrorIs(t, Add(cmd, name, "conn", r), ErrBadName, "%q", name)
	}
	assert.Empty(t, cmd.ExtraFiles, "a refused Add adds nothing")
	assert.Nil(t, cmd.Env, "a refused Add leaves Env alone")
	require.NoError(t, Add(cmd, "a", "conn", r))
	assert.ErrorContains(t, Add(cmd, "a", "queue", r), "already shared")
	assert.Len(t, cmd.ExtraFiles, 1)
	require.NoError(t, cmd.Run())
	assert.ErrorContains(t, Add(cmd, "b", "conn", r), "already started")
	assert.Panics(t, func() { Add(nil, "a", "conn", r) }, "a nil command is a programming error")
}

// The child side: its registry is built from the environment at init, so
// it is tested in children.

func init() {
	testproc.Register("share-registry", func() {
		names := Names()
		if !slices.Equal(names, []string{"p", "s"}) {
			testproc.Fatalf("Names() = %v", names)
		}
		e, ok := Lookup("p")
		if !ok || e.Kind != "pipe" || !slices.Equal(e.FDs, []int{3, 4}) {
			testproc.Fatalf("Lookup(p) = %v, %v", e, ok)
		}
		if _, ok := Lookup("x"); ok {
			testproc.Fatalf("Lookup(x) found something")
		}
		for _, d := range []int{3, 4, 5} {
			fl, err := unix.FcntlInt(uintptr(d), unix.F_GETFD, 0)
			testproc.Check(err, "F_GETFD")
			if fl&unix.FD_CLOEXEC == 0 {
				testproc.Fatalf("inherited fd %d is not close-on-exec after init", d)
			}
		}

		_, err := Inherit("x", "pipe", nil)
		if !errors.Is(err, ErrNotInherited) || !strings.Contains(err.Error(), "p, s") {
			testproc.Fatalf("Inherit(x) = %v: want ErrNotInherited listing p, s", err)
		}
		_, err = Inherit("s", "pipe", nil)
		if !errors.Is(err, ErrWrongKind) {
			testproc.Fatalf("Inherit(s, pipe) = %v: want ErrWrongKind", err)
		}

		// A failing open owns (and closes) the files; its failure is
		// what later calls for the name get.
		_, err = Inherit("p", "pipe", func(files []*os.File) (any, error) {
			if len(files) != 2 || files[0].Name() != "mproc:p:0" || files[1].Name() != "mproc:p:1" {
				testproc.Fatalf("open got %v", files)
			}
			for _, f := range files {
				f.Close()
			}
			return nil, os.ErrInvalid
		})
		if !errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), `"p"`) {
			testproc.Fatalf("Inherit with a failing open = %v", err)
		}
		// Its descriptors are closed, and their numbers may be reused by
		// any file this process opens: a second attempt must not wrap
		// them again.
		r, w, perr := os.Pipe()
		testproc.Check(perr, "pipe")
		defer r.Close()
		defer w.Close()
		reopened := false
		_, err = Inherit("p", "pipe", func([]*os.File) (any, error) { reopened = true; return "p", nil })
		if !errors.Is(err, ErrBadFD) || !errors.Is(err, os.ErrInvalid) || reopened {
			testproc.Fatalf("Inherit after the failed open closed the fds = %v (open called: %v): want ErrBadFD with the first error", err, reopened)
		}

		// A successful open is cached: one object per name.
		calls := 0
		open := func(files []*os.File) (any, error) {
			calls++
			return files[0], nil
		}
		a, err := Inherit("s", "sock", open)
		testproc.Check(err, "Inherit(s)")
		b, err := Inherit("s", "sock", open)
		testproc.Check(err, "Inherit(s) again")
		if a != b || calls != 1 {
			testproc.Fatalf("two Inherits: %p, %p, open called %d times", a, b, calls)
		}
		_, err = a.(*os.File).Write([]byte("ok"))
		testproc.Check(err, "write on the inherited socket")
	})
	testproc.Register("share-malformed", func() {
		if len(Names()) != 0 {
			testproc.Fatalf("Names() = %v with a malformed variable", Names())
		}
		want := "malformed"
		if args := testproc.Args(); len(args) > 0 && args[0] == "twice" {
			want = "descriptor 3 more than once"
		}
		_, err := Inherit("a", "conn", func([]*os.File) (any, error) {
			testproc.Fatalf("Inherit wrapped a descriptor of a refused variable")
			return nil, nil
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			testproc.Fatalf("Inherit = %v: want the parse error (%s)", err, want)
		}
	})
}

func TestInheritRegistry(t *testing.T) {
	testproc.CheckFDs(t)
	r, w := pipeFiles(t)
	sa, sb, err := fd.Socketpair(unix.SOCK_STREAM, "test")
	require.NoError(t, err)
	defer sa.Close()
	defer sb.Close()
	cmd := testproc.Command(t, "share-registry")
	require.NoError(t, Add(cmd, "p", "pipe", r, w))
	require.NoError(t, Add(cmd, "s", "sock", sb))
	require.NoError(t, cmd.Start())
	sb.Close()
	buf := make([]byte, 2)
	_, err = sa.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(buf), "the child wrote on the inherited socket")
	require.NoError(t, testproc.WaitTimeout(cmd, 10*time.Second), "the child's checks (see its stderr)")
}

// The same descriptor under two names would be wrapped twice, and the
// first wrapper closed would leave the other writing into whatever file
// reuses the number: the variable is refused.
func TestInheritRefusesADescriptorUnderTwoNames(t *testing.T) {
	for _, v := range []string{"a=conn:3;b=conn:3", "q=queue:3,4,3", "a=conn:4;q=queue:3,4"} {
		_, err := Parse(v)
		require.Error(t, err, v)
		assert.Contains(t, err.Error(), "more than once", v)
	}
	r, _ := pipeFiles(t)
	cmd := testproc.Command(t, "share-malformed", "twice")
	cmd.ExtraFiles = []*os.File{r}
	cmd.Env = append(cmd.Env, EnvVar+"=a=conn:3;b=conn:3")
	require.NoError(t, cmd.Run())
}

func TestInheritMalformed(t *testing.T) {
	cmd := testproc.Command(t, "share-malformed")
	cmd.Env = append(cmd.Env, EnvVar+"=a=conn")
	require.NoError(t, cmd.Run())
}

// FuzzParse: MPROC_FDS comes from whoever started this process. Parse never
// panics, refuses a descriptor listed twice, and what it accepts Format
// writes back identically.
func FuzzParse(f *testing.F) {
	for _, v := range []string{"", "a=conn:3", "results=conn:3;jobs=queue:4,5,6,7", "a=conn:3;b=conn:3", "a=x:99999999999999999999"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		entries, err := Parse(v)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, e := range entries {
			if !ValidName(e.Name) || e.Kind == "" || len(e.FDs) == 0 {
				t.Fatalf("Parse(%q) accepted entry %+v", v, e)
			}
			for _, fd := range e.FDs {
				if fd < 0 || seen[fd] {
					t.Fatalf("Parse(%q) accepted descriptor %d", v, fd)
				}
				seen[fd] = true
			}
		}
		back, err := Parse(Format(entries))
		if err != nil || !slices.EqualFunc(back, entries, func(a, b Entry) bool {
			return a.Name == b.Name && a.Kind == b.Kind && slices.Equal(a.FDs, b.FDs)
		}) {
			t.Fatalf("Parse(Format(Parse(%q))) = %v, %v", v, back, err)
		}
	})
}
