package plock

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// pair returns two Mutexes over one pipe: each reopens it, so they stand
// for two processes.
func pair(t *testing.T) (a, b *Mutex, r, w *os.File) {
	t.Helper()
	r, w, err := fd.Pipe("plock-test")
	require.NoError(t, err)
	a, err = New(r, r, w)
	require.NoError(t, err)
	b, err = New(r, r, w)
	require.NoError(t, err)
	t.Cleanup(func() {
		a.Close()
		b.Close()
		r.Close()
		w.Close()
	})
	return a, b, r, w
}

func TestExclusion(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, _, _ := pair(t)
	ok, err := a.TryLock()
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.TryLock()
	require.NoError(t, err)
	assert.False(t, ok, "held by the other description")
	require.NoError(t, a.Unlock())
	ok, err = b.TryLock()
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, b.Unlock())
}

// A waiter takes the lock when the holder's Unlock writes its wake.
func TestUnlockWakesWaiter(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, _, _ := pair(t)
	require.NoError(t, a.Lock(context.Background()))
	got := make(chan error, 1)
	go func() { got <- b.Lock(context.Background()) }()
	require.Never(t, func() bool { return len(got) > 0 }, 20*time.Millisecond, 2*time.Millisecond)
	require.NoError(t, a.Unlock())
	require.NoError(t, <-got)
	require.NoError(t, b.Unlock())
}

// A holder that goes away without a wake (as a dead process does: its
// description is closed) is noticed within Recheck.
func TestReleaseWithoutWakeNoticed(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, _, _ := pair(t)
	require.NoError(t, a.Lock(context.Background()))
	got := make(chan error, 1)
	go func() { got <- b.Lock(context.Background()) }()
	require.Never(t, func() bool { return len(got) > 0 }, 20*time.Millisecond, 2*time.Millisecond)
	require.NoError(t, unix.Close(a.own)) // the kernel drops the flock, nobody wakes
	a.own = -1
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(10 * Recheck):
		t.Fatal("the waiter did not notice the released lock")
	}
	require.NoError(t, b.Unlock())
}

func TestWaitCtxAndStop(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, _, _ := pair(t)
	require.NoError(t, a.Lock(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, b.Lock(ctx), context.DeadlineExceeded)
	got := make(chan error, 1)
	go func() { got <- b.Lock(context.Background()) }()
	b.Stop()
	assert.ErrorIs(t, <-got, ErrClosed)
	assert.ErrorIs(t, b.Wait(context.Background(), func() (bool, error) { return false, nil }), ErrClosed)
	require.NoError(t, a.Unlock())
}

// A wake into a full pipe empties it first: wakes never fail and never
// block, however many nobody waited for.
func TestWakeIntoFullPipe(t *testing.T) {
	testproc.CheckFDs(t)
	a, b, r, _ := pair(t)
	for i := 0; ; i++ {
		require.Less(t, i, 1<<21, "the pipe never filled")
		if err := a.Wake(); err != nil {
			t.Fatal(err)
		}
		var n int
		rc, err := r.SyscallConn()
		require.NoError(t, err)
		rc.Control(func(d uintptr) { n, _ = fd.InQueue(int(d), false) })
		if n < i+1 {
			break // it was emptied on the way
		}
	}
	got := make(chan error, 1)
	go func() {
		first := true
		got <- b.Wait(context.Background(), func() (bool, error) {
			done := !first
			first = false
			return done, nil
		})
	}()
	require.NoError(t, a.Wake())
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(10 * Recheck):
		t.Fatal("no wake")
	}
}
