package conn_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/pipe"
)

// A small payload whose nested msgpack headers each announce a huge map
// would make the msgpack library allocate a million-element map per level.
// Recv refuses it before decoding, and the Conn goes on.
func TestRecvRefusesLyingMsgpack(t *testing.T) {
	a, b, err := pipe.Duplex()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()

	var lying []byte
	for range 200 {
		lying = append(lying, 0x81, 0xa1, 'k', 0xdf, 0x7f, 0xff, 0xff, 0xff)
	}
	require.NoError(t, a.SendBytes(lying))
	require.NoError(t, a.Send(map[string]int{"next": 1}))

	var v any
	err = b.Recv(&v)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "malformed msgpack", "the error says what is wrong")

	var m map[string]int
	require.NoError(t, b.Recv(&m), "the Conn stays usable after a refused payload")
	assert.Equal(t, map[string]int{"next": 1}, m)
}
