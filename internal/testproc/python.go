package testproc

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

var python struct {
	once sync.Once
	path string
}

// Python returns a python3 interpreter that can import msgpack, trying
// $MPROC_PYTHON, /usr/bin/python3 (Debian's, where python3-msgpack
// installs) and python3 on PATH. With none, the test fails: .ci/run
// installs python3-msgpack, and a silently skipped interop test would
// prove nothing. Set MPROC_SKIP_PYTHON=1 to skip instead.
func Python(t testing.TB) string {
	t.Helper()
	python.once.Do(func() {
		for _, p := range []string{os.Getenv("MPROC_PYTHON"), "/usr/bin/python3", "python3"} {
			if p == "" {
				continue
			}
			if exec.Command(p, "-c", "import msgpack, multiprocessing.connection").Run() == nil {
				python.path = p
				return
			}
		}
	})
	if python.path == "" {
		if os.Getenv("MPROC_SKIP_PYTHON") == "1" {
			t.Skip("no python3 with msgpack (MPROC_SKIP_PYTHON=1)")
		}
		t.Fatal("no python3 that can import msgpack: install python3-msgpack (apt-get install python3-msgpack) or set MPROC_PYTHON")
	}
	return python.path
}
