package semaphore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Acquire+Release with no contention: two record updates and the holder's
// byte lock taken and dropped.
func BenchmarkAcquireRelease(b *testing.B) {
	s, err := New(1)
	require.NoError(b, err)
	defer s.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := s.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Release(); err != nil {
			b.Fatal(err)
		}
	}
}
