package conn

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mproc-go/mproc/internal/frame"
)

// readBufSize is the largest a Conn's read-ahead buffer grows. A frame
// that fits in it, header included, is returned from the buffer; a read(2)
// asks for all the room the buffer has, so a receiver that falls behind
// takes many frames per system call and parks in the poller only when the
// descriptor is empty. The buffer starts at readBufMin and doubles when a
// read fills it or a frame needs more, so that a Conn that receives little
// (a server's many clients) keeps 4 KiB, not 64.
const (
	readBufMin  = 4 << 10
	readBufSize = 64 << 10
)

// ErrBuffered is returned by Share for a Conn that holds bytes it has read
// ahead from its descriptor and not yet returned: a child given the
// descriptor would start in the middle of the stream. Receive what is
// waiting first (Poll with a zero timeout reports it). Test with errors.Is.
var ErrBuffered = errors.New("conn: received bytes are waiting in this process's buffer")

// hasBuffered reports whether the Conn holds bytes read from its
// descriptor and not yet returned by a receive: a message has begun, even
// when the descriptor itself is empty. Safe without rmu.
func (c *Conn) hasBuffered() bool { return c.buffered.Load() > 0 }

// recv reads one frame and returns its payload. When owned is false the
// payload is in the read-ahead buffer, valid until the next receive; the
// caller holds rmu throughout.
//
// Read-ahead: each read(2) asks for as much as the buffer holds, so
// several frames arrive in one call. After Share (exact), a read asks
// only for the bytes of the current frame that are missing, so that a
// process sharing the descriptor never loses bytes to this one's buffer.
func (c *Conn) recv(ctx context.Context) (p []byte, owned bool, err error) {
	if err := c.canRecv(); err != nil {
		return nil, false, err
	}
	if ctx.Done() != nil {
		// As when nothing is buffered: a ctx that has ended takes nothing.
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
	}
	if c.rbuf == nil {
		c.rbuf = make([]byte, readBufMin)
	}
	defer func() { c.buffered.Store(int64(c.rend - c.rpos)) }()
	if c.rpos == c.rend {
		// Between frames: wait for the first byte, honouring ctx.
		c.rpos, c.rend = 0, 0
		n, err := c.readFirst(ctx, c.rbuf[:c.readLimit(headerSize)])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, false, c.readErr(err, false)
		}
		c.rend = n
		c.growIfFull()
	}
	// Where the frame begins in the stream: descriptors sent with a frame
	// belong to the read that brought its first byte (handle.go).
	c.in.start = c.in.off - int64(c.rend-c.rpos)
	if err := c.fill(headerSize); err != nil {
		return nil, false, c.fail(c.readErr(err, true))
	}
	n, long, err := parseLength(c.rbuf[c.rpos : c.rpos+headerSize])
	if err != nil {
		return nil, false, c.fail(err)
	}
	max, hlen := c.max.Load(), headerSize
	if long {
		if err := c.fill(longHeaderSize); err != nil {
			return nil, false, c.fail(c.readErr(err, true))
		}
		if n, err = checkLongLength(frame.LongLen(c.rbuf[c.rpos+headerSize:]), max); err != nil {
			return nil, false, c.fail(err)
		}
		hlen = longHeaderSize
	} else if n > max {
		return nil, false, c.fail(fmt.Errorf("%w: %d bytes (maximum %d)", ErrMessageTooLarge, n, max))
	}
	if int64(hlen)+n <= readBufSize {
		size := hlen + int(n)
		if err := c.fill(size); err != nil {
			return nil, false, c.fail(c.readErr(err, true))
		}
		p = c.rbuf[c.rpos+hlen : c.rpos+size]
		c.rpos += size
		return p, false, nil
	}
	// Larger than the buffer: what is buffered, then reads of exactly the
	// rest, into a buffer that grows with the data (readPayload).
	c.rpos += hlen
	p, err = readPayload((*bufferedReader)(c), n, nil)
	if err != nil {
		return nil, false, c.fail(c.readErr(err, true))
	}
	return p, true, nil
}

// readLimit is how far into rbuf the next read may go when the current
// frame needs want bytes from rpos.
func (c *Conn) readLimit(want int) int {
	if c.exact.Load() {
		return c.rpos + want
	}
	return len(c.rbuf)
}

// fill reads until the buffer holds at least want (<= readBufSize) bytes
// from rpos, growing the buffer or moving them to its front first when
// they would not fit. It ignores ctx: the frame has begun. End of file is
// io.ErrUnexpectedEOF.
func (c *Conn) fill(want int) error {
	if c.rend-c.rpos >= want {
		return nil
	}
	if want > len(c.rbuf) {
		c.grow(want)
	} else if c.rpos+want > len(c.rbuf) {
		c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos = 0
	}
	for c.rend-c.rpos < want {
		n, err := c.readSome(c.rbuf[c.rend:c.readLimit(want)])
		c.rend += n
		if err != nil && c.rend-c.rpos < want {
			return noEOF(err)
		}
		c.growIfFull()
	}
	return nil
}

// grow replaces the buffer by one of at least want bytes (and at least
// twice the old size, at most readBufSize), its bytes moved to the front.
func (c *Conn) grow(want int) {
	b := make([]byte, min(max(want, 2*len(c.rbuf)), readBufSize))
	c.rend = copy(b, c.rbuf[c.rpos:c.rend])
	c.rpos = 0
	c.rbuf = b
}

// growIfFull doubles the buffer after a read that filled it: more was
// probably waiting.
func (c *Conn) growIfFull() {
	if c.rend == len(c.rbuf) && len(c.rbuf) < readBufSize && !c.exact.Load() {
		c.grow(0)
	}
}

// bufferedReader reads a Conn's buffered bytes, then its descriptor, never
// asking the descriptor for more than the caller's slice.
type bufferedReader Conn

func (r *bufferedReader) Read(p []byte) (int, error) {
	c := (*Conn)(r)
	if c.rpos < c.rend {
		n := copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
		return n, nil
	}
	return c.readSome(p)
}
