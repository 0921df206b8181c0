package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestProgram builds this example and runs it as a user would: its Go
// server, its Go client and its Python clients (a real python3 with
// msgpack).
func TestProgram(t *testing.T) {
	python := testproc.Python(t)
	out := testproc.RunExample(t, []string{"MPROC_PYTHON=" + python})
	want := []string{
		"server: listening on a unix socket, with a random authkey",
		"go client: squares [1, 4, 9] from go server",
		"python client: squares [16, 25, 36] from go server",
		"python client: AuthenticationError: digest sent was rejected",
		"server: served 2 clients; the one with the wrong key never reached Accept",
	}
	assert.Equal(t, strings.Join(want, "\n")+"\n", out, "the example's output")
}
