// Package codec decodes msgpack payloads that come from other processes,
// which mproc must treat as untrusted input.
//
// A msgpack container announces its element count before its elements, and
// the msgpack library sizes maps and slices from that count (capped at a
// million elements, but per container: a few bytes of nested headers can
// ask for gigabytes). Check walks a payload once, without allocating, and
// refuses any container that announces more elements than bytes remain, so
// that what the library allocates afterwards is bounded by the payload's
// size.
//
// Check also bounds the nesting of containers to MaxDepth levels (the
// library decodes, and skips unknown struct fields, recursively: a
// payload of 8 Mi one-byte array headers would overflow its stack), and
// requires the payload to be exactly one value, with no byte after it.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Errors of Check. Test with errors.Is.
var (
	// ErrMalformed is returned for a payload that is not exactly one
	// well-formed msgpack value.
	ErrMalformed = errors.New("mproc: malformed msgpack")
	// ErrTooDeep is returned for a payload whose containers nest more than
	// MaxDepth levels; the error wraps ErrMalformed too.
	ErrTooDeep = errors.New("mproc: msgpack nested deeper than 10000 levels")
)

// MaxDepth is the deepest nesting of arrays and maps Check accepts: a
// value inside 10,000 containers. Real data never comes near it (Python's
// msgpack refuses to pack more than 511 levels, or to unpack more than
// 1024), and the decoder's recursion at that depth costs a few MiB of
// stack at most.
const MaxDepth = 10000

// Unmarshal checks p (Check) and decodes it into v, which must be a pointer.
// It decodes with a pooled Decoder, which allocates only what the value
// needs (msgpack.Unmarshal allocates a reader per call).
func Unmarshal(p []byte, v any) error {
	d := decoders.Get().(*Decoder)
	err := d.Unmarshal(p, v)
	d.r.Reset(nil)
	decoders.Put(d)
	return err
}

var decoders = sync.Pool{New: func() any { return new(Decoder) }}

// Check reports whether p is exactly one well-formed msgpack value whose
// containers announce no more elements than bytes remain and nest at most
// MaxDepth levels. It reads p once and allocates nothing unless the value
// nests more than 64 levels (then 8 bytes per level).
func Check(p []byte) error {
	pending := 1 // values still to read
	// open holds, for each container being read, how many of its elements
	// are still to read; containers with none left are popped.
	var inline [64]uint64
	open := inline[:0]
	i := 0
	for pending > 0 {
		if i >= len(p) {
			return fmt.Errorf("%w: truncated at byte %d", ErrMalformed, i)
		}
		c := p[i]
		i++
		pending--
		if k := len(open); k > 0 {
			open[k-1]--
		}
		var skip, elems uint64 // bytes of payload to skip, elements added
		switch {
		case c <= 0x7f, c >= 0xe0: // fixint
		case c <= 0x8f: // fixmap
			elems = 2 * uint64(c&0x0f)
		case c <= 0x9f: // fixarray
			elems = uint64(c & 0x0f)
		case c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		default:
			var n uint64
			ok := true // false when a length field is cut short
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc4, 0xd9: // bin8, str8
				n, ok = length(p, &i, 1)
				skip = n
			case 0xc5, 0xda: // bin16, str16
				n, ok = length(p, &i, 2)
				skip = n
			case 0xc6, 0xdb: // bin32, str32
				n, ok = length(p, &i, 4)
				skip = n
			case 0xc7: // ext8
				n, ok = length(p, &i, 1)
				skip = n + 1
			case 0xc8: // ext16
				n, ok = length(p, &i, 2)
				skip = n + 1
			case 0xc9: // ext32
				n, ok = length(p, &i, 4)
				skip = n + 1
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				skip = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				skip = 8
			case 0xcc, 0xd0: // uint8, int8
				skip = 1
			case 0xcd, 0xd1: // uint16, int16
				skip = 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
				skip = 1 + 1<<(c-0xd4)
			case 0xdc: // array16
				n, ok = length(p, &i, 2)
				elems = n
			case 0xdd: // array32
				n, ok = length(p, &i, 4)
				elems = n
			case 0xde: // map16
				n, ok = length(p, &i, 2)
				elems = 2 * n
			case 0xdf: // map32
				n, ok = length(p, &i, 4)
				elems = 2 * n
			default: // 0xc1 is never used
				return fmt.Errorf("%w: reserved code %#x at byte %d", ErrMalformed, c, i-1)
			}
			if !ok {
				return fmt.Errorf("%w: truncated at byte %d", ErrMalformed, i)
			}
		}
		rest := uint64(len(p) - i)
		if skip > rest {
			return fmt.Errorf("%w: a value of %d bytes at byte %d, %d remain", ErrMalformed, skip, i, rest)
		}
		i += int(skip)
		rest -= skip
		// Every element takes at least one byte.
		if elems > rest || uint64(pending)+elems > rest {
			return fmt.Errorf("%w: %d elements announced at byte %d, %d bytes remain", ErrMalformed, uint64(pending)+elems, i, rest)
		}
		pending += int(elems)
		if elems > 0 {
			if len(open) == MaxDepth {
				return fmt.Errorf("%w: %w: more than %d levels at byte %d", ErrMalformed, ErrTooDeep, MaxDepth, i)
			}
			open = append(open, elems)
		}
		for len(open) > 0 && open[len(open)-1] == 0 {
			open = open[:len(open)-1]
		}
	}
	if i != len(p) {
		return fmt.Errorf("%w: %d bytes after the value, at byte %d", ErrMalformed, len(p)-i, i)
	}
	return nil
}

// length reads a big-endian length of size bytes at p[*i:].
func length(p []byte, i *int, size int) (uint64, bool) {
	if len(p)-*i < size {
		return 0, false
	}
	b := p[*i : *i+size]
	*i += size
	switch size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	}
	return uint64(binary.BigEndian.Uint32(b)), true
}
