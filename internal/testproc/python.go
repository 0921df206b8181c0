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
// installs) and python3 on PATH. With none, the test is skipped with a
// message saying what to install, so that `go test ./...` works on a fresh
// machine; but under CI (CI set to anything but "" or "false") it fails
// instead: .ci/run installs python3-msgpack, and a skipped interop test
// would prove nothing there.
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
		const msg = "no python3 that can import msgpack: apt-get install python3-msgpack, or set MPROC_PYTHON"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatal(msg + " (CI must run the Python interop tests)")
		}
		t.Skip(msg + "; skipping the Python interop test")
	}
	return python.path
}
