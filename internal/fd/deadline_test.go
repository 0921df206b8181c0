package fd

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWatchDeadline(t *testing.T) {
	r, w, err := Pipe("watch")
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()

	// ctx ends while Read is blocked: Read returns, stop reports it and
	// clears the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	stop := WatchDeadline(ctx, r.SetReadDeadline)
	_, err = r.Read(make([]byte, 1))
	assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "read interrupted by the deadline, got %v", err)
	assert.True(t, stop(), "stop reports that ctx ended")
	_, err = w.Write([]byte{1})
	require.NoError(t, err)
	n, err := r.Read(make([]byte, 1))
	assert.NoError(t, err, "the deadline was cleared")
	assert.Equal(t, 1, n)

	// Stopped before ctx ends: later cancellation sets no deadline.
	ctx2, cancel2 := context.WithCancel(context.Background())
	stop = WatchDeadline(ctx2, r.SetReadDeadline)
	assert.False(t, stop())
	cancel2()
	_, err = w.Write([]byte{2})
	require.NoError(t, err)
	_, err = r.Read(make([]byte, 1))
	assert.NoError(t, err, "a watch stopped before ctx ended leaves no deadline")

	// A ctx that can never end costs nothing and reports false.
	assert.False(t, WatchDeadline(context.Background(), r.SetReadDeadline)())
}
