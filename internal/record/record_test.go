package record

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func newT(t *testing.T, data string) *Record {
	t.Helper()
	r, err := New("test", []byte("meta"), []byte(data))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func load(t *testing.T, r *Record) string {
	t.Helper()
	b, err := r.Load(context.Background())
	require.NoError(t, err)
	return string(b)
}

func set(t *testing.T, r *Record, data string) {
	t.Helper()
	require.NoError(t, r.Update(context.Background(), func([]byte) ([]byte, error) { return []byte(data), nil }))
}

func TestUpdateAndLoad(t *testing.T) {
	testproc.CheckFDs(t)
	r := newT(t, "a")
	assert.Equal(t, "a", load(t, r))
	for _, s := range []string{"bb", "", "ccc", string(make([]byte, 10000))} {
		set(t, r, s)
		assert.Equal(t, s, load(t, r))
	}
	meta, err := r.Meta()
	require.NoError(t, err)
	assert.Equal(t, "meta", string(meta))
	// A nil result changes nothing.
	require.NoError(t, r.Update(context.Background(), func([]byte) ([]byte, error) { return nil, nil }))
	assert.Equal(t, string(make([]byte, 10000)), load(t, r))
}

// A writer killed in the middle of its pwrite leaves a copy with a newer
// seq whose CRC does not match: readers and the next writer take the
// older, whole copy.
func TestTornCopyIgnored(t *testing.T) {
	testproc.CheckFDs(t)
	r := newT(t, "old")
	cur, err := r.current()
	require.NoError(t, err)
	// Half of a copy with seq+1: header and the first bytes only.
	b := make([]byte, headerLen+8)
	copy(b[0:4], magic[:])
	binary.BigEndian.PutUint64(b[8:16], cur.seq+1)
	binary.BigEndian.PutUint64(b[16:24], 100)
	copy(b[headerLen:], "newnewne")
	_, err = unix.Pwrite(r.own, b, int64((cur.seq+1)%2)*copyStride)
	require.NoError(t, err)
	assert.Equal(t, "old", load(t, r))
	set(t, r, "next")
	assert.Equal(t, "next", load(t, r))
	// Both copies destroyed: corrupt, not a panic.
	zero := make([]byte, headerLen)
	for i := range 2 {
		_, err = unix.Pwrite(r.own, zero, int64(i)*copyStride)
		require.NoError(t, err)
	}
	_, err = r.Load(context.Background())
	assert.ErrorIs(t, err, ErrCorrupt)
}

// Concurrent readers never see a torn value while a writer rewrites both
// copies in turn.
func TestReadersDuringWrites(t *testing.T) {
	testproc.CheckFDs(t)
	r := newT(t, string(make([]byte, 3000)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := byte(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := make([]byte, 3000)
			for j := range b {
				b[j] = i
			}
			set(t, r, string(b))
		}
	})
	for range 2 {
		wg.Go(func() {
			deadline := time.Now().Add(200 * time.Millisecond)
			for time.Now().Before(deadline) {
				b, err := r.Load(context.Background())
				if !assert.NoError(t, err) {
					return
				}
				for _, c := range b {
					if c != b[0] {
						t.Errorf("torn read: %d and %d", b[0], c)
						return
					}
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
}

func TestLiveIDs(t *testing.T) {
	testproc.CheckFDs(t)
	r := newT(t, "")
	files := r.Files()
	// Another description of the same memfd stands for another process.
	other, err := FromFiles(dupAll(t, files))
	require.NoError(t, err)
	defer other.Close()
	ok, err := r.Hold(7)
	require.NoError(t, err)
	require.True(t, ok)
	alive, err := other.Alive(7)
	require.NoError(t, err)
	assert.True(t, alive)
	ok, err = other.Hold(7)
	require.NoError(t, err)
	assert.False(t, ok, "held by the other")
	alive, err = r.Alive(7)
	require.NoError(t, err)
	assert.False(t, alive, "a process's own locks never show")
	require.NoError(t, r.Drop(7))
	alive, err = other.Alive(7)
	require.NoError(t, err)
	assert.False(t, alive)
	ok, err = r.Hold(8)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, r.Close())
	alive, err = other.Alive(8)
	require.NoError(t, err)
	assert.False(t, alive, "Close drops them, as death does")
}

func dupAll(t *testing.T, files []*os.File) []*os.File {
	t.Helper()
	var out []*os.File
	for _, f := range files {
		d, err := fd.Dup(f, f.Name())
		require.NoError(t, err)
		out = append(out, d)
	}
	return out
}

func TestWaitAndClose(t *testing.T) {
	testproc.CheckFDs(t)
	r := newT(t, "0")
	got := make(chan error, 1)
	go func() {
		got <- r.Wait(context.Background(), func(b []byte) (bool, error) { return string(b) == "1", nil })
	}()
	set(t, r, "1")
	require.NoError(t, <-got)
	go func() {
		got <- r.Wait(context.Background(), func(b []byte) (bool, error) { return false, nil })
	}()
	require.NoError(t, r.Close())
	assert.ErrorIs(t, <-got, ErrClosed)
	_, err := r.Load(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, r.Update(context.Background(), nil), ErrClosed)
}

// FuzzCopies puts arbitrary bytes in both copies: Load returns the data of
// a copy whose CRC matches, or ErrCorrupt, and never panics.
func FuzzCopies(f *testing.F) {
	valid := func(seq uint64, data string) []byte {
		b := make([]byte, headerLen+len(data))
		copy(b[0:4], magic[:])
		binary.BigEndian.PutUint64(b[8:16], seq)
		binary.BigEndian.PutUint64(b[16:24], uint64(len(data)))
		copy(b[headerLen:], data)
		binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], castagnoli))
		return b
	}
	f.Add(valid(1, "a"), valid(2, "b"))
	f.Add(valid(3, "a"), []byte("mprc\x00\x00\x00\x00"))
	f.Add([]byte{}, valid(1, "xyz"))
	f.Add(valid(1, "a")[:10], valid(1, "abcdefgh")[:30])
	f.Fuzz(func(t *testing.T, c0, c1 []byte) {
		r, err := New("fuzz", nil, nil)
		require.NoError(t, err)
		defer r.Close()
		for i, c := range [][]byte{c0, c1} {
			b := make([]byte, max(len(c), headerLen+8))
			copy(b, c)
			_, err := unix.Pwrite(r.own, b, int64(i)*copyStride)
			require.NoError(t, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := r.Load(ctx)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		ok := false
		for _, c := range [][]byte{c0, c1} {
			if len(c) >= headerLen+len(got) && string(c[headerLen:headerLen+len(got)]) == string(got) {
				ok = true
			}
		}
		assert.True(t, ok, "Load returned data that is in neither copy")
	})
}
