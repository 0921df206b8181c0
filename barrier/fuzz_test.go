package barrier

import (
	"bytes"
	"testing"
)

// FuzzDecode: the record comes from other processes. decode refuses what
// is not a well-formed state, never panics, allocates no more than the
// bytes given, and what it accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(state{parties: 4, count: 2, round: 9, resetRound: 3, broken: true, ids: []uint32{0, 5}}.encode())
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decode(b)
		if err != nil {
			return
		}
		if got := st.encode(); !bytes.Equal(got, b) {
			t.Fatalf("decode(%x) = %+v, which encodes as %x", b, st, got)
		}
	})
}
