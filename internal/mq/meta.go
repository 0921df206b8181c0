package mq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A queue describes itself to the processes that inherit it with one
// packet that never leaves the socketpair: it is sent on the receiving end
// at creation, so it waits in the sending end's receive queue, where no
// one ever receives (the queue's items travel the other way), and a child
// reads it with MSG_PEEK. Layout: metaMagic, flags (uint32), maxsize
// (uint64), big-endian.
const (
	metaMagic = "MPROC-MQ"
	metaLen   = len(metaMagic) + 4 + 8

	metaSync = 1 << 0 // Put is synchronous (NewSync)
)

type meta struct {
	maxsize int
	sync    bool
}

func writeMeta(rcv *os.File, m meta) error {
	b := make([]byte, 0, metaLen)
	b = append(b, metaMagic...)
	var flags uint32
	if m.sync {
		flags |= metaSync
	}
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.maxsize))
	rc, err := rcv.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(d uintptr) { serr = sendPacket(int(d), b, -1) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("write queue description: %w", serr)
	}
	return nil
}

func readMeta(snd *os.File) (meta, error) {
	rc, err := snd.SyscallConn()
	if err != nil {
		return meta{}, err
	}
	var b [metaLen + 1]byte
	var n, flags int
	var rerr error
	if err := rc.Control(func(d uintptr) {
		n, _, flags, rerr = recvPacket(int(d), b[:], nil, unix.MSG_PEEK)
	}); err != nil {
		return meta{}, err
	}
	if rerr == unix.EAGAIN {
		return meta{}, fmt.Errorf("the descriptors are not a queue's (no description packet)")
	}
	if rerr != nil {
		return meta{}, fmt.Errorf("read queue description: %w", rerr)
	}
	if n != metaLen || flags&unix.MSG_TRUNC != 0 || !bytes.Equal(b[:len(metaMagic)], []byte(metaMagic)) {
		return meta{}, fmt.Errorf("the descriptors are not a queue's (bad description packet)")
	}
	f := binary.BigEndian.Uint32(b[len(metaMagic):])
	ms := binary.BigEndian.Uint64(b[len(metaMagic)+4:])
	if ms > 1<<31 || f&^metaSync != 0 {
		return meta{}, fmt.Errorf("unsupported queue description (flags %#x, maxsize %d)", f, ms)
	}
	return meta{maxsize: int(ms), sync: f&metaSync != 0}, nil
}
