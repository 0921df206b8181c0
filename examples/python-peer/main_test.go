package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestProgram builds this example and runs it as a user would, against a
// real python3 with msgpack.
func TestProgram(t *testing.T) {
	python := testproc.Python(t)
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err, "the go command (go test puts it on PATH)")
	bin := filepath.Join(t.TempDir(), "python-peer")
	build := exec.Command(goCmd, "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "go build")

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "MPROC_PYTHON="+python)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "the example exits cleanly; its output:\n%s", out)
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
		assert.Contains(t, string(out), want, "the example's output")
	}
	assert.Equal(t, 9, strings.Count(string(out), "\n"), "one line per step:\n%s", out)
}
