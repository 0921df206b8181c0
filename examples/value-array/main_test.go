package main

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// The child's changes are what the parent reads back.
func TestProgram(t *testing.T) {
	out := testproc.RunExample(t, nil)
	assert.Equal(t, "3.1415927\n[0 -1 -2 -3 -4 -5 -6 -7 -8 -9]\n", out)
}
