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
// (uint64), then, with metaTyped, the item type (see shape.go): its
// fingerprint (uint64, 0 for "any type") and its name (a length byte, then
// that many bytes), big-endian.
const (
	metaMagic = "MPROC-MQ"
	metaLen   = len(metaMagic) + 4 + 8

	metaSync  = 1 << 0 // Put is synchronous (NewSync)
	metaTyped = 1 << 1 // the item type follows

	maxMetaLen = metaLen + 8 + 1 + 255
)

type meta struct {
	maxsize int
	sync    bool
	typ     typeInfo
	typed   bool // typ was recorded
}

func writeMeta(rcv *os.File, m meta) error {
	b := make([]byte, 0, maxMetaLen)
	b = append(b, metaMagic...)
	flags := uint32(metaTyped)
	if m.sync {
		flags |= metaSync
	}
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.maxsize))
	b = binary.BigEndian.AppendUint64(b, m.typ.fingerprint)
	name := m.typ.name[:min(len(m.typ.name), 255)]
	b = append(b, byte(len(name)))
	b = append(b, name...)
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
	var b [maxMetaLen + 1]byte
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
	if flags&unix.MSG_TRUNC != 0 {
		return meta{}, fmt.Errorf("the descriptors are not a queue's (bad description packet)")
	}
	return parseMeta(b[:n])
}

// parseMeta parses a description packet (which another process wrote).
func parseMeta(b []byte) (meta, error) {
	bad := fmt.Errorf("the descriptors are not a queue's (bad description packet)")
	if len(b) < metaLen || !bytes.Equal(b[:len(metaMagic)], []byte(metaMagic)) {
		return meta{}, bad
	}
	f := binary.BigEndian.Uint32(b[len(metaMagic):])
	ms := binary.BigEndian.Uint64(b[len(metaMagic)+4:])
	if ms > 1<<31 || f&^(metaSync|metaTyped) != 0 {
		return meta{}, fmt.Errorf("unsupported queue description (flags %#x, maxsize %d)", f, ms)
	}
	m := meta{maxsize: int(ms), sync: f&metaSync != 0}
	rest := b[metaLen:]
	if f&metaTyped == 0 {
		if len(rest) != 0 {
			return meta{}, bad
		}
		return m, nil
	}
	if len(rest) < 9 || len(rest) != 9+int(rest[8]) {
		return meta{}, bad
	}
	m.typed = true
	m.typ = typeInfo{fingerprint: binary.BigEndian.Uint64(rest), name: string(rest[9:])}
	return m, nil
}
