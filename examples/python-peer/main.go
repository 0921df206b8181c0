// Command python-peer shows a Go program and a Python program exchanging
// messages over an mproc connection.
//
// It starts peer.py (embedded in this program) with one end of a
// pipe.Duplex shared under the name "peer". Python finds the descriptor in
// the MPROC_FDS environment variable, wraps it in
// multiprocessing.connection.Connection and encodes with msgpack: the
// frames are the same on both sides, so a Go struct arrives as a Python
// dict and a Python dict decodes into a Go struct.
//
//	go run ./examples/python-peer
//
// It needs a python3 that can import msgpack (Debian: apt-get install
// python3-msgpack). It tries $MPROC_PYTHON, then /usr/bin/python3, then
// python3 on PATH.
package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/pipe"
)

//go:embed peer.py
var peerPy string

// Person is the Go side of a Python dict with the same keys.
type Person struct {
	Name  string   `msgpack:"name"`
	Born  int      `msgpack:"born"`
	Langs []string `msgpack:"langs"`
	Photo []byte   `msgpack:"photo"`
	Ratio float64  `msgpack:"ratio"`
}

// reply is peer.py's answer to a value: what Python saw, and the value.
type reply struct {
	Type  string             `msgpack:"type"`
	Len   int                `msgpack:"len"`
	Keys  []string           `msgpack:"keys"`
	Value msgpack.RawMessage `msgpack:"value"`
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "python-peer:", err)
		os.Exit(1)
	}
}

// findPython returns a python3 that can import msgpack.
func findPython() (string, error) {
	for _, p := range []string{os.Getenv("MPROC_PYTHON"), "/usr/bin/python3", "python3"} {
		if p != "" && exec.Command(p, "-c", "import msgpack, multiprocessing.connection").Run() == nil {
			return p, nil
		}
	}
	return "", errors.New("no python3 that can import msgpack: install python3-msgpack (apt-get install python3-msgpack) or set MPROC_PYTHON")
}

func run(out io.Writer) error {
	python, err := findPython()
	if err != nil {
		return err
	}
	ours, theirs, err := pipe.Duplex()
	if err != nil {
		return err
	}
	defer ours.Close()

	cmd := exec.Command(python, "-c", peerPy, "peer")
	var peerOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &peerOut, os.Stderr
	if err := theirs.Share(cmd, "peer"); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// Close our copy of Python's end: otherwise we would never see EOF
	// if Python died.
	theirs.Close()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	fmt.Fprintf(out, "started %s with one end of a pipe.Duplex shared as %q\n", python, "peer")

	var hello struct {
		Hello   string `msgpack:"hello"`
		Version string `msgpack:"version"`
		Pid     int    `msgpack:"pid"`
	}
	if err := ours.Recv(&hello); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	fmt.Fprintf(out, "greeting from %s %s, pid %d\n", hello.Hello, hello.Version, hello.Pid)

	// Go values to Python and back.
	ada := Person{Name: "Ada Lovelace", Born: 1815, Langs: []string{"Analytical Engine"}, Photo: []byte{0, 1, 2}, Ratio: 0.5}
	var back Person
	if err := ask(ours, ada, &back, out, "Go struct"); err != nil {
		return err
	}
	if !equalPerson(ada, back) {
		return fmt.Errorf("the struct came back as %+v", back)
	}
	var s string
	if err := ask(ours, "héllo, wörld, 世界", &s, out, "non-ASCII string"); err != nil {
		return err
	}
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	var bigBack []byte
	if err := ask(ours, big, &bigBack, out, "5 MiB []byte"); err != nil {
		return err
	}
	if !bytes.Equal(big, bigBack) {
		return errors.New("the 5 MiB payload came back different")
	}

	// An empty payload (no msgpack at all) both ways.
	if err := ours.SendBytes(nil); err != nil {
		return err
	}
	p, err := ours.RecvBytes()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sent an empty payload           -> got a payload of %d bytes back\n", len(p))

	// Values Python made itself.
	var grace Person
	if err := ours.Send(map[string]any{"op": "make", "what": "dict"}); err != nil {
		return err
	}
	if err := ours.Recv(&grace); err != nil {
		return err
	}
	fmt.Fprintf(out, "asked Python for a dict         -> decoded into a Go struct: %+v\n", grace)
	if err := ours.Send(map[string]any{"op": "make", "what": "str"}); err != nil {
		return err
	}
	if err := ours.Recv(&s); err != nil {
		return err
	}
	fmt.Fprintf(out, "asked Python for a str          -> %q\n", s)

	// Closing our end is EOF for Python, which exits.
	if err := ours.Close(); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("python: %w", err)
	}
	fmt.Fprintf(out, "closed our end                  -> Python said %q and exited cleanly\n", strings.TrimSpace(peerOut.String()))
	return nil
}

// ask sends v, receives peer.py's description of it and decodes the echoed
// value into back.
func ask(c *conn.Conn, v, back any, out io.Writer, what string) error {
	if err := c.Send(v); err != nil {
		return fmt.Errorf("send %s: %w", what, err)
	}
	var r reply
	if err := c.Recv(&r); err != nil {
		return fmt.Errorf("receive the answer to %s: %w", what, err)
	}
	if err := msgpack.Unmarshal(r.Value, back); err != nil {
		return fmt.Errorf("decode the echo of %s: %w", what, err)
	}
	seen := r.Type
	if r.Keys != nil {
		seen += " with keys " + strings.Join(r.Keys, ", ")
	} else {
		seen += fmt.Sprintf(" of length %d", r.Len)
	}
	fmt.Fprintf(out, "sent %-26s -> Python saw %s, echoed it back intact\n", what, seen)
	return nil
}

func equalPerson(a, b Person) bool {
	return a.Name == b.Name && a.Born == b.Born && a.Ratio == b.Ratio &&
		bytes.Equal(a.Photo, b.Photo) && strings.Join(a.Langs, "\x00") == strings.Join(b.Langs, "\x00")
}
