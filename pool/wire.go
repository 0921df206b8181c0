package pool

// The messages between the pool and a worker, over the worker's own
// connection (frames of package conn), all msgpack:
//
//	hello  worker -> pool, once, after the initializer: [msg, type, init];
//	       msg "" means ready, anything else why the worker cannot run
//	       (init: the initializer's error)
//	chunk  pool -> worker: [name, [in, in, ...]], the registered name of
//	       the task function and the inputs of one chunk
//	result worker -> pool: [[out, out, ...], errs], one out per input (the
//	       zero value where the task failed); errs is nil or an array of
//	       [index in the chunk, panicked, msg, type, stack]; or, for a
//	       name the worker does not know, a string saying so (the chunk
//	       fails with ErrNotRegistered, the worker stays)
//
// A chunk of many small values is the pool's hot path: with a codec at
// ~30 ns a value through reflection, encoding and decoding would cost
// more than the tasks. Slices of the basic types (ints, uints, floats,
// strings, bools) are therefore encoded and decoded here by hand, as the
// same msgpack that the library writes and reads (wire_test.go checks both
// ways); every other type goes through github.com/vmihailenco/msgpack/v5.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/codec"
)

// msgpack type codes (the format's specification; the library's msgpcode
// has them as variables, which a switch cannot jump on).
const (
	codeNil     = 0xc0
	codeFalse   = 0xc2
	codeTrue    = 0xc3
	codeFloat   = 0xca
	codeDouble  = 0xcb
	codeUint8   = 0xcc
	codeUint16  = 0xcd
	codeUint32  = 0xce
	codeUint64  = 0xcf
	codeInt8    = 0xd0
	codeInt16   = 0xd1
	codeInt32   = 0xd2
	codeInt64   = 0xd3
	codeStr8    = 0xd9
	codeStr16   = 0xda
	codeStr32   = 0xdb
	codeArray16 = 0xdc
	codeArray32 = 0xdd

	posFixMax    = 0x7f // 0x00-0x7f: positive fixint
	negFixMin    = 0xe0 // 0xe0-0xff: negative fixint
	fixStrLow    = 0xa0 // 0xa0-0xbf: string of up to 31 bytes
	fixStrHigh   = 0xbf
	fixArrayLow  = 0x90 // 0x90-0x9f: array of up to 15 elements
	fixArrayHigh = 0x9f
)

var errWire = errors.New("pool: malformed message")

// taskErr is one failed task in a result message.
type taskErr struct {
	//lint:ignore U1000 the field carries msgpack's as_array tag for the struct
	_msgpack struct{} `msgpack:",as_array"`
	Index    int      // in the chunk
	Panic    bool
	Msg      string
	Type     string
	Stack    string
}

// hello is the worker's first message: empty when the worker is ready,
// otherwise why it is not. The flags say which of the package's sentinels
// the parent wraps around Msg: the error itself stays in the worker.
type hello struct {
	//lint:ignore U1000 the field carries msgpack's as_array tag for the struct
	_msgpack     struct{} `msgpack:",as_array"`
	Msg          string
	Type         string
	Init         bool // the initializer failed: ErrInit
	Unregistered bool // the function or initializer is unknown: ErrNotRegistered
}

// appendChunk appends a chunk message of the function fname to b.
func appendChunk(b []byte, fname string, ch chunk) ([]byte, error) {
	b = appendString(appendArrayLen(b, 2), fname)
	return ch.encode(b)
}

// readChunkName reads the function name of a chunk message and returns it
// with the rest of the message, the inputs.
func readChunkName(b []byte) (string, []byte, error) {
	if err := check(b); err != nil {
		return "", nil, err
	}
	r := reader{b: b}
	if n, err := r.arrayLen(); err != nil || n != 2 {
		return "", nil, fmt.Errorf("%w: chunk is not a pair", errWire)
	}
	name, err := r.str()
	if err != nil {
		return "", nil, err
	}
	return name, b[r.off:], nil
}

// readChunk decodes the inputs of a chunk message.
func readChunk[In any](b []byte) ([]In, error) {
	r := reader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	in := make([]In, max(n, 0))
	if _, err := readArray(b, in); err != nil {
		return nil, err
	}
	return in, nil
}

// appendRefusal appends the answer to a chunk of an unknown function.
func appendRefusal(b []byte, msg string) []byte { return appendString(b, msg) }

// refusal reports whether a result message is a refusal, and its text.
func refusal(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	switch c := b[0]; {
	case c >= fixStrLow && c <= fixStrHigh, c == codeStr8, c == codeStr16, c == codeStr32:
		r := reader{b: b}
		msg, err := r.str()
		return msg, err == nil
	}
	return "", false
}

// appendResult appends a result message to b.
func appendResult[Out any](b []byte, out []Out, errs []taskErr) ([]byte, error) {
	b = appendArrayLen(b, 2)
	b, err := appendArray(b, out)
	if err != nil {
		return b, err
	}
	if len(errs) == 0 {
		return append(b, codeNil), nil
	}
	return appendGeneral(b, errs)
}

// readResult decodes a result message into out, whose length must be the
// chunk's, and returns its task errors.
func readResult[Out any](b []byte, out []Out) ([]taskErr, error) {
	if err := check(b); err != nil {
		return nil, err
	}
	r := reader{b: b}
	if n, err := r.arrayLen(); err != nil || n != 2 {
		return nil, fmt.Errorf("%w: result is not a pair", errWire)
	}
	used, err := readArray(b[r.off:], out)
	if err != nil {
		return nil, err
	}
	r.off += used
	n, err := r.arrayLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	// (Not msgpack.Unmarshal into a slice: v5.4.1 grows it as the header
	// says, whatever the bytes that follow.)
	errs := make([]taskErr, n)
	if _, err := readGeneral(b, r.off, errs); err != nil {
		return nil, fmt.Errorf("task errors: %w", err)
	}
	for _, e := range errs {
		if e.Index < 0 || e.Index >= len(out) {
			return nil, fmt.Errorf("%w: task error for index %d of a chunk of %d", errWire, e.Index, len(out))
		}
	}
	return errs, nil
}

// check refuses a message that is not exactly one well-formed msgpack
// value, whose containers claim more elements than its bytes hold or nest
// deeper than codec.MaxDepth: the bytes come from another process, and
// the msgpack library would size slices from lying headers and recurse
// without bound.
func check(b []byte) error {
	if err := codec.Check(b); err != nil {
		return fmt.Errorf("%w: %w", errWire, err)
	}
	return nil
}

// appendArray appends s to b as one msgpack array.
func appendArray[T any](b []byte, s []T) ([]byte, error) {
	switch v := any(s).(type) {
	case []int:
		return appendSigned(b, v), nil
	case []int64:
		return appendSigned(b, v), nil
	case []int32:
		return appendSigned(b, v), nil
	case []int16:
		return appendSigned(b, v), nil
	case []int8:
		return appendSigned(b, v), nil
	case []uint:
		return appendUnsigned(b, v), nil
	case []uint64:
		return appendUnsigned(b, v), nil
	case []uint32:
		return appendUnsigned(b, v), nil
	case []uint16:
		return appendUnsigned(b, v), nil
	case []float64:
		b = appendArrayLen(b, len(v))
		for _, x := range v {
			b = binary.BigEndian.AppendUint64(append(b, codeDouble), math.Float64bits(x))
		}
		return b, nil
	case []float32:
		b = appendArrayLen(b, len(v))
		for _, x := range v {
			b = binary.BigEndian.AppendUint32(append(b, codeFloat), math.Float32bits(x))
		}
		return b, nil
	case []string:
		b = appendArrayLen(b, len(v))
		for _, x := range v {
			b = appendString(b, x)
		}
		return b, nil
	case []bool:
		b = appendArrayLen(b, len(v))
		for _, x := range v {
			c := byte(codeFalse)
			if x {
				c = codeTrue
			}
			b = append(b, c)
		}
		return b, nil
	}
	return appendGeneral(b, s)
}

// readArray decodes the msgpack array at the start of b into dst, whose
// length must be the array's, and returns the number of bytes it used.
func readArray[T any](b []byte, dst []T) (int, error) {
	r := reader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return 0, err
	}
	if max(n, 0) != len(dst) {
		return 0, fmt.Errorf("%w: %d values where %d were expected", errWire, n, len(dst))
	}
	switch d := any(dst).(type) {
	case []int:
		err = readSigned(&r, d)
	case []int64:
		err = readSigned(&r, d)
	case []int32:
		err = readSigned(&r, d)
	case []int16:
		err = readSigned(&r, d)
	case []int8:
		err = readSigned(&r, d)
	case []uint:
		err = readUnsigned(&r, d)
	case []uint64:
		err = readUnsigned(&r, d)
	case []uint32:
		err = readUnsigned(&r, d)
	case []uint16:
		err = readUnsigned(&r, d)
	case []float64:
		for i := range d {
			if d[i], err = r.float64(); err != nil {
				break
			}
		}
	case []float32:
		for i := range d {
			var f float64
			if f, err = r.float64(); err != nil {
				break
			}
			d[i] = float32(f)
		}
	case []string:
		for i := range d {
			if d[i], err = r.str(); err != nil {
				break
			}
		}
	case []bool:
		for i := range d {
			if d[i], err = r.bool(); err != nil {
				break
			}
		}
	default:
		return readGeneral(b, r.off, dst)
	}
	return r.off, err
}

// readGeneral decodes the elements of dst with the msgpack library from
// b[off:] and returns the offset after them.
func readGeneral[T any](b []byte, off int, dst []T) (int, error) {
	rd := bytes.NewReader(b[off:])
	dec := msgpack.GetDecoder()
	dec.Reset(rd)
	defer msgpack.PutDecoder(dec)
	for i := range dst {
		if err := dec.Decode(&dst[i]); err != nil {
			return 0, fmt.Errorf("%w: value %d: %w", errWire, i, err)
		}
	}
	return len(b) - rd.Len(), nil
}

// appendGeneral appends v encoded by the msgpack library to b.
func appendGeneral(b []byte, v any) ([]byte, error) {
	w := appender{b: b}
	enc := msgpack.GetEncoder()
	enc.Reset(&w)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	return w.b, err
}

// appender is the io.Writer (and the library's byte writer) that appends
// to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func (a *appender) WriteByte(c byte) error {
	a.b = append(a.b, c)
	return nil
}

func (a *appender) WriteString(s string) (int, error) {
	a.b = append(a.b, s...)
	return len(s), nil
}

type signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

type unsigned interface {
	~uint | ~uint16 | ~uint32 | ~uint64
}

func appendSigned[T signed](b []byte, s []T) []byte {
	b = slices.Grow(appendArrayLen(b, len(s)), 9*len(s))
	for _, x := range s {
		b = appendInt(b, int64(x))
	}
	return b
}

func appendUnsigned[T unsigned](b []byte, s []T) []byte {
	b = slices.Grow(appendArrayLen(b, len(s)), 9*len(s))
	for _, x := range s {
		b = appendUint(b, uint64(x))
	}
	return b
}

func readSigned[T signed](r *reader, d []T) error {
	for i := range d {
		u, neg, n := getInt(r.b[r.off:])
		if n <= 0 {
			return r.intErr()
		}
		r.off += n
		v := int64(u)
		if neg != (v < 0) || int64(T(v)) != v {
			return fmt.Errorf("%w: %s overflows %T", errWire, fmtInteger(u, neg), d[i])
		}
		d[i] = T(v)
	}
	return nil
}

func readUnsigned[T unsigned](r *reader, d []T) error {
	for i := range d {
		u, neg, n := getInt(r.b[r.off:])
		if n <= 0 {
			return r.intErr()
		}
		r.off += n
		if neg || uint64(T(u)) != u {
			return fmt.Errorf("%w: %s overflows %T", errWire, fmtInteger(u, neg), d[i])
		}
		d[i] = T(u)
	}
	return nil
}

// getInt decodes the msgpack integer at the start of b: its bits as a
// uint64, whether it is negative (then the bits are an int64's), and its
// size; a size of 0 means that b does not start with a whole integer.
func getInt(b []byte) (u uint64, neg bool, n int) {
	if len(b) == 0 {
		return 0, false, 0
	}
	c := b[0]
	switch {
	case c <= posFixMax:
		return uint64(c), false, 1
	case c >= negFixMin:
		return uint64(int64(int8(c))), true, 1
	}
	var v int64
	switch c {
	case codeUint8:
		if len(b) >= 2 {
			return uint64(b[1]), false, 2
		}
	case codeUint16:
		if len(b) >= 3 {
			return uint64(binary.BigEndian.Uint16(b[1:])), false, 3
		}
	case codeUint32:
		if len(b) >= 5 {
			return uint64(binary.BigEndian.Uint32(b[1:])), false, 5
		}
	case codeUint64:
		if len(b) >= 9 {
			return binary.BigEndian.Uint64(b[1:]), false, 9
		}
	case codeInt8:
		if len(b) >= 2 {
			v, n = int64(int8(b[1])), 2
		}
	case codeInt16:
		if len(b) >= 3 {
			v, n = int64(int16(binary.BigEndian.Uint16(b[1:]))), 3
		}
	case codeInt32:
		if len(b) >= 5 {
			v, n = int64(int32(binary.BigEndian.Uint32(b[1:]))), 5
		}
	case codeInt64:
		if len(b) >= 9 {
			v, n = int64(binary.BigEndian.Uint64(b[1:])), 9
		}
	}
	return uint64(v), v < 0, n
}

// intErr describes why no integer could be read at r.off.
func (r *reader) intErr() error {
	if r.off < len(r.b) {
		switch c := r.b[r.off]; c {
		case codeUint8, codeUint16, codeUint32, codeUint64, codeInt8, codeInt16, codeInt32, codeInt64:
		default:
			return fmt.Errorf("%w: code 0x%02x where an integer was expected", errWire, c)
		}
	}
	return fmt.Errorf("%w: truncated", errWire)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n <= fixArrayHigh-fixArrayLow:
		return append(b, fixArrayLow|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeArray16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, codeArray32), uint32(n))
}

// appendInt appends n in its shortest form, as the msgpack library does.
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, codeInt8, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, codeInt16), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, codeInt32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, codeInt64), uint64(n))
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= posFixMax:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, codeUint8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeUint16), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, codeUint32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, codeUint64), n)
}

func appendString(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n <= fixStrHigh-fixStrLow:
		b = append(b, fixStrLow|byte(n))
	case n <= math.MaxUint8:
		b = append(b, codeStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, codeStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeStr32), uint32(n))
	}
	return append(b, s...)
}

// reader reads msgpack values from a byte slice.
type reader struct {
	b   []byte
	off int
}

func (r *reader) next(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, fmt.Errorf("%w: truncated", errWire)
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *reader) code() (byte, error) {
	p, err := r.next(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// arrayLen reads an array header; nil reads as -1. A length that the
// remaining bytes cannot hold (every element takes one byte at least) is
// an error, so that a corrupt header never makes us allocate.
func (r *reader) arrayLen() (int, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	var n int
	switch {
	case c >= fixArrayLow && c <= fixArrayHigh:
		n = int(c - fixArrayLow)
	case c == codeArray16:
		p, err := r.next(2)
		if err != nil {
			return 0, err
		}
		n = int(binary.BigEndian.Uint16(p))
	case c == codeArray32:
		p, err := r.next(4)
		if err != nil {
			return 0, err
		}
		n = int(binary.BigEndian.Uint32(p))
	case c == codeNil:
		return -1, nil
	default:
		return 0, fmt.Errorf("%w: code 0x%02x where an array was expected", errWire, c)
	}
	if n > len(r.b)-r.off {
		return 0, fmt.Errorf("%w: array of %d values in %d bytes", errWire, n, len(r.b)-r.off)
	}
	return n, nil
}

func fmtInteger(u uint64, neg bool) string {
	if neg {
		return fmt.Sprint(int64(u))
	}
	return fmt.Sprint(u)
}

func (r *reader) float64() (float64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch c {
	case codeDouble:
		p, err := r.next(8)
		if err != nil {
			return 0, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
	case codeFloat:
		p, err := r.next(4)
		if err != nil {
			return 0, err
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(p))), nil
	}
	return 0, fmt.Errorf("%w: code 0x%02x where a float was expected", errWire, c)
}

func (r *reader) str() (string, error) {
	c, err := r.code()
	if err != nil {
		return "", err
	}
	var n int
	switch {
	case c >= fixStrLow && c <= fixStrHigh:
		n = int(c - fixStrLow)
	case c == codeStr8:
		p, err := r.next(1)
		if err != nil {
			return "", err
		}
		n = int(p[0])
	case c == codeStr16:
		p, err := r.next(2)
		if err != nil {
			return "", err
		}
		n = int(binary.BigEndian.Uint16(p))
	case c == codeStr32:
		p, err := r.next(4)
		if err != nil {
			return "", err
		}
		n = int(binary.BigEndian.Uint32(p))
	case c == codeNil:
		return "", nil // the library writes nil for nothing else, and reads it as ""
	default:
		return "", fmt.Errorf("%w: code 0x%02x where a string was expected", errWire, c)
	}
	p, err := r.next(n)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

func (r *reader) bool() (bool, error) {
	c, err := r.code()
	if err != nil {
		return false, err
	}
	switch c {
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	}
	return false, fmt.Errorf("%w: code 0x%02x where a bool was expected", errWire, c)
}
