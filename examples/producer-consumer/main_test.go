package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestProgram builds the example, runs it as a user would and checks from
// its output that every job was done by exactly one worker.
func TestProgram(t *testing.T) {
	out := testproc.RunExample(t, nil, "-workers", "3", "-jobs", "30")
	assert.Regexp(t, `^started 3 workers sharing a joinable.Queue of jobs and a queue.Queue of reports\n`+
		`put 30 jobs\n`+
		`Join returned after \S+: every job has had its TaskDone\n`+
		`put 3 sentinels \(nil jobs\), one per worker\n`+
		`all 3 workers exited cleanly\n`, out)
	assert.True(t, strings.HasSuffix(out, "total: 30 jobs, each done exactly once\n"), "the summary ends the output:\n%s", out)

	// Check the summary's claim ourselves from the per-worker lines.
	lines := regexp.MustCompile(`(?m)^  worker (\d) \(pid \d+\) did +(\d+) jobs: \[([\d ]*)\]$`).FindAllStringSubmatch(out, -1)
	require.Len(t, lines, 3, "one summary line per worker:\n%s", out)
	done := make(map[int]int)
	for i, l := range lines {
		assert.Equal(t, strconv.Itoa(i+1), l[1], "workers in order")
		ids := strings.Fields(l[3])
		assert.Equal(t, l[2], strconv.Itoa(len(ids)), "worker %s's count matches its list", l[1])
		for _, id := range ids {
			n, err := strconv.Atoi(id)
			require.NoError(t, err)
			done[n]++
		}
	}
	for id := range 30 {
		assert.Equal(t, 1, done[id], "job %d done exactly once", id)
	}
	assert.Len(t, done, 30, "no job outside 0..29")
}

// TestNoJobs: Join with nothing put returns at once, and the workers still
// shut down on their sentinels.
func TestNoJobs(t *testing.T) {
	out := testproc.RunExample(t, nil, "-workers", "2", "-jobs", "0")
	assert.Contains(t, out, "put 2 sentinels")
	assert.Contains(t, out, "all 2 workers exited cleanly")
	assert.Contains(t, out, "total: 0 jobs, each done exactly once")
}
