// Command listener shows processes that did not start each other talking
// through conn.Listen and conn.Dial, authenticated by Python's own authkey
// handshake: a Go server, a Go client and a Python client on one host.
//
// The server listens on a unix socket with a random authkey and answers
// each request with a square, serving every client in a goroutine of its
// own. It starts, one after the other, a Go client (this program again,
// with the argument "client") and a Python client (client.py, embedded,
// using multiprocessing.connection.Client), both with the key, then a
// Python client with a wrong key, which Python's Client refuses with
// AuthenticationError while the server goes on.
//
//	go run ./examples/listener
//
// The Python clients need a python3 that can import msgpack (Debian:
// apt-get install python3-msgpack); it tries $MPROC_PYTHON, then
// /usr/bin/python3, then python3 on PATH. On "tcp" the same code needs
// only another address: conn.Listen("tcp", "127.0.0.1:0", ...).
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mproc-go/mproc/conn"
)

//go:embed client.py
var clientPy string

// Request and Reply are the messages; Python sends and reads the same
// keys as dicts.
type Request struct {
	Who string `msgpack:"who"`
	N   int    `msgpack:"n"`
}

type Reply struct {
	N      int    `msgpack:"n"`
	Square int    `msgpack:"square"`
	Server string `msgpack:"server"`
}

const keyVar = "LISTENER_KEY"

func main() {
	var err error
	if len(os.Args) == 3 && os.Args[1] == "client" {
		err = goClient(os.Args[2])
	} else {
		err = run(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listener:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	dir, err := os.MkdirTemp("", "mproc-listener-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr := filepath.Join(dir, "server.sock")
	key := make([]byte, 32)
	rand.Read(key)

	l, err := conn.Listen("unix", addr, conn.WithAuthKey(key))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "server: listening on a unix socket, with a random authkey")
	served := serve(l)

	env := append(os.Environ(), keyVar+"="+hex.EncodeToString(key))
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := runClient(out, env, self, "client", addr); err != nil {
		return err
	}
	python, err := findPython()
	if err != nil {
		return err
	}
	script := filepath.Join(dir, "client.py")
	if err := os.WriteFile(script, []byte(clientPy), 0o600); err != nil {
		return err
	}
	if err := runClient(out, env, python, script, addr); err != nil {
		return err
	}
	wrong := append(os.Environ(), keyVar+"="+hex.EncodeToString([]byte("not the key")))
	if err := runClient(out, wrong, python, script, addr); err != nil {
		return err
	}

	// Close stops accepting; the server's goroutines end with their
	// clients, which have all gone.
	if err := l.Close(); err != nil {
		return err
	}
	n := <-served
	fmt.Fprintf(out, "server: served %d clients; the one with the wrong key never reached Accept\n", n)
	return nil
}

// serve accepts clients until l is closed and answers each in a goroutine
// of its own; it sends the number of clients served once all are done.
func serve(l *conn.Listener) <-chan int {
	done := make(chan int, 1)
	go func() {
		var wg sync.WaitGroup
		n := 0
		for {
			c, err := l.Accept(context.Background())
			if err != nil {
				break // conn.ErrClosed
			}
			n++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					var req Request
					if err := c.Recv(&req); err != nil {
						return // io.EOF: the client is done
					}
					if err := c.Send(Reply{N: req.N, Square: req.N * req.N, Server: "go server"}); err != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		done <- n
	}()
	return done
}

// runClient runs one client to its end and copies its output.
func runClient(out io.Writer, env []string, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	out.Write(b)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// goClient is the Go client: this program with the argument "client".
func goClient(addr string) error {
	key, err := hex.DecodeString(os.Getenv(keyVar))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := conn.Dial(ctx, "unix", addr, conn.WithAuthKey(key))
	if errors.Is(err, conn.ErrAuth) {
		fmt.Println("go client: the server refused our key")
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	var squares []int
	var rep Reply
	for _, n := range []int{1, 2, 3} {
		if err := c.SendContext(ctx, Request{Who: "go", N: n}); err != nil {
			return err
		}
		if err := c.RecvContext(ctx, &rep); err != nil {
			return err
		}
		squares = append(squares, rep.Square)
	}
	fmt.Printf("go client: squares %v from %s\n", strings.Join(strings.Fields(fmt.Sprint(squares)), ", "), rep.Server)
	return nil
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
