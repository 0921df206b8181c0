package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestProgram builds this example and runs it as a user would, against a
// real python3 with msgpack.
func TestProgram(t *testing.T) {
	python := testproc.Python(t)
	out := testproc.RunExample(t, []string{"MPROC_PYTHON=" + python})
	for _, want := range []string{
		"started " + python + " with one end of a pipe.Duplex",
		"greeting from python 3.",
		"Python saw dict with keys born, langs, name, photo, ratio, echoed it back intact",
		"Python saw str of length 16, echoed it back intact",
		"Python saw bytes of length 5242880, echoed it back intact",
		"got a payload of 0 bytes back",
		"decoded into a Go struct: {Name:Grace Hopper Born:1906 Langs:[COBOL FLOW-MATIC]",
		`"Grüße aus Python 🐍, 日本語"`,
		`Python said "peer: EOF after 6 messages" and exited cleanly`,
	} {
		assert.Contains(t, out, want, "the example's output")
	}
	assert.Equal(t, 9, strings.Count(out, "\n"), "one line per step:\n%s", out)
}
