package share

import "reflect"

// TypeID names the Go type T for a check across processes: a child asking
// for an object with another type than its parent made it with (a
// value.Value[int] inherited as a Value[string]) fails at Inherit instead
// of at the first decode. Named types carry their package path (two
// packages' Item types differ); others are spelled out ([10]int32,
// map[string]int).
func TypeID[T any]() string {
	t := reflect.TypeFor[T]()
	if t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}
