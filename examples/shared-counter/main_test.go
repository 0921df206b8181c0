package main

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

var counterLine = regexp.MustCompile(`(?m)^counter = (\d+) \(200 expected\)$`)

func counter(t *testing.T, out string) int {
	t.Helper()
	m := counterLine.FindStringSubmatch(out)
	require.NotNil(t, m, "the program prints the counter:\n%s", out)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// With the lock, no update is lost, run after run.
func TestWithLock(t *testing.T) {
	for range 3 {
		out := testproc.RunExample(t, nil)
		assert.Equal(t, 200, counter(t, out), "every update counted:\n%s", out)
		assert.Contains(t, out, "no update lost")
	}
}

// Without the lock, updates are lost. This is certain enough to assert:
// the workers leave the starting gate together and each holds a read
// value for a millisecond before writing it back plus one, so 10 workers
// doing 20 updates each overlap constantly (runs print 20 to 50, never
// near 200); a count of 200 would need every update to miss every other
// worker's window.
func TestWithoutLock(t *testing.T) {
	out := testproc.RunExample(t, nil, "-nolock")
	n := counter(t, out)
	assert.Less(t, n, 200, "updates lost without the lock:\n%s", out)
	assert.Positive(t, n)
	assert.Regexp(t, `(?m)^\d+ updates lost: `, out)
}
