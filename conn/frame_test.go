package conn_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
)

func TestAppendHeader(t *testing.T) {
	cases := []struct {
		n    int
		want string // hex
	}{
		{0, "00000000"},
		{1, "00000001"},
		{16 << 10, "00004000"},
		{0x7fffffff, "7fffffff"},
		{0x80000000, "ffffffff0000000080000000"},
		{0xffffffff, "ffffffff00000000ffffffff"},
		{1 << 40, "ffffffff0000010000000000"},
	}
	for _, tc := range cases {
		h := conn.AppendHeader(nil, tc.n)
		assert.Equal(t, tc.want, hex.EncodeToString(h), "AppendHeader(nil, %#x)", tc.n)
		assert.Equal(t, len(h), conn.HeaderLen(tc.n), "HeaderLen(%#x)", tc.n)
		prefixed := conn.AppendHeader([]byte("ab"), tc.n)
		assert.Equal(t, append([]byte("ab"), h...), prefixed, "AppendHeader appends to dst")
	}
}

func TestReadFrame(t *testing.T) {
	var stream []byte
	payloads := [][]byte{[]byte("one"), {}, pattern(3<<20+5, 1), []byte("héllo 世界"), pattern(16<<10+1, 2)}
	for _, p := range payloads {
		stream = append(stream, frame(p)...)
	}
	stream = append(stream, longFrame([]byte("long"))...)
	payloads = append(payloads, []byte("long"))
	readers := map[string]func([]byte) io.Reader{
		"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			r := mk(stream)
			br, whole := r.(*bytes.Reader)
			for i, want := range payloads {
				got, err := conn.ReadFrame(r, 0, nil)
				require.NoError(t, err, "frame %d", i)
				require.True(t, bytes.Equal(want, got), "frame %d: want %d bytes, got %d", i, len(want), len(got))
				if whole && i == 0 {
					assert.Equal(t, len(stream)-len(frame(want)), br.Len(), "ReadFrame reads exactly its frame and nothing more")
				}
			}
			_, err := conn.ReadFrame(r, 0, nil)
			assert.ErrorIs(t, err, io.EOF, "the end of the stream between frames")
		})
	}
}

func TestReadFrameBuffer(t *testing.T) {
	buf := make([]byte, 0, 64)
	got, err := conn.ReadFrame(bytes.NewReader(frame([]byte("fits"))), 0, buf)
	require.NoError(t, err)
	assert.Equal(t, "fits", string(got))
	assert.Equal(t, &buf[:1][0], &got[0], "a payload that fits is read into buf")
	got, err = conn.ReadFrame(bytes.NewReader(frame(pattern(100, 1))), 0, buf)
	require.NoError(t, err)
	assert.Equal(t, pattern(100, 1), got, "a payload that does not fit gets its own buffer")
}

func TestReadFrameErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		max  int64
		want error
	}{
		{"empty", nil, 0, io.EOF},
		{"short header", []byte{0, 0, 1}, 0, io.ErrUnexpectedEOF},
		{"short payload", []byte{0, 0, 0, 5, 'a'}, 0, io.ErrUnexpectedEOF},
		{"short long header", []byte{0xff, 0xff, 0xff, 0xff, 0}, 0, io.ErrUnexpectedEOF},
		{"short long payload", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 'a'}, 0, io.ErrUnexpectedEOF},
		{"-2", []byte{0xff, 0xff, 0xff, 0xfe}, 0, conn.ErrProtocol},
		{"MinInt32", []byte{0x80, 0, 0, 0}, 0, conn.ErrProtocol},
		{"over max", []byte{0, 0, 0, 11}, 10, conn.ErrMessageTooLarge},
		{"long over max", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 11}, 10, conn.ErrMessageTooLarge},
		{"long over MaxInt64", []byte{0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, 1 << 62, conn.ErrMessageTooLarge},
		{"over default max", conn.AppendHeader(nil, conn.DefaultMaxMessageSize+1), 0, conn.ErrMessageTooLarge},
		{"over default max, negative max", conn.AppendHeader(nil, conn.DefaultMaxMessageSize+1), -1, conn.ErrMessageTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := conn.ReadFrame(bytes.NewReader(tc.in), tc.max, nil)
			require.ErrorIs(t, err, tc.want)
			if tc.want == io.EOF || tc.want == io.ErrUnexpectedEOF {
				assert.True(t, err == tc.want, "%v is returned unwrapped, as io.ReadFull does", tc.want)
			}
		})
	}
	_, err := conn.ReadFrame(iotest.ErrReader(errors.New("boom")), 0, nil)
	assert.EqualError(t, err, "boom", "a reader's own error is returned")
}
