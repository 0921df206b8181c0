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

// TestProgram builds this example and runs it as a user would.
func TestProgram(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err, "the go command (go test puts it on PATH)")
	bin := filepath.Join(t.TempDir(), "pool-progress")
	build := exec.Command(goCmd, "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "go build")

	cmd := exec.Command(bin, "-n", "60", "-workers", "2", "-chunk", "3")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "the example exits cleanly; its output:\n%s", out)
	s := string(out)
	assert.Contains(t, s, "\r[........................................]   0% 0/60", "the bar starts empty")
	assert.Contains(t, s, "\r[########################################] 100% 60/60", "the bar ends full")
	assert.GreaterOrEqual(t, strings.Count(s, "\r["), 5, "the bar is redrawn as chunks finish:\n%q", s)
	assert.Contains(t, s, "rendered 60 tiles in ")
	assert.Contains(t, s, "on 2 workers (2 processes served tasks)")
}
