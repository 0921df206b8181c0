package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestProgram builds the example and runs it as a user would.
func TestProgram(t *testing.T) {
	out := testproc.RunExample(t, nil, "-n", "2000")
	assert.Regexp(t, `^parent \d+: started child \d+ running pong, sharing one end of a pipe.Duplex as "ball"\n`+
		`first answer after \S+, the child's start included\n`+
		`2000 round trips in \S+, every answer was the number sent plus one\n`+
		`round trip: min \S+  p50 \S+  p99 \S+  max \S+\n`+
		`closed our end: the child saw EOF, returned, and exited cleanly\n$`, out)
	assert.NotRegexp(t, regexp.MustCompile(`min 0s|p50 0s`), out, "round trips take some time")
}
