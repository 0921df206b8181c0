package mq

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Items whose frame does not fit in a packet travel through a pipe of
// their own, so that no lock ever guards the shared socket: the packet
// (the stub) carries the first maxBigInline bytes of the payload and the
// pipe's read end; the rest of the payload follows through the pipe. The
// sender fills the pipe before it sends the stub, growing the pipe up to
// fs.pipe-max-size so that items up to about 1 MiB are wholly in the
// kernel when the stub is; what does not fit is written as the receiver
// reads.
//
// A sender killed mid-body leaves a short body: the receiver sees EOF
// early and drops that item alone. A receiver killed mid-body makes the
// sender's writes fail with EPIPE: that item, which the receiver had
// taken, is lost with it, and nothing else.

// bigSend is a large item being sent.
type bigSend struct {
	r, w   int // the pipe; -1 once closed or handed over
	hdr    [bigHeader]byte
	inline []byte // sent in the stub
	rest   []byte // not yet in the pipe
}

var pipeMax = sync.OnceValue(pipeMaxSize)

// prepareBig creates the pipe of a large item and writes into it as much
// of the payload as it takes.
func prepareBig(payload []byte) (*bigSend, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("large item: %w", os.NewSyscallError("pipe2", err))
	}
	bs := &bigSend{r: p[0], w: p[1]}
	binary.BigEndian.PutUint32(bs.hdr[:], bigMarker)
	binary.BigEndian.PutUint64(bs.hdr[4:], uint64(len(payload)))
	k := min(len(payload), maxBigInline)
	bs.inline, bs.rest = payload[:k], payload[k:]
	if len(bs.rest) > 64<<10 {
		// Best effort: the user may be over fs.pipe-user-pages-soft.
		want := min(1<<bits.Len(uint(len(bs.rest)-1)), pipeMax())
		unix.FcntlInt(uintptr(bs.w), unix.F_SETPIPE_SZ, want)
	}
	for len(bs.rest) > 0 {
		n, err := unix.Write(bs.w, bs.rest)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			bs.close()
			return nil, fmt.Errorf("large item: %w", os.NewSyscallError("write", err))
		}
		bs.rest = bs.rest[n:]
	}
	return bs, nil
}

// sendStub sends the stub packet on the socket sfd.
func (bs *bigSend) sendStub(sfd int) error {
	return sendGather(sfd, bs.hdr[:], bs.inline, bs.r)
}

func (bs *bigSend) close() {
	if bs.r >= 0 {
		unix.Close(bs.r)
		bs.r = -1
	}
	if bs.w >= 0 {
		unix.Close(bs.w)
		bs.w = -1
	}
}
