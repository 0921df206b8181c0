package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

var jobLine = regexp.MustCompile(`^  \[(.+), pid (\d+)\] job (\d+): (begin|end, (\d+)² = (\d+))$`)

// TestProgram builds the example and runs it as a user would. In both
// scenarios each job's two lines are printed together (the lock works
// across processes) and the queue brings back the ten squares.
func TestProgram(t *testing.T) {
	out := testproc.RunExample(t, nil)
	poolHead := "A pool of 3 processes that inherited the lock and the queues when they started (Python's scenarios 1 and 2):\n"
	perJobHead := "One process per job, at most 3 at a time, each inheriting the lock and the result queue when it starts (Python's scenarios 3 and 4):\n"
	require.True(t, strings.HasPrefix(out, poolHead), "output:\n%s", out)
	pool, perJob, ok := strings.Cut(strings.TrimPrefix(out, poolHead), perJobHead)
	require.True(t, ok, "the second scenario follows the first:\n%s", out)

	const squares = "[0 1 4 9 16 25 36 49 64 81]"
	poolPids := checkJobs(t, pool, `pool worker [1-3]`, []string{
		`^  the queue brought back 10 results from [1-3] processes: ` + regexp.QuoteMeta(squares) + `$`,
		`^  3 processes ran, all at once, and exited cleanly$`,
		`^$`,
	})
	assert.LessOrEqual(t, poolPids, 3, "the pool has 3 processes")
	jobPids := checkJobs(t, perJob, `process for job \d`, []string{
		`^  the queue brought back 10 results from 10 processes: ` + regexp.QuoteMeta(squares) + `$`,
		`^  10 processes ran, at most [1-3] at once, and exited cleanly$`,
	})
	assert.Equal(t, 10, jobPids, "one process per job")
}

// checkJobs checks one scenario's output: ten jobs, each a begin line
// followed at once by its end line from the same process, then the summary
// lines matching tail. It returns how many processes did jobs.
func checkJobs(t *testing.T, section, who string, tail []string) int {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(section, "\n"), "\n")
	require.Len(t, lines, 20+len(tail), "20 job lines and the summary:\n%s", section)
	whoRE := regexp.MustCompile(`^` + who + `$`)
	jobs := make(map[string]bool)
	pids := make(map[string]bool)
	for i := 0; i < 20; i += 2 {
		begin, end := jobLine.FindStringSubmatch(lines[i]), jobLine.FindStringSubmatch(lines[i+1])
		require.NotNil(t, begin, "a job line: %q", lines[i])
		require.NotNil(t, end, "a job line: %q", lines[i+1])
		assert.Regexp(t, whoRE, begin[1], "who did the job")
		assert.Equal(t, "begin", begin[4], "line %d begins a job:\n%s", i, section)
		assert.Equal(t, begin[1:4], end[1:4], "the lock keeps a job's two lines together:\n%s", section)
		assert.Equal(t, begin[3], end[5], "job %s's end line", begin[3])
		if strings.HasPrefix(begin[1], "process for job ") {
			assert.Equal(t, "process for job "+begin[3], begin[1], "each process does its own job")
		}
		assert.False(t, jobs[begin[3]], "job %s done once", begin[3])
		jobs[begin[3]] = true
		pids[begin[2]] = true
	}
	assert.Len(t, jobs, 10, "ten jobs")
	for i, re := range tail {
		assert.Regexp(t, re, lines[20+i])
	}
	return len(pids)
}
