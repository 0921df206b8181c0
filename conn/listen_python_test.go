package conn_test

import (
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
)

// These tests run testdata/listen_peer.py with the real python3: its
// multiprocessing.connection.Client and Listener against our Listen and
// Dial, over AF_UNIX and AF_INET on the loopback.

var pyFamily = map[string]string{"unix": "AF_UNIX", "tcp": "AF_INET"}

func startPyPeer(t *testing.T, key []byte, args ...string) *testproc.Child {
	t.Helper()
	python := testproc.Python(t)
	cmd := exec.Command(python, append([]string{"testdata/listen_peer.py"}, args...)...)
	cmd.Env = append(os.Environ(), "MPROC_KEY="+hex.EncodeToString(key))
	cmd.Stderr = os.Stderr
	return testproc.StartLines(t, cmd)
}

func TestPythonClientToGoListener(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			testproc.CheckFDs(t)
			logger, rec := testproc.NewLogRecorder()
			l := listen(t, network, conn.WithAuthKey(testKey), conn.WithLogger(logger))
			ctx := ctxTimeout(t, 30*time.Second)

			// A wrong key: Python's Client raises AuthenticationError,
			// the Listener drops it and goes on.
			wrong := startPyPeer(t, []byte("not the key"), "client", pyFamily[network], l.Addr().String())
			assert.Equal(t, []string{"AuthenticationError: digest sent was rejected"}, wrong.Wait(t))
			waitFor(t, func() bool { return len(rec.Records("conn: Listener: client dropped")) == 1 }, "the listener reports the drop")
			assert.ErrorIs(t, rec.Records("")[0].Attrs["err"].(error), conn.ErrAuth)

			py := startPyPeer(t, testKey, "client", pyFamily[network], l.Addr().String())
			s, err := l.Accept(ctx)
			require.NoError(t, err, "Accept Python's client")
			defer s.Close()
			var p ping
			require.NoError(t, s.Recv(&p), "Python's send_bytes(msgpack.packb(...))")
			assert.Equal(t, ping{1, "python"}, p)
			require.NoError(t, s.Send(ping{2, "go"}))
			assert.Equal(t, []string{"reply 2 go"}, py.Wait(t), "Python decoded our Send")
			assert.ErrorIs(t, s.Recv(&p), io.EOF, "Python's close")
		})
	}
}

func TestGoDialToPythonListener(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			testproc.CheckFDs(t)
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "py.sock")
			}
			py := startPyPeer(t, testKey, "server", pyFamily[network], addr, "2")
			line := py.Line(t)
			require.True(t, strings.HasPrefix(line, "listening "), line)
			addr = strings.TrimPrefix(line, "listening ")
			ctx := ctxTimeout(t, 30*time.Second)

			_, err := conn.Dial(ctx, network, addr, conn.WithAuthKey([]byte("not the key")))
			assert.ErrorIs(t, err, conn.ErrAuth, "Dial with the wrong key")
			assert.Equal(t, "AuthenticationError: digest received was wrong", py.Line(t), "Python's accept raised")

			c, err := conn.Dial(ctx, network, addr, conn.WithAuthKey(testKey))
			require.NoError(t, err, "Dial Python's Listener")
			for i := range 3 {
				require.NoError(t, c.Send(ping{10 * i, "go"}))
				var p ping
				require.NoError(t, c.Recv(&p))
				assert.Equal(t, ping{10*i + 1, "python"}, p)
			}
			require.NoError(t, c.Close())
			assert.Equal(t, []string{"served 3"}, py.Wait(t))
		})
	}
}
