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

var counterLine = regexp.MustCompile(`(?m)^counter = (\d+)`)

func counters(t *testing.T, out string) []int {
	t.Helper()
	var ns []int
	for _, m := range counterLine.FindAllStringSubmatch(out, -1) {
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		ns = append(ns, n)
	}
	return ns
}

// With Update, 200 every time, five runs out of five.
func TestUpdate(t *testing.T) {
	out := testproc.RunExample(t, nil)
	assert.Equal(t, []int{200, 200, 200, 200, 200}, counters(t, out), "output:\n%s", out)
	assert.NotContains(t, out, "lost")
}

// Load then Store loses updates, as Python's counter.value += 1 without the
// lock does: ten processes overlap constantly, each holding a read value
// for a millisecond before writing it back plus one.
func TestLoadThenStore(t *testing.T) {
	out := testproc.RunExample(t, nil, "-loadstore", "-runs", "1")
	ns := counters(t, out)
	require.Len(t, ns, 1, "output:\n%s", out)
	assert.Less(t, ns[0], 200)
	assert.Regexp(t, `updates lost\)`, out)
}
