// Package testitem is the item the queue tests send between processes:
// its body and checksum derive from who sent it and its sequence number, so
// that any process can tell a corrupted, misplaced or misdelivered item.
package testitem

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Item is what the tests send.
type Item struct {
	P   int    `msgpack:"p"` // producer
	I   int    `msgpack:"i"` // sequence number of the producer; Stop for the end
	B   []byte `msgpack:"b"` // body(P, I, len(B))
	Sum uint32 `msgpack:"s"` // sum(P, I, B)
}

// Stop is the I of the item that tells a consumer to stop.
const Stop = -1

// filler is the bytes of a body after the 8-byte header of each block.
var filler = func() []byte {
	b := make([]byte, 4096)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}()

// body returns n bytes that belong to item (p, i) alone: each 4 KiB block
// starts with p, i and the block's index, so that a block of another item
// or at another place is seen.
func body(p, i, n int) []byte {
	b := make([]byte, n)
	for off, k := 0, uint64(0); off < n; off, k = off+len(filler), k+1 {
		var h [8]byte
		binary.BigEndian.PutUint64(h[:], uint64(p)<<48^uint64(uint32(i))<<20^k)
		m := copy(b[off:], h[:])
		copy(b[off+m:min(off+len(filler), n)], filler[m:])
	}
	return b
}

func sum(p, i int, b []byte) uint32 {
	var h [16]byte
	binary.BigEndian.PutUint64(h[:], uint64(p))
	binary.BigEndian.PutUint64(h[8:], uint64(i))
	return crc32.Update(crc32.ChecksumIEEE(h[:]), crc32.IEEETable, b)
}

// New returns item i of producer p with a body of size bytes.
func New(p, i, size int) Item {
	b := body(p, i, size)
	return Item{P: p, I: i, B: b, Sum: sum(p, i, b)}
}

// Check reports whether v is intact: its body and checksum are those of
// its (P, I) and size.
func (v Item) Check() error {
	if v.Sum != sum(v.P, v.I, v.B) {
		return fmt.Errorf("item %d/%d: checksum %#x, want %#x", v.P, v.I, v.Sum, sum(v.P, v.I, v.B))
	}
	if !bytes.Equal(v.B, body(v.P, v.I, len(v.B))) {
		return fmt.Errorf("item %d/%d: body of %d bytes is not the item's", v.P, v.I, len(v.B))
	}
	return nil
}
