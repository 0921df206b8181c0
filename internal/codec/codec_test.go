package codec

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

type item struct {
	Name  string
	N     int64
	F     float64
	B     []byte
	Tags  []string
	Attrs map[string]any
	Ext   msgpack.RawMessage
	Nil   *int
	OK    bool
	U8    uint8
	I16   int16
	Small float32
}

func TestCheckAcceptsWhatMsgpackWrites(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, -33, 127, 128, 255, 65535, 1 << 20, -1 << 40, uint64(1) << 63,
		float32(1.5), 2.5, "", "héllo", string(make([]byte, 300)), string(make([]byte, 70000)),
		[]byte{}, make([]byte, 300), make([]byte, 70000),
		[]int{}, make([]int, 20), make([]int, 70000), map[string]int{}, map[string]int{"a": 1},
		item{Name: "x", Tags: []string{"a", "b"}, Attrs: map[string]any{"k": []any{1, "2", nil}}, B: []byte{1}},
		[]item{{}, {N: 5}},
	}
	for _, v := range values {
		p, err := msgpack.Marshal(v)
		require.NoError(t, err)
		assert.NoError(t, Check(p), "%T %v", v, p)
	}
	// Extension types.
	for _, n := range []int{1, 2, 4, 8, 16, 3, 300, 70000} {
		var buf []byte
		switch n {
		case 1, 2, 4, 8, 16:
			buf = append([]byte{0xd4 + byte(map[int]int{1: 0, 2: 1, 4: 2, 8: 3, 16: 4}[n]), 7}, make([]byte, n)...)
		case 3:
			buf = append([]byte{0xc7, 3, 7}, make([]byte, 3)...)
		case 300:
			buf = append([]byte{0xc8, 1, 44, 7}, make([]byte, 300)...)
		case 70000:
			buf = append([]byte{0xc9, 0, 1, 0x11, 0x70, 7}, make([]byte, 70000)...)
		}
		assert.NoError(t, Check(buf), "ext of %d bytes", n)
	}
}

func TestCheckRefuses(t *testing.T) {
	for name, p := range map[string][]byte{
		"empty":                  {},
		"reserved 0xc1":          {0xc1},
		"str8 truncated length":  {0xd9},
		"str8 truncated body":    {0xd9, 5, 'a'},
		"fixstr truncated":       {0xa3, 'a'},
		"array32 lying":          {0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		"map32 lying":            {0xdf, 0, 0x10, 0, 0, 1, 1},
		"fixarray short":         {0x93, 1, 2},
		"nested lying maps":      {0x81, 0xa1, 'k', 0xdf, 0xff, 0xff, 0xff, 0xff},
		"int64 truncated":        {0xd3, 1, 2},
		"ext32 lying":            {0xc9, 0xff, 0xff, 0xff, 0xff, 1},
		"fixext truncated":       {0xd8, 1, 2},
		"map16 truncated header": {0xde, 0},
	} {
		err := Check(p)
		assert.True(t, errors.Is(err, ErrMalformed), "%s: want ErrMalformed, got %v", name, err)
		var v any
		assert.Error(t, Unmarshal(p, &v), name)
	}
}

// A few bytes of nested headers that each claim a huge map would make the
// msgpack library allocate a million-element map per level.
func TestUnmarshalBoundsAllocation(t *testing.T) {
	var p []byte
	for range 200 {
		p = append(p, 0x81, 0xa1, 'k', 0xdf, 0x7f, 0xff, 0xff, 0xff)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var v any
	err := Unmarshal(p, &v)
	runtime.ReadMemStats(&after)
	assert.True(t, errors.Is(err, ErrMalformed), "got %v", err)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "a refused payload allocates next to nothing")
}

func FuzzCheck(f *testing.F) {
	for _, v := range []any{nil, 1, "x", []any{1, "a", map[string]any{"b": []byte{1}}}, item{Name: "n"}} {
		p, _ := msgpack.Marshal(v)
		f.Add(p)
	}
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff})
	f.Add(nested(100))
	f.Add([]byte{0x2a, 0xc1, 0xc1, 0xc1})
	f.Fuzz(func(t *testing.T, p []byte) {
		if err := Check(p); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Check error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What Check accepts is exactly one value: decoding it with a
		// stream decoder leaves nothing unread.
		d := msgpack.NewDecoder(bytes.NewReader(p))
		if err := d.Skip(); err != nil {
			t.Fatalf("Check accepted %x, which the library cannot skip: %v", p, err)
		}
		if _, err := d.PeekCode(); err == nil {
			t.Fatalf("Check accepted %x, which has bytes after its value", p)
		}
		// What Check accepts, the library decodes with allocation bounded by
		// the payload's size.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var v any
		_ = msgpack.Unmarshal(p, &v)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > uint64(1<<20+1000*len(p)) {
			t.Fatalf("decoding %d checked bytes allocated %d bytes", len(p), got)
		}
	})
}

// nested returns depth one-element arrays around nil, one byte per level.
func nested(depth int) []byte {
	p := make([]byte, depth+1)
	for i := range depth {
		p[i] = 0x91
	}
	p[depth] = 0xc0
	return p
}

func TestDepthBound(t *testing.T) {
	// At the limit: accepted, and the library decodes it, into any and,
	// skipped as an unknown field, into a struct.
	p := nested(MaxDepth)
	require.NoError(t, Check(p))
	var v any
	require.NoError(t, Unmarshal(p, &v))
	inStruct := append([]byte{0x82, 0xa1, 'X', 0x01, 0xa7}, "Unknown"...)
	inStruct = append(inStruct, nested(MaxDepth-1)...)
	var s struct{ X int }
	require.NoError(t, Unmarshal(inStruct, &s))
	assert.Equal(t, 1, s.X)

	// One level more, or the 8 Mi levels that overflow the decoder's
	// stack: refused before decoding.
	for _, depth := range []int{MaxDepth + 1, 8 << 20} {
		p := nested(depth)
		err := Check(p)
		assert.ErrorIs(t, err, ErrTooDeep, "depth %d", depth)
		assert.ErrorIs(t, err, ErrMalformed, "depth %d", depth)
		assert.ErrorIs(t, Unmarshal(p, &v), ErrTooDeep, "depth %d", depth)
	}
	// Maps count as levels too, and a level ends with its last element.
	deepMap := bytes.Repeat([]byte{0x81, 0xc0}, MaxDepth+1)
	deepMap = append(deepMap, 0xc0)
	assert.ErrorIs(t, Check(deepMap), ErrTooDeep)
	wide := []byte{0xdc, 0x4e, 0x20} // array16 of 20,000 elements, each [nil]
	for range 20000 {
		wide = append(wide, 0x91, 0xc0)
	}
	assert.NoError(t, Check(wide), "siblings do not add up to depth")
}

func TestTrailingBytesRefused(t *testing.T) {
	for name, p := range map[string][]byte{
		"reserved after":   {0x2a, 0xc1, 0xc1, 0xc1},
		"second value":     {0x2a, 0x2a},
		"after an array":   {0x92, 1, 2, 3},
		"after a string":   {0xa1, 'a', 'b'},
		"nil then nothing": {0xc0, 0x00},
	} {
		err := Check(p)
		assert.ErrorIs(t, err, ErrMalformed, name)
		var v any
		assert.ErrorIs(t, Unmarshal(p, &v), ErrMalformed, name)
	}
}

// Decoding a pointer field starts no goroutine (msgpack's
// UsePreallocateValues, left set, starts one per pointer type that never
// ends), with Unmarshal or a reused Decoder.
func TestUnmarshalStartsNoGoroutine(t *testing.T) {
	type inner struct{ A int }
	type outer struct{ P *inner }
	b, err := msgpack.Marshal(outer{P: &inner{A: 7}})
	require.NoError(t, err)
	var o outer
	require.NoError(t, Unmarshal(b, &o))
	require.NotNil(t, o.P)
	assert.Equal(t, 7, o.P.A)
	var d Decoder
	for range 3 {
		var o2 outer
		require.NoError(t, d.Unmarshal(b, &o2))
		assert.Equal(t, o, o2)
	}
	goleak.VerifyNone(t)
}
