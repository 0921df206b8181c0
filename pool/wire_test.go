package pool

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/codec"
)

// wireCase checks that the hand-written codec of []T and the msgpack
// library agree both ways on vals.
func wireCase[T any](t *testing.T, vals []T) {
	t.Helper()
	ours, err := appendArray(nil, vals)
	require.NoError(t, err)

	var back []T
	require.NoError(t, msgpack.Unmarshal(ours, &back), "the library reads what we write")
	if len(vals) == 0 {
		assert.Empty(t, back)
	} else {
		assert.Equal(t, vals, back)
	}

	theirs, err := msgpack.Marshal(vals)
	require.NoError(t, err)
	got := make([]T, len(vals))
	n, err := readArray(theirs, got)
	require.NoError(t, err, "we read what the library writes")
	assert.Equal(t, len(theirs), n, "all of it")
	assert.Equal(t, vals, got)

	got = make([]T, len(vals))
	n, err = readArray(ours, got)
	require.NoError(t, err)
	assert.Equal(t, len(ours), n)
	assert.Equal(t, vals, got, "round trip")
}

func TestWireAgreesWithMsgpack(t *testing.T) {
	edges := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	t.Run("int", func(t *testing.T) {
		s := make([]int, len(edges))
		for i, v := range edges {
			s[i] = int(v)
		}
		wireCase(t, s)
	})
	t.Run("int64", func(t *testing.T) { wireCase(t, edges) })
	t.Run("int32", func(t *testing.T) { wireCase(t, []int32{0, -1, 300, -40000, math.MaxInt32, math.MinInt32}) })
	t.Run("int16", func(t *testing.T) { wireCase(t, []int16{0, -1, 300, math.MaxInt16, math.MinInt16}) })
	t.Run("int8", func(t *testing.T) { wireCase(t, []int8{0, -1, 100, math.MaxInt8, math.MinInt8}) })
	t.Run("uint", func(t *testing.T) { wireCase(t, []uint{0, 1, 200, 70000, math.MaxUint64}) })
	t.Run("uint64", func(t *testing.T) { wireCase(t, []uint64{0, 128, math.MaxUint32 + 1, math.MaxUint64}) })
	t.Run("uint32", func(t *testing.T) { wireCase(t, []uint32{0, 255, 65536, math.MaxUint32}) })
	t.Run("uint16", func(t *testing.T) { wireCase(t, []uint16{0, 255, math.MaxUint16}) })
	t.Run("float64", func(t *testing.T) {
		wireCase(t, []float64{0, -1.5, math.Pi, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1)})
	})
	t.Run("float32", func(t *testing.T) { wireCase(t, []float32{0, 2.5, -math.MaxFloat32, float32(math.Inf(1))}) })
	t.Run("string", func(t *testing.T) {
		wireCase(t, []string{"", "a", strings.Repeat("b", 31), strings.Repeat("c", 32), strings.Repeat("d", 255),
			strings.Repeat("e", 256), strings.Repeat("f", 65536), "héllo\x00"})
	})
	t.Run("bool", func(t *testing.T) { wireCase(t, []bool{true, false, true}) })
	t.Run("struct", func(t *testing.T) {
		type s struct {
			A int
			B []string
			C map[string]float64
		}
		wireCase(t, []s{{1, []string{"x"}, map[string]float64{"k": 1}}, {}})
	})
	t.Run("pointer", func(t *testing.T) { x := 3; wireCase(t, []*int{&x, nil}) })
	t.Run("any", func(t *testing.T) { wireCase(t, []any{int8(1), "two", []any{true}}) })
	t.Run("empty", func(t *testing.T) { wireCase(t, []int{}) })
	t.Run("long", func(t *testing.T) {
		for _, n := range []int{15, 16, 65535, 65536} {
			s := make([]int, n)
			for i := range s {
				s[i] = i * 1000
			}
			wireCase(t, s)
		}
	})
}

func TestWireRefusesWhatDoesNotFit(t *testing.T) {
	b, err := appendArray(nil, []int{1, 300, -70000})
	require.NoError(t, err)
	_, err = readArray(b, make([]int8, 3))
	assert.ErrorIs(t, err, errWire, "300 does not fit an int8")
	_, err = readArray(b, make([]uint, 3))
	assert.ErrorIs(t, err, errWire, "-70000 does not fit a uint")
	_, err = readArray(b, make([]int, 2))
	assert.ErrorIs(t, err, errWire, "the count must match")
	_, err = readArray(b, make([]string, 3))
	assert.ErrorIs(t, err, errWire, "ints are no strings")
	_, err = readArray(b[:len(b)-1], make([]int, 3))
	assert.ErrorIs(t, err, errWire, "truncated")
	_, err = readArray([]byte{codeArray32, 0xff, 0xff, 0xff, 0xff, 1}, make([]int, 1))
	assert.ErrorIs(t, err, errWire, "a lying length")
}

func TestWireResult(t *testing.T) {
	errs := []taskErr{{Index: 1, Msg: "boom", Type: "*errors.errorString"}, {Index: 2, Panic: true, Msg: "p", Stack: "s"}}
	b, err := appendResult(nil, []string{"a", "", ""}, errs)
	require.NoError(t, err)
	out := make([]string, 3)
	got, err := readResult(b, out)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "", ""}, out)
	assert.Equal(t, errs, got)

	b, err = appendResult(nil, []int{4, 5}, nil)
	require.NoError(t, err)
	got, err = readResult(b, make([]int, 2))
	require.NoError(t, err)
	assert.Nil(t, got)

	bad, err := appendResult(nil, []int{4, 5}, []taskErr{{Index: 2}})
	require.NoError(t, err)
	_, err = readResult(bad, make([]int, 2))
	assert.ErrorIs(t, err, errWire, "a task error outside the chunk")
	_, err = readResult(b[:3], make([]int, 2))
	assert.ErrorIs(t, err, errWire)
}

func TestEncodeEach(t *testing.T) {
	out := []any{1, make(chan int), "x"}
	_, err := appendResult(nil, out, nil)
	require.Error(t, err, "a channel does not encode")
	b, err := encodeEach(nil, out, []taskErr{{Index: 2, Msg: "earlier"}})
	require.NoError(t, err)
	got := make([]any, 3)
	errs, err := readResult(b, got)
	require.NoError(t, err)
	require.Len(t, errs, 2)
	assert.Equal(t, 1, errs[0].Index)
	assert.Contains(t, errs[0].Msg, "encode the result")
	assert.Equal(t, 2, errs[1].Index, "in index order")
	assert.Nil(t, got[1])
}

// wireSeeds are the fuzzers' seeds: genuine messages, a lying header,
// nesting and trailing bytes. (TestWireChecksFirst has the nesting past
// codec.MaxDepth: as a seed, its 10 KB slow the fuzzer's minimizing down.)
func wireSeeds() [][]byte {
	deep := append(bytes.Repeat([]byte{0x91}, 100), 0xc0)
	return [][]byte{
		must(appendResult(nil, []int{1, -2, 300}, nil)),
		must(appendResult(nil, []string{"a", "bc", ""}, []taskErr{{Index: 1, Msg: "m"}})),
		must(appendResult(nil, []any{int8(1), "x", []any{true}}, []taskErr{{Index: 0, Panic: true, Msg: "p", Stack: "s"}})),
		must(appendChunk(nil, "fn", &tchunk[float64, int]{in: []float64{1.5, 2}})),
		must(appendChunk(nil, "square", &tchunk[int, int]{in: []int{1, 2, 3}})),
		must(appendChunk(nil, "m", &tchunk[map[string]int, int]{in: []map[string]int{{"a": 1}, {}}})),
		must(appendGeneral(nil, hello{Msg: "no", Type: "*errors.errorString", Init: true})),
		appendRefusal(nil, "no such function"),
		{0x92, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x92, 0xa1, 0x66, 0xdf, 0xff, 0xff, 0xff, 0xff},
		append([]byte{0x92, 0x91}, deep...),
		{0x92, 0x91, 0x01, 0xc0, 0xc1, 0xc1},
	}
}

// FuzzReadResult feeds arbitrary result messages (a worker's bytes, as the
// pool reads them) to the decoders: they must fail cleanly, never panic,
// never allocate for a length the bytes cannot hold, and what parses must
// round-trip.
func FuzzReadResult(f *testing.F) {
	for _, seed := range wireSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		readResult(b, make([]int, 3))
		readResult(b, make([]float64, 2))
		readResult(b, make([]struct{ A []int }, 2))
		readResult(b, make([]map[string]any, 1)) // checked first: no lying map header reaches the library
		readResult(b, make([]any, 3))
		refusal(b)
		out := make([]string, 3)
		if errs, err := readResult(b, out); err == nil {
			again, err := appendResult(nil, out, errs)
			require.NoError(t, err)
			back := make([]string, 3)
			errsBack, err := readResult(again, back)
			require.NoError(t, err)
			require.Equal(t, out, back, "what parsed round-trips")
			require.Equal(t, len(errs), len(errsBack))
		}
	})
}

// FuzzReadChunk feeds arbitrary chunk messages (the pool's bytes, as a
// worker reads them) and hello messages (a worker's first word, as the
// pool reads it) to their decoders, with the same demands.
func FuzzReadChunk(f *testing.F) {
	for _, seed := range wireSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h hello
		codec.Unmarshal(b, &h)
		name, rest, err := readChunkName(b)
		if err != nil {
			return
		}
		if in, err := readChunk[int](rest); err == nil {
			again, err := appendChunk(nil, name, &tchunk[int, int]{in: in})
			require.NoError(t, err)
			name2, rest2, err := readChunkName(again)
			require.NoError(t, err)
			back, err := readChunk[int](rest2)
			require.NoError(t, err)
			require.Equal(t, name, name2, "what parsed round-trips")
			require.Equal(t, in, back, "what parsed round-trips")
		}
		readChunk[string](rest)
		readChunk[bool](rest)
		readChunk[int8](rest)
		readChunk[uint16](rest)
		readChunk[float32](rest)
		readChunk[any](rest)
		readChunk[map[string]int](rest)
		readChunk[struct {
			A string
			B []float64
		}](rest)
	})
}

// Messages that are not exactly one well-formed value, or nest deeper
// than codec.MaxDepth, are refused before the library sees them.
func TestWireChecksFirst(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, codec.MaxDepth+1), 0xc0)
	_, _, err := readChunkName(append([]byte{0x92, 0xa1, 0x66, 0x91}, deep...))
	assert.ErrorIs(t, err, errWire)
	assert.ErrorIs(t, err, codec.ErrTooDeep)
	_, err = readResult(append([]byte{0x92, 0x91}, deep...), make([]any, 1))
	assert.ErrorIs(t, err, codec.ErrTooDeep)

	good := must(appendChunk(nil, "fn", &tchunk[int, int]{in: []int{1, 2}}))
	_, _, err = readChunkName(append(good, 0xc1))
	assert.ErrorIs(t, err, errWire, "a trailing byte")
	_, _, err = readChunkName(append(good, 0x01))
	assert.ErrorIs(t, err, errWire, "a second value")
	res := must(appendResult(nil, []int{1}, nil))
	_, err = readResult(append(res, 0xc0), make([]int, 1))
	assert.ErrorIs(t, err, errWire, "a trailing value after a result")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkWireInts measures, per value of a chunk of 12,500 ints, the
// hand-written codec (append, read), the msgpack library on the same slice,
// and the worker's loop over a trivial task (call).
func BenchmarkWireInts(b *testing.B) {
	in := make([]int, 12500)
	for i := range in {
		in[i] = i * i
	}
	buf, _ := appendArray(nil, in)
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			buf, _ = appendArray(buf[:0], in)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
	b.Run("read", func(b *testing.B) {
		out := make([]int, len(in))
		for b.Loop() {
			readArray(buf, out)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
	b.Run("library-append", func(b *testing.B) {
		for b.Loop() {
			buf, _ = appendGeneral(buf[:0], in)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
	b.Run("library-read", func(b *testing.B) {
		lib, _ := msgpack.Marshal(in)
		var out []int
		for b.Loop() {
			out = out[:0]
			msgpack.Unmarshal(lib, &out)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
	b.Run("call", func(b *testing.B) {
		f := benchSquare
		out := make([]int, len(in))
		ctx := context.Background()
		for b.Loop() {
			var errs []taskErr
			f.run(ctx, in, out, 0, &errs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/value")
	})
}

var benchSquare = Register("bench-square", func(ctx context.Context, x int) (int, error) { return x * x, nil })
