package mq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/frame"
)

// Packet layout. A packet carries either frames or one large item.
//
// Frames: one or more frames in conn's format (conn/FORMAT.md) back to back (a 4-byte big-endian length,
// then that many bytes of msgpack), together at most maxPacket bytes.
//
// Large item: an item whose frame does not fit in maxPacket. The packet is
// bigMarker (the int32 -2, which conn never writes as a length), the
// payload length as a big-endian uint64, then the first bytes of the
// payload; it carries, by SCM_RIGHTS, the read end of a pipe through which
// the rest of the payload follows, and nothing else.
const (
	// maxPacket is the most data a packet carries. Socket buffers allow
	// about 208 KB, but a packet's data beyond 16 KB plus 17 pages must
	// come from one contiguous kernel allocation, which grows more likely
	// to fail with its size; 64 KiB keeps it small.
	maxPacket = 64 << 10

	frameHeader = frame.HeaderSize

	// maxInline is the largest payload sent as a frame.
	maxInline = maxPacket - frameHeader

	bigMarker    = 0xfffffffe // int32(-2)
	bigHeader    = 4 + 8
	maxBigInline = 4096 - bigHeader

	// maxFrames is the most items a producer puts in one packet.
	maxFrames = 64
)

// encBuf is a reusable encoding buffer. The first frameHeader bytes are
// room for the frame header.
type encBuf struct {
	buf  bytes.Buffer
	enc  *msgpack.Encoder
	refs atomic.Int32 // holders: the caller of encode and a keeper; the last release pools it
}

var encPool = sync.Pool{New: func() any {
	e := new(encBuf)
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

// encode encodes v as a frame. The caller releases the buffer.
func encode(v any, maxItem int64) (*encBuf, error) {
	e := encPool.Get().(*encBuf)
	e.refs.Store(1)
	e.buf.Reset()
	e.buf.Write([]byte{0, 0, 0, 0})
	if err := e.enc.Encode(v); err != nil {
		e.release()
		return nil, fmt.Errorf("encode %s: %w", strings.TrimPrefix(fmt.Sprintf("%T", v), "*"), err)
	}
	n := e.buf.Len() - frameHeader
	if int64(n) > maxItem {
		e.release()
		return nil, fmt.Errorf("%w: %d bytes encoded (maximum %d)", ErrTooLarge, n, maxItem)
	}
	if n <= maxInline {
		frame.PutShort(e.buf.Bytes(), n)
	}
	return e, nil
}

// frame returns the whole frame (inline items only).
func (e *encBuf) frame() []byte { return e.buf.Bytes() }

// payload returns the encoded item.
func (e *encBuf) payload() []byte { return e.buf.Bytes()[frameHeader:] }

func (e *encBuf) big() bool { return e.buf.Len()-frameHeader > maxInline }

// keep hands the buffer over to a new owner (the backlog, a body writer),
// which calls release when done: the payload of a large item outlives Put.
func (e *encBuf) keep() *encBuf {
	e.refs.Add(1)
	return e
}

// poolMax is the largest buffer kept for reuse: large enough that a
// producer of 1 MiB items does not grow a buffer per item.
const poolMax = 4 << 20

// release returns the buffer to the pool once no one holds it: the
// caller of encode and a keeper release in any order, in any goroutine.
func (e *encBuf) release() {
	if e.refs.Add(-1) == 0 && e.buf.Cap() <= poolMax {
		encPool.Put(e)
	}
}

// nextFrame returns the bounds of the frame at p[off:]. ok is false when
// the bytes there are not a whole frame.
func nextFrame(p []byte, off int) (start, end int, ok bool) { return frame.Next(p, off) }

// countFrames returns the number of frames in p, or -1 if p is not a
// sequence of whole frames.
func countFrames(p []byte) int {
	k := 0
	for off := 0; off < len(p); k++ {
		_, end, ok := nextFrame(p, off)
		if !ok {
			return -1
		}
		off = end
	}
	return k
}

// isBig reports whether the packet p announces a large item.
func isBig(p []byte) bool {
	return len(p) >= bigHeader && binary.BigEndian.Uint32(p) == bigMarker
}
