package conn

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzShareFrame: the parser of a peer's shared-object frame never panics,
// and what it accepts is exactly what appendShareFrame writes.
func FuzzShareFrame(f *testing.F) {
	for _, s := range []struct {
		name, kind string
		n          int
	}{{"jobs", "queue", 3}, {"l", "lock", 2}, {"c-1.x", "conn", 1}} {
		f.Add(appendShareFrame(nil, s.name, s.kind, s.n)[headerSize:])
	}
	f.Add([]byte(shareMagic))
	f.Add([]byte(shareMagic + "\x01\x10\xff"))
	f.Fuzz(func(t *testing.T, p []byte) {
		name, kind, n, err := parseShareFrame(p)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if n < 1 || n > maxShareFDs {
			t.Fatalf("accepted %d descriptors", n)
		}
		if again := appendShareFrame(nil, name, kind, n)[headerSize:]; !bytes.Equal(again, p) {
			t.Fatalf("parse(%q) = %q, %q, %d, which writes %q", p, name, kind, n, again)
		}
	})
}
