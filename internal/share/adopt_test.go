package share

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestAdopt(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer w.Close()
	d, err := unix.Dup(int(r.Fd()))
	require.NoError(t, err)
	r.Close()

	require.NoError(t, Adopt("adopted", "thing", []int{d}))
	assert.Contains(t, Names(), "adopted")
	obj, err := Inherit("adopted", "thing", func(files []*os.File) (any, error) {
		require.Len(t, files, 1)
		return files[0], nil
	})
	require.NoError(t, err, "Inherit builds what was adopted")

	assert.ErrorIs(t, Adopt("adopted", "thing", []int{d + 1000}), ErrNameTaken)
	assert.ErrorIs(t, Adopt("bad name!", "thing", []int{d + 1000}), ErrBadName)

	// The object is closed and the kernel hands its number out again: an
	// entry listing it is stale, so the name is free for the new one.
	require.NoError(t, obj.(*os.File).Close())
	require.NoError(t, Adopt("newer", "thing", []int{d}))
	_, ok := Lookup("adopted")
	assert.False(t, ok, "the stale entry is gone")
	e, ok := Lookup("newer")
	require.True(t, ok)
	assert.Equal(t, Entry{Name: "newer", Kind: "thing", FDs: []int{d}}, e)
	_, err = Inherit("adopted", "thing", nil)
	assert.ErrorIs(t, err, ErrNotInherited)

	// The name of an object whose descriptors are all closed is free too.
	unix.Close(d)
	require.NoError(t, Adopt("newer", "thing", []int{d + 1000}))
	e, _ = Lookup("newer")
	assert.Equal(t, []int{d + 1000}, e.FDs)
}
