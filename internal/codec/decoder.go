package codec

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"
)

// Decoder is Unmarshal with its msgpack.Decoder and reader kept between
// calls, so that decoding allocates only what the decoded value needs
// (msgpack.Unmarshal allocates a reader per call). The zero value is
// ready. A Decoder is not safe for concurrent use; the decoded value
// never refers to p.
type Decoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

// Unmarshal checks p (Check) and decodes it into v, which must be a
// pointer, as the package function does.
func (d *Decoder) Unmarshal(p []byte, v any) error {
	if err := Check(p); err != nil {
		return err
	}
	d.r.Reset(p)
	if d.dec == nil {
		d.dec = msgpack.NewDecoder(&d.r)
	} else {
		d.dec.Reset(&d.r)
	}
	// Not UsePreallocateValues: it starts a goroutine per pointer type
	// that never ends, to allocate ahead. (msgpack.Unmarshal sets it, then
	// its Reset clears it again; ResetReader, as mq used it, does not.)
	return d.dec.Decode(v)
}
