package mq

import (
	"encoding"
	"hash/fnv"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// A queue records the type of its items, so that a process that opens it
// with another item type fails at once (Inherit) instead of at each Get
// with msgpack's words, or silently with zero fields.
//
// "The same type" means the same msgpack shape, which is what decides
// whether one side's items decode on the other side:
//   - bool, integers (any width and signedness), floats, strings and byte
//     slices or arrays are each one shape;
//   - a slice or an array is a list of its element's shape, a map a map of
//     its key's and value's shapes, a pointer its element's shape;
//   - a struct is the set of its encoded fields (their msgpack names, as
//     the msgpack library names them: tag, or field name; unexported and
//     "-" fields left out, embedded structs inlined) with their shapes, in
//     any order (order counts for an as_array struct);
//   - a type with its own msgpack or binary encoding (a CustomEncoder,
//     Marshaler, encoding.BinaryMarshaler, time.Time) is itself;
//   - an interface is "anything".
//
// Type names do not count: a Job and a copy of it declared in another
// package are the same shape. A queue of any (an interface) or of
// msgpack.RawMessage matches every type, on either side.

var (
	customEncoder   = reflect.TypeFor[msgpack.CustomEncoder]()
	marshaler       = reflect.TypeFor[msgpack.Marshaler]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
	rawMessage      = reflect.TypeFor[msgpack.RawMessage]()
)

// typeInfo is what a queue records of its item type.
type typeInfo struct {
	fingerprint uint64 // FNV-1a of the shape; 0: matches every type
	name        string // for messages
}

func typeOf[T any]() typeInfo {
	t := reflect.TypeFor[T]()
	name := t.String()
	if len(name) > maxTypeName {
		name = name[:maxTypeName]
	}
	if t.Kind() == reflect.Interface || t == rawMessage {
		return typeInfo{name: name}
	}
	var b strings.Builder
	writeShape(&b, t, map[reflect.Type]bool{})
	h := fnv.New64a()
	h.Write([]byte(b.String()))
	fp := h.Sum64()
	if fp == 0 {
		fp = 1
	}
	return typeInfo{fingerprint: fp, name: name}
}

// maxTypeName bounds the type name recorded.
const maxTypeName = 200

// compatible reports whether items of a decode as items of b.
func (a typeInfo) compatible(b typeInfo) bool {
	return a.fingerprint == 0 || b.fingerprint == 0 || a.fingerprint == b.fingerprint
}

func writeShape(b *strings.Builder, t reflect.Type, seen map[reflect.Type]bool) {
	if t.Kind() == reflect.Interface {
		b.WriteString("any")
		return
	}
	if t == timeType || t.Implements(customEncoder) || t.Implements(marshaler) || t.Implements(binaryMarshaler) ||
		reflect.PointerTo(t).Implements(customEncoder) || reflect.PointerTo(t).Implements(marshaler) {
		b.WriteString("own:" + t.PkgPath() + "." + t.Name())
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		b.WriteString("bool")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b.WriteString("int")
	case reflect.Float32, reflect.Float64:
		b.WriteString("float")
	case reflect.String:
		b.WriteString("str")
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			b.WriteString("bin")
			return
		}
		b.WriteString("[")
		writeShape(b, t.Elem(), seen)
		b.WriteString("]")
	case reflect.Map:
		b.WriteString("{")
		writeShape(b, t.Key(), seen)
		b.WriteString(":")
		writeShape(b, t.Elem(), seen)
		b.WriteString("}")
	case reflect.Pointer:
		writeShape(b, t.Elem(), seen)
	case reflect.Struct:
		if seen[t] {
			b.WriteString("rec:" + t.PkgPath() + "." + t.Name())
			return
		}
		seen[t] = true
		defer delete(seen, t)
		var fields []string
		asArray := false
		collectFields(t, seen, &fields, &asArray)
		if !asArray {
			sort.Strings(fields)
		}
		b.WriteString("struct{")
		b.WriteString(strings.Join(fields, ";"))
		b.WriteString("}")
	default: // chan, func, complex, unsafe pointer: msgpack cannot carry them
		b.WriteString("x:" + t.Kind().String())
	}
}

// collectFields appends "name:shape" for each field msgpack encodes.
func collectFields(t reflect.Type, seen map[reflect.Type]bool, fields *[]string, asArray *bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("msgpack")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Name == "_msgpack" {
			*asArray = *asArray || strings.Contains(opts, "as_array")
			continue
		}
		if name == "-" {
			continue
		}
		ft := f.Type
		if f.Anonymous && name == "" {
			inner := ft
			if inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct && !strings.Contains(opts, "noinline") {
				collectFields(inner, seen, fields, asArray)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		var b strings.Builder
		b.WriteString(name)
		b.WriteString(":")
		writeShape(&b, ft, seen)
		*fields = append(*fields, b.String())
	}
}
