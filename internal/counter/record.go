package counter

import (
	"encoding/binary"
	"fmt"
)

// The baton pipe holds exactly one record whenever no process holds the
// baton. A record is written with one write of recordLen bytes (far below
// PIPE_BUF, so atomic) and read with one read of recordLen bytes, so a
// reader always gets a whole record.
//
//	offset  size  field
//	0       8     count, big-endian int64, never negative
//	8       4     gen, big-endian uint32: how many times the count reached zero
//	12      2     magic 0x6d63 ("mc"), to recognize a record
//	14      2     flags: flagWaiting | flagWakeFull
//
// The first design sketched an 8-byte record holding the count alone; the other
// 8 bytes are what makes Join free of lost wake-ups without any per-waiter
// state that a killed waiter could leave behind (see join.go).
const recordLen = 16

const recordMagic = 0x6d63

const (
	// flagWaiting: some Join registered since the count last reached zero,
	// so the next zero must be signalled on the wake pipe. A waiter that
	// gave up or died leaves it set: the cost is one needless signal.
	flagWaiting = 1 << 0
	// flagWakeFull: the wake pipe holds the byte of the last signal.
	flagWakeFull = 1 << 1

	knownFlags = flagWaiting | flagWakeFull
)

type record struct {
	count int64
	gen   uint32
	flags uint16
}

func (r record) encode(b *[recordLen]byte) {
	binary.BigEndian.PutUint64(b[0:8], uint64(r.count))
	binary.BigEndian.PutUint32(b[8:12], r.gen)
	binary.BigEndian.PutUint16(b[12:14], recordMagic)
	binary.BigEndian.PutUint16(b[14:16], r.flags)
}

func decode(b []byte) (record, error) {
	if len(b) != recordLen {
		return record{}, fmt.Errorf("%w: read %d bytes of a %d-byte record", ErrCorrupt, len(b), recordLen)
	}
	r := record{
		count: int64(binary.BigEndian.Uint64(b[0:8])),
		gen:   binary.BigEndian.Uint32(b[8:12]),
		flags: binary.BigEndian.Uint16(b[14:16]),
	}
	if m := binary.BigEndian.Uint16(b[12:14]); m != recordMagic || r.count < 0 || r.flags&^knownFlags != 0 {
		return record{}, fmt.Errorf("%w: bad record %x", ErrCorrupt, b)
	}
	return r, nil
}
