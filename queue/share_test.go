package queue_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/queue"
)

func init() {
	// inherit-twice: the same name gives the same *Queue for the same T,
	// and ErrWrongKind for another T.
	testproc.Register("inherit-twice", func() {
		a, err := queue.Inherit[int]("q")
		testproc.Check(err, "inherit")
		b, err := queue.Inherit[int]("q")
		testproc.Check(err, "inherit again")
		if a != b {
			testproc.Fatalf("a second Inherit returned another *Queue")
		}
		if _, err := queue.Inherit[string]("q"); !errors.Is(err, queue.ErrWrongKind) {
			testproc.Fatalf("Inherit with another item type: want ErrWrongKind, got %v", err)
		}
		testproc.Check(a.Close(), "close")
	})
}

func TestInheritTwice(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := queue.New[int](0)
	require.NoError(t, err)
	defer q.Close()
	cmd := testproc.Command(t, "inherit-twice")
	require.NoError(t, q.Share(cmd, "q"))
	require.NoError(t, cmd.Run(), "the child's checks pass")
}
