package conn

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/mproc-go/mproc/internal/frame"
)

// The wire format, described in prose in FORMAT.md. It is the one of
// Python's multiprocessing.connection.Connection on Unix; internal/frame
// writes and parses its header, for conn and for the queues' packets.
const (
	headerSize     = frame.HeaderSize
	longHeaderSize = frame.LongHeaderSize
	maxShortLen    = frame.MaxShortLen

	// DefaultMaxMessageSize is the largest payload a Conn accepts unless
	// told otherwise: 1 GiB. Python has no maximum; memory safety does not
	// depend on this limit, because a reader grows its buffer with the
	// bytes that actually arrive.
	DefaultMaxMessageSize = 1 << 30

	// readStep is the most a reader allocates on the word of a header
	// alone; past it the payload is read in pieces of readStep bytes,
	// allocated as the data arrives.
	readStep = 1 << 20
)

var (
	// ErrMessageTooLarge is returned for a payload longer than the Conn's
	// maximum message size, on either side. Test with errors.Is.
	ErrMessageTooLarge = errors.New("conn: message too large")
	// ErrProtocol is returned for a frame header no peer of this format
	// writes (a negative length other than -1). Test with errors.Is.
	ErrProtocol = errors.New("conn: protocol error")
)

// HeaderLen returns the size of the header that frames a payload of n bytes.
func HeaderLen(n int) int { return frame.HeaderLen(n) }

// AppendHeader appends to dst the header that frames a payload of n bytes
// and returns the extended slice.
func AppendHeader(dst []byte, n int) []byte { return frame.AppendHeader(dst, n) }

// putShortHeader writes the short header for n (n <= maxShortLen) into b.
func putShortHeader(b []byte, n int) { frame.PutShort(b, n) }

// parseLength decodes the short header in hdr. long reports that an 8-byte
// length follows.
func parseLength(hdr []byte) (n int64, long bool, err error) {
	n, long, ok := frame.ParseShort(hdr)
	if !ok {
		return 0, false, fmt.Errorf("%w: negative frame length %d", ErrProtocol, n)
	}
	return n, long, nil
}

func checkLongLength(u uint64, max int64) (int64, error) {
	if u > math.MaxInt64 || int64(u) > max {
		return 0, fmt.Errorf("%w: %d bytes (maximum %d)", ErrMessageTooLarge, u, max)
	}
	return int64(u), nil
}

// ReadFrame reads one whole frame from r and returns its payload. max is the
// largest payload accepted (<= 0 means DefaultMaxMessageSize). buf, if large
// enough, receives the payload; otherwise a new buffer is allocated.
//
// ReadFrame reads exactly the frame's bytes and nothing more. It returns
// io.EOF when r ends before the frame begins, io.ErrUnexpectedEOF when it
// ends inside the frame, ErrProtocol for a header no writer produces and
// ErrMessageTooLarge for a length over max. Whatever the header says, the
// memory it allocates grows with the bytes that actually arrive: at most
// about twice those bytes, plus 1 MiB.
func ReadFrame(r io.Reader, max int64, buf []byte) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:headerSize]); err != nil {
		return nil, err
	}
	return readAfterHeader(r, hdr[:], max, buf)
}

// readAfterHeader finishes a frame whose 4 first header bytes are in hdr[:4].
func readAfterHeader(r io.Reader, hdr []byte, max int64, buf []byte) ([]byte, error) {
	n, long, err := parseLength(hdr[:headerSize])
	if err != nil {
		return nil, err
	}
	if long {
		if _, err := io.ReadFull(r, hdr[:8]); err != nil {
			return nil, noEOF(err)
		}
		if n, err = checkLongLength(frame.LongLen(hdr[:8]), max); err != nil {
			return nil, err
		}
	} else if n > max {
		return nil, fmt.Errorf("%w: %d bytes (maximum %d)", ErrMessageTooLarge, n, max)
	}
	return readPayload(r, n, buf)
}

// readPayload reads an n-byte payload, growing its buffer with the data.
func readPayload(r io.Reader, n int64, buf []byte) ([]byte, error) {
	if n <= int64(cap(buf)) {
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	if n <= readStep {
		buf = make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	// Read in pieces allocated as the data arrives, then join them: a
	// writer that stops early has cost at most what it sent plus one piece,
	// a whole payload twice its size. (A buffer that doubles ahead of the
	// data costs up to four times what arrived.)
	pieces := make([][]byte, 0, min(n/readStep+1, 64))
	for got := int64(0); got < n; {
		c := make([]byte, min(n-got, readStep))
		if _, err := io.ReadFull(r, c); err != nil {
			return nil, noEOF(err)
		}
		pieces = append(pieces, c)
		got += int64(len(c))
	}
	buf = make([]byte, 0, n)
	for _, c := range pieces {
		buf = append(buf, c...)
	}
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
