package frame

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 4096, MaxShortLen} {
		h := AppendHeader(nil, n)
		assert.Len(t, h, HeaderLen(n))
		got, long, ok := ParseShort(h)
		assert.True(t, ok)
		assert.False(t, long)
		assert.Equal(t, int64(n), got)
		var b [HeaderSize]byte
		PutShort(b[:], n)
		assert.Equal(t, h, b[:], "PutShort writes what AppendHeader appends")
	}
	h := AppendHeader(nil, MaxShortLen+1)
	assert.Len(t, h, LongHeaderSize)
	_, long, ok := ParseShort(h)
	assert.True(t, ok && long, "a long header")
	assert.Equal(t, uint64(MaxShortLen+1), LongLen(h[HeaderSize:]))
	_, _, ok = ParseShort([]byte{0xff, 0xff, 0xff, 0xfe})
	assert.False(t, ok, "-2 is no header")
}

func TestNext(t *testing.T) {
	p := append(AppendHeader(nil, 3), "abc"...)
	p = append(p, AppendHeader(nil, 0)...)
	start, end, ok := Next(p, 0)
	assert.True(t, ok)
	assert.Equal(t, "abc", string(p[start:end]))
	start, end, ok = Next(p, end)
	assert.True(t, ok)
	assert.Equal(t, start, end)
	_, _, ok = Next(p, end)
	assert.False(t, ok, "nothing left")
	for _, bad := range [][]byte{
		{0, 0, 0},                     // a cut header
		{0, 0, 0, 5, 'a'},             // a cut payload
		{0xff, 0xff, 0xff, 0xff, 0},   // a long header
		{0x80, 0, 0, 0, 1, 2, 3},      // negative
		bytes.Repeat([]byte{0xff}, 8), // -1 then garbage
	} {
		_, _, ok := Next(bad, 0)
		assert.False(t, ok, "%x", bad)
	}
}
