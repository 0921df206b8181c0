package value

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Update with no contention: flock, two preads, pwrite, flock(LOCK_UN), the
// wake write, and msgpack both ways.
func BenchmarkUpdate(b *testing.B) {
	v, err := New(0)
	require.NoError(b, err)
	defer v.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Update(ctx, func(x int) int { return x + 1 }); err != nil {
			b.Fatal(err)
		}
	}
}

// Load: two preads and a decode, no lock.
func BenchmarkLoad(b *testing.B) {
	v, err := New(0)
	require.NoError(b, err)
	defer v.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Load(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
