// Package frame writes and parses the frame header of conn's wire format
// (conn/FORMAT.md), Python's multiprocessing.connection framing: a 4-byte
// big-endian signed length, or -1 followed by an 8-byte big-endian
// unsigned length for payloads over 0x7fffffff bytes. conn frames its
// stream with it and the queues (internal/mq) the frames inside their
// packets, so the header is written and parsed in this one place.
package frame

import (
	"encoding/binary"
	"math"
)

const (
	// HeaderSize is the size of the short header: a big-endian int32 length.
	HeaderSize = 4
	// LongHeaderSize is the size of the long header: int32 -1, then a
	// big-endian uint64 length.
	LongHeaderSize = HeaderSize + 8
	// LongMarker in the short header announces a long header.
	LongMarker = -1
	// MaxShortLen is the largest length the short header carries.
	MaxShortLen = math.MaxInt32
)

// HeaderLen returns the size of the header that frames a payload of n bytes.
func HeaderLen(n int) int {
	if int64(n) > MaxShortLen {
		return LongHeaderSize
	}
	return HeaderSize
}

// AppendHeader appends the header that frames a payload of n bytes.
func AppendHeader(dst []byte, n int) []byte {
	if int64(n) > MaxShortLen {
		dst = binary.BigEndian.AppendUint32(dst, uint32(0xffffffff)) // int32(-1)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// PutShort writes the short header of a payload of n bytes (0 <= n <=
// MaxShortLen) into b[:HeaderSize].
func PutShort(b []byte, n int) { binary.BigEndian.PutUint32(b, uint32(n)) }

// ParseShort decodes the short header in hdr[:HeaderSize]: the payload's
// length, or long when an 8-byte length follows (read it with LongLen).
// ok is false for a negative length other than LongMarker, which no
// writer of the format produces.
func ParseShort(hdr []byte) (n int64, long, ok bool) {
	v := int32(binary.BigEndian.Uint32(hdr))
	switch {
	case v == LongMarker:
		return 0, true, true
	case v < 0:
		return int64(v), false, false
	}
	return int64(v), false, true
}

// LongLen decodes the 8-byte length that follows a long marker, in b[:8].
func LongLen(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// Next returns the bounds of the short-header frame that begins at p[off:]:
// its payload is p[start:end]. ok is false when the bytes there are not a
// whole frame with a short header.
func Next(p []byte, off int) (start, end int, ok bool) {
	if len(p)-off < HeaderSize {
		return 0, 0, false
	}
	n, long, valid := ParseShort(p[off:])
	if long || !valid || n > int64(len(p)-off-HeaderSize) {
		return 0, 0, false
	}
	return off + HeaderSize, off + HeaderSize + int(n), true
}
