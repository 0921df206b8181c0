package fd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func sysfd(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	require.NoError(t, err)
	d := -1
	require.NoError(t, rc.Control(func(fd uintptr) { d = int(fd) }))
	return d
}

// checkFlags checks that f's descriptor is nonblocking and close-on-exec.
func checkFlags(t *testing.T, f *os.File) {
	t.Helper()
	d := sysfd(t, f)
	fl, err := GetFlags(d)
	require.NoError(t, err)
	assert.True(t, Nonblocking(fl), "%s is nonblocking", f.Name())
	fdfl, err := unix.FcntlInt(uintptr(d), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, fdfl&unix.FD_CLOEXEC, "%s is close-on-exec", f.Name())
}

func TestPipe(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := Pipe("p")
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.Equal(t, "p:r", r.Name())
	assert.Equal(t, "p:w", w.Name())
	checkFlags(t, r)
	checkFlags(t, w)
	ri, err := FileStat(r)
	require.NoError(t, err)
	assert.Equal(t, Info{Readable: true}, ri, "the read end")
	wi, err := FileStat(w)
	require.NoError(t, err)
	assert.Equal(t, Info{Writable: true}, wi, "the write end")

	_, err = w.Write([]byte("0123456789"))
	require.NoError(t, err)
	n, err := InQueue(sysfd(t, r), false)
	require.NoError(t, err)
	assert.Equal(t, 10, n, "TIOCINQ counts the bytes waiting")
	buf := make([]byte, 10)
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(buf))
}

func TestSocketpair(t *testing.T) {
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_SEQPACKET} {
		t.Run(fmt.Sprint(typ), func(t *testing.T) {
			testproc.CheckFDs(t)
			a, b, err := Socketpair(typ, "s")
			require.NoError(t, err)
			defer a.Close()
			defer b.Close()
			assert.Equal(t, "s:a", a.Name())
			for _, f := range []*os.File{a, b} {
				checkFlags(t, f)
				in, err := FileStat(f)
				require.NoError(t, err)
				assert.Equal(t, Info{Readable: true, Writable: true, Socket: true, SockType: typ, Domain: unix.AF_UNIX}, in)
			}
			_, err = a.Write([]byte("hello"))
			require.NoError(t, err)
			n, err := InQueue(sysfd(t, b), true)
			require.NoError(t, err)
			assert.Equal(t, 5, n, "SIOCINQ counts the bytes waiting")
		})
	}
}

// Descriptor rule 1 of docs/ARCHITECTURE.md: exec.Cmd calls Fd on ExtraFiles; for a descriptor
// created nonblocking and wrapped once, that must leave O_NONBLOCK alone.
func TestFdAndExecLeaveNonblocking(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := Pipe("p")
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	a, b, err := Socketpair(unix.SOCK_STREAM, "s")
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	for _, f := range []*os.File{r, w, a, b} {
		f.Fd()
	}
	cmd := exec.Command("true")
	cmd.ExtraFiles = []*os.File{r, w, a, b}
	require.NoError(t, cmd.Run())
	for _, f := range []*os.File{r, w, a, b} {
		checkFlags(t, f)
	}
}

func TestDup(t *testing.T) {
	testproc.CheckFDs(t)
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0) // blocking
	require.NoError(t, err)
	orig := os.NewFile(uintptr(p[0]), "orig")
	peer := os.NewFile(uintptr(p[1]), "peer")
	defer peer.Close()
	d, err := Dup(orig, "dup")
	require.NoError(t, err)
	defer d.Close()
	assert.NotEqual(t, sysfd(t, orig), sysfd(t, d), "a new descriptor")
	assert.Equal(t, "dup", d.Name())
	checkFlags(t, d)
	fl, err := GetFlags(sysfd(t, orig))
	require.NoError(t, err)
	assert.True(t, Nonblocking(fl), "the shared open file description is nonblocking, as with net.FileConn")
	require.NoError(t, orig.Close(), "the original stays the caller's")
	_, err = d.Write([]byte("via dup"))
	require.NoError(t, err, "the duplicate outlives the original")
	buf := make([]byte, 7)
	_, err = io.ReadFull(peer, buf)
	require.NoError(t, err)
	assert.Equal(t, "via dup", string(buf))

	_, err = Dup(orig, "closed")
	assert.Error(t, err, "Dup of a closed file")
}

func TestStatRejects(t *testing.T) {
	testproc.CheckFDs(t)
	f, err := os.Open(os.Args[0])
	require.NoError(t, err)
	defer f.Close()
	_, err = FileStat(f)
	assert.ErrorContains(t, err, "neither a pipe nor a socket")
	_, err = Stat(1 << 20)
	assert.ErrorIs(t, err, syscall.EBADF, "a descriptor that is not open")
	_, err = InQueue(1<<20, false)
	assert.ErrorIs(t, err, syscall.EBADF)
	_, err = GetFlags(1 << 20)
	assert.ErrorIs(t, err, syscall.EBADF)
}

func TestIsPeerClosed(t *testing.T) {
	testproc.CheckFDs(t)
	r, w, err := Pipe("p")
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, r.Close())
	_, err = w.Write([]byte("x"))
	require.Error(t, err, "a write to a pipe without readers")
	assert.True(t, IsPeerClosed(err), "EPIPE from a pipe: %v", err)

	a, b, err := Socketpair(unix.SOCK_STREAM, "s")
	require.NoError(t, err)
	defer a.Close()
	require.NoError(t, b.Close())
	_, err = a.Write([]byte("x"))
	require.Error(t, err, "a write to a socket whose peer closed")
	assert.True(t, IsPeerClosed(err), "from a socket: %v", err)
	assert.True(t, IsPeerClosed(fmt.Errorf("wrapped: %w", syscall.ECONNRESET)))
	assert.False(t, IsPeerClosed(io.EOF))
	assert.False(t, IsPeerClosed(errors.New("broken pipe")), "matched by value, never by text")
	assert.False(t, IsPeerClosed(nil))
}

func TestNonblocking(t *testing.T) {
	assert.True(t, Nonblocking(unix.O_NONBLOCK|unix.O_RDWR))
	assert.False(t, Nonblocking(unix.O_RDWR))
}
