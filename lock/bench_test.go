package lock

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Lock+Unlock with no contention: one read and one write of the token.
func BenchmarkLockUnlock(b *testing.B) {
	l, err := New()
	require.NoError(b, err)
	defer l.Close()
	for b.Loop() {
		l.Lock()
		//lint:ignore SA2001 the benchmark measures an acquire and a release
		l.Unlock()
	}
}

func BenchmarkTryLockUnlock(b *testing.B) {
	l, err := New()
	require.NoError(b, err)
	defer l.Close()
	for b.Loop() {
		if !l.TryLock() {
			b.Fatal("TryLock failed on a free lock")
		}
		l.Unlock()
	}
}

// LockContext with a ctx that can end: it arms a watcher for the wait.
func BenchmarkLockContextUnlock(b *testing.B) {
	l, err := New()
	require.NoError(b, err)
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for b.Loop() {
		if err := l.LockContext(ctx); err != nil {
			b.Fatal(err)
		}
		l.Unlock()
	}
}

// Goroutines of one process contending: they queue inside the process.
func BenchmarkLockUnlockGoroutines(b *testing.B) {
	l, err := New()
	require.NoError(b, err)
	defer l.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Lock()
			//lint:ignore SA2001 the benchmark measures an acquire and a release
			l.Unlock()
		}
	})
}

// This process and a child contend for the lock; reports this process's
// share of the acquisitions.
func BenchmarkLockUnlockTwoProcesses(b *testing.B) {
	l, err := New()
	require.NoError(b, err)
	defer l.Close()
	p := startPeer(b, l)
	require.Equal(b, "spinning", p.do("spin"))
	for b.Loop() {
		l.Lock()
		//lint:ignore SA2001 the benchmark measures an acquire and a release
		l.Unlock()
	}
	n, err := strconv.Atoi(p.do("stop"))
	require.NoError(b, err)
	b.ReportMetric(float64(b.N)/float64(b.N+n), "share")
	p.stop()
}

// sync.Mutex, for scale.
func BenchmarkSyncMutex(b *testing.B) {
	var mu sync.Mutex
	for b.Loop() {
		mu.Lock()
		//lint:ignore SA2001 the benchmark measures an acquire and a release
		mu.Unlock()
	}
}

// flock by hand, for scale: what Lock+Unlock costs without the package's
// bookkeeping (the two flock calls and the wake write).
func BenchmarkBareFlock(b *testing.B) {
	l, err := New()
	require.NoError(b, err)
	defer l.Close()
	own := l.pl.Own()
	for b.Loop() {
		if err := unix.Flock(own, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b.Fatal(err)
		}
		if err := unix.Flock(own, unix.LOCK_UN); err != nil {
			b.Fatal(err)
		}
		if err := l.pl.Wake(); err != nil {
			b.Fatal(err)
		}
	}
}
