package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

var resultLine = regexp.MustCompile(`(?m)^task +(\d+) = +(\d+)  from worker (\d)$`)

// TestProgram builds the example and runs it as a user would: a worker is
// killed while it holds a task, that task is done by another worker, and
// every task has exactly one result.
func TestProgram(t *testing.T) {
	out := testproc.RunExample(t, nil, "-workers", "3", "-tasks", "12", "-kill-after", "4")
	require.True(t, strings.HasPrefix(out, "started 3 workers, each with its own task connection, all sharing one results queue\n"), "output:\n%s", out)

	kill := regexp.MustCompile(`(?m)^killing worker (\d) \(pid \d+\) while it holds task (\d+)$`).FindStringSubmatchIndex(out)
	require.NotNil(t, kill, "a worker is killed:\n%s", out)
	victim, task := out[kill[2]:kill[3]], out[kill[4]:kill[5]]
	after := out[kill[1]:]
	assert.Regexp(t, fmt.Sprintf(`(?m)^worker %s is gone: .*signal: killed$`, victim), after, "the parent notices the death")
	assert.Regexp(t, fmt.Sprintf(`(?m)^task +%s goes back to the pending tasks$`, task), after, "the dead worker's task is handed back")

	// Exactly one kept result per task, each right, the killed task's from
	// another worker.
	results := make(map[int]int)
	for _, m := range resultLine.FindAllStringSubmatch(out, -1) {
		id, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		assert.Equal(t, id*id, v, "task %d's result", id)
		results[id]++
		if m[1] == task {
			assert.NotEqual(t, victim, m[3], "task %s done by a living worker", task)
		}
	}
	for id := range 12 {
		assert.Equal(t, 1, results[id], "task %d has one result line", id)
	}
	assert.Len(t, results, 12)
	assert.Equal(t, 2, strings.Count(out, "exited cleanly\n"), "the two other workers exit cleanly:\n%s", out)
	assert.Regexp(t, `12 tasks, 12 results kept, one per task:( worker \d did \d+;){3}\n$`, out)
}

// TestNoKill: without a death, every worker exits cleanly and nothing is
// handed back.
func TestNoKill(t *testing.T) {
	out := testproc.RunExample(t, nil, "-workers", "2", "-tasks", "6", "-kill-after", "-1")
	assert.NotContains(t, out, "killing")
	assert.NotContains(t, out, "goes back")
	assert.Len(t, resultLine.FindAllString(out, -1), 6, "one result per task:\n%s", out)
	assert.Equal(t, 2, strings.Count(out, "exited cleanly\n"), "output:\n%s", out)
	assert.Contains(t, out, "6 tasks, 6 results kept, one per task:")
}
