package conn_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/pipe"
)

// These tests talk to examples/python-peer/peer.py, run by a real python3
// whose multiprocessing.connection.Connection reads and writes the frames.

// pyPerson matches peer.py's DICT.
type pyPerson struct {
	Name  string   `msgpack:"name"`
	Born  int      `msgpack:"born"`
	Langs []string `msgpack:"langs"`
	Photo []byte   `msgpack:"photo"`
	Ratio float64  `msgpack:"ratio"`
}

// pyReply is peer.py's description of a value it received.
type pyReply struct {
	Type  string             `msgpack:"type"`
	Len   *int               `msgpack:"len"`
	Keys  []string           `msgpack:"keys"`
	Value msgpack.RawMessage `msgpack:"value"`
}

type pyPeer struct {
	c   *conn.Conn
	cmd *exec.Cmd
	out *bytes.Buffer // peer.py's stdout; read it after wait
}

func startPython(t *testing.T) *pyPeer {
	t.Helper()
	python := testproc.Python(t)
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	p := &pyPeer{c: a, out: new(bytes.Buffer)}
	p.cmd = exec.Command(python, "../examples/python-peer/peer.py", "peer")
	p.cmd.Stdout, p.cmd.Stderr = p.out, os.Stderr
	require.NoError(t, b.Share(p.cmd, "peer"))
	require.NoError(t, p.cmd.Start(), "start %s", python)
	t.Cleanup(func() { testproc.Reap(p.cmd) })
	require.NoError(t, b.Close())

	var hello struct {
		Hello string `msgpack:"hello"`
		Pid   int    `msgpack:"pid"`
	}
	require.NoError(t, a.Recv(&hello), "Python's greeting")
	require.Equal(t, "python", hello.Hello)
	require.Equal(t, p.cmd.Process.Pid, hello.Pid, "the greeting comes from the python3 we started")
	return p
}

func (p *pyPeer) wait(t *testing.T) string {
	t.Helper()
	require.NoError(t, testproc.WaitTimeout(p.cmd, 10*time.Second), "peer.py exits cleanly")
	return p.out.String()
}

func TestPythonGoToPython(t *testing.T) {
	testproc.CheckFDs(t)
	p := startPython(t)
	ada := pyPerson{Name: "Ada Lovelace", Born: 1815, Langs: []string{"Analytical Engine"}, Photo: []byte{0, 0xff}, Ratio: 0.5}
	cases := []struct {
		name   string
		v      any
		pyType string
		pyLen  int // -1: no len()
		keys   []string
		into   func() any
	}{
		{"struct to dict", ada, "dict", 5, []string{"born", "langs", "name", "photo", "ratio"}, func() any { return new(pyPerson) }},
		{"map to dict", map[string]int{"ä": 1, "b": 2}, "dict", 2, []string{"b", "ä"}, func() any { return new(map[string]int) }},
		{"bytes", []byte{0, 1, 0x80, 0xff}, "bytes", 4, nil, func() any { return new([]byte) }},
		{"non-ASCII string", "héllo, wörld, 世界, 🎉", "str", 19, nil, func() any { return new(string) }},
		{"empty string", "", "str", 0, nil, func() any { return new(string) }},
		{"int", -1 << 40, "int", -1, nil, func() any { return new(int) }},
		{"float", 2.5, "float", -1, nil, func() any { return new(float64) }},
		{"list", []any{"a", int8(1), nil, true}, "list", 4, nil, func() any { return new([]any) }},
		{"over 16KiB", pattern(20<<10, 1), "bytes", 20 << 10, nil, func() any { return new([]byte) }},
		{"several MiB", pattern(5<<20, 2), "bytes", 5 << 20, nil, func() any { return new([]byte) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, p.c.Send(tc.v), "Send")
			var r pyReply
			require.NoError(t, p.c.Recv(&r), "Recv Python's reply")
			assert.Equal(t, tc.pyType, r.Type, "the type Python decoded")
			if tc.pyLen >= 0 {
				require.NotNil(t, r.Len, "len() in Python")
				assert.Equal(t, tc.pyLen, *r.Len, "len() in Python")
			}
			assert.Equal(t, tc.keys, r.Keys, "the keys of the dict Python saw")
			got, want := tc.into(), tc.into()
			require.NoError(t, msgpack.Unmarshal(r.Value, got), "decode Python's echo")
			b, err := msgpack.Marshal(tc.v)
			require.NoError(t, err)
			require.NoError(t, msgpack.Unmarshal(b, want))
			assert.Equal(t, want, got, "Python's echo decodes to what we sent")
		})
	}
	t.Run("empty payload", func(t *testing.T) {
		require.NoError(t, p.c.SendBytes(nil))
		got, err := p.c.RecvBytes()
		require.NoError(t, err)
		assert.Empty(t, got, "Python answers an empty payload with an empty payload")
	})
	require.NoError(t, p.c.Close())
	assert.Equal(t, "peer: EOF after 11 messages\n", p.wait(t))
}

func TestPythonToGo(t *testing.T) {
	testproc.CheckFDs(t)
	p := startPython(t)
	ask := func(what string, n int) {
		t.Helper()
		require.NoError(t, p.c.Send(map[string]any{"op": "make", "what": what, "n": n}))
	}
	t.Run("dict to struct", func(t *testing.T) {
		ask("dict", 0)
		var got pyPerson
		require.NoError(t, p.c.Recv(&got))
		assert.Equal(t, pyPerson{"Grace Hopper", 1906, []string{"COBOL", "FLOW-MATIC"}, []byte("\x89PNG\x00\xff"), 0.25}, got)
	})
	t.Run("non-ASCII string", func(t *testing.T) {
		ask("str", 0)
		var got string
		require.NoError(t, p.c.Recv(&got))
		assert.Equal(t, "Grüße aus Python 🐍, 日本語", got)
	})
	for _, n := range []int{0, 1, 16<<10 + 1, 3<<20 + 7} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			ask("bytes", n)
			var got []byte
			require.NoError(t, p.c.Recv(&got))
			require.Len(t, got, n)
			for i, b := range got {
				if b != byte(i%251) {
					t.Fatalf("byte %d of Python's %d is %d, want %d", i, n, b, i%251)
				}
			}
		})
	}
	t.Run("empty payload", func(t *testing.T) {
		ask("empty", 0)
		got, err := p.c.RecvBytes()
		require.NoError(t, err)
		assert.Empty(t, got)
	})
	t.Run("python closes", func(t *testing.T) {
		require.NoError(t, p.c.Send(map[string]string{"op": "close"}))
		var v any
		assert.ErrorIs(t, p.c.Recv(&v), io.EOF, "Python's close is io.EOF for us")
		assert.Equal(t, "peer: closing after 8 messages\n", p.wait(t))
	})
}

func TestPythonSeesEOF(t *testing.T) {
	testproc.CheckFDs(t)
	p := startPython(t)
	require.NoError(t, p.c.Close())
	assert.Equal(t, "peer: EOF after 0 messages\n", p.wait(t), "our Close is EOFError for Python")
}

func TestPythonKilled(t *testing.T) {
	testproc.CheckFDs(t)
	p := startPython(t)
	require.NoError(t, p.cmd.Process.Kill())
	var v any
	assert.ErrorIs(t, p.c.Recv(&v), io.EOF, "a killed Python is io.EOF")
	testproc.Reap(p.cmd)
}
