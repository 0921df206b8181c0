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

var summary = regexp.MustCompile(`(?m)^read back (\d+) lines: (\d+) whole, (\d+) torn$`)

func counts(t *testing.T, out string) (total, whole, torn int) {
	t.Helper()
	m := summary.FindStringSubmatch(out)
	require.NotNil(t, m, "the program prints a summary:\n%s", out)
	total, _ = strconv.Atoi(m[1])
	whole, _ = strconv.Atoi(m[2])
	torn, _ = strconv.Atoi(m[3])
	return total, whole, torn
}

// With the lock, every line is whole and in order (the program checks the
// order itself and fails otherwise).
func TestWithLock(t *testing.T) {
	out := testproc.RunExample(t, nil)
	total, whole, torn := counts(t, out)
	assert.Equal(t, 200, total, "8 workers x 25 lines:\n%s", out)
	assert.Equal(t, 200, whole)
	assert.Zero(t, torn, "no torn line under the lock:\n%s", out)
	assert.Contains(t, out, "every line whole")
}

// Without the lock, lines tear. Certain enough to assert: 8 workers leave
// the starting gate together and each line takes 10 writes with pauses
// between them, so the workers' writes interleave all the time (runs show
// nearly every line torn).
func TestWithoutLock(t *testing.T) {
	out := testproc.RunExample(t, nil, "-nolock")
	total, _, torn := counts(t, out)
	assert.Positive(t, torn, "torn lines without the lock:\n%s", out)
	assert.Positive(t, total)
	assert.Regexp(t, `(?m)^torn line \d+: "`, out, "shows a torn line")
}
