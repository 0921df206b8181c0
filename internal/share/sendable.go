package share

// An object made of descriptors (a Lock, a queue, a Conn) or of a
// process's own goroutines (a pool, a process.Cmd) has no meaning as the
// bytes of a message: msgpack would encode its exported fields, none, and
// the receiver would get an empty object that hangs or panics when used.
// Python refuses such a value at once ("Lock objects should only be shared
// between processes through inheritance"); so does mproc, in the caller:
// each such type embeds one of the markers below, whose msgpack methods
// fail with ErrNotSendable and a text that names the type and says how to
// share it. A marker is a zero-size value with value-receiver methods, so
// they are promoted to the type and to its pointer (a field of type Lock
// or *Lock, a Queue[T] copied by value, an any holding either), without
// the type itself needing a value receiver (which would copy its mutex).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrNotSendable is the error of encoding (Send, Put, Map, Apply, Go) or
// decoding a value that holds an mproc object which cannot travel as the
// bytes of a message. It is re-exported by every public package. Test with
// errors.Is.
var ErrNotSendable = errors.New("mproc: object cannot travel in a message")

// A TypeName is a zero-size type whose String method returns the name,
// as "pkg.Type", of the type that embeds a marker parameterized by it.
// (The marker cannot be parameterized by the type itself: an alias of
// share.Inheritable[Queue[T]] inside Queue[T] crashes the go1.26 compiler
// in the packages that import it.)
type TypeName interface {
	comparable
	String() string
}

// Inheritable marks a type whose objects a child gets by inheritance:
// Cmd.Share (or pool.Config.Shares) in the parent, its package's Inherit
// in the child. N names the type. Embed it, through an unexported alias,
// in the type.
type Inheritable[N TypeName] struct{}

// EncodeMsgpack fails with ErrNotSendable: see Inheritable.
func (Inheritable[N]) EncodeMsgpack(*msgpack.Encoder) error {
	var n N
	return fmt.Errorf("%w: a %s cannot be sent in a message; share it with a child through inheritance: "+
		"process.Cmd.Share (or pool.Config.Shares) in the parent, %s.Inherit in the child; "+
		"or hand it to a running process with conn.Conn.SendShare over a unix socket",
		ErrNotSendable, n, pkgOf(n.String()))
}

// DecodeMsgpack fails with ErrNotSendable: see Inheritable.
func (*Inheritable[N]) DecodeMsgpack(*msgpack.Decoder) error {
	var n N
	return fmt.Errorf("%w: a %s cannot be received in a message; a child gets it through inheritance (%s.Inherit)",
		ErrNotSendable, n, pkgOf(n.String()))
}

// Local marks a type whose objects belong to the process that made them
// and cannot be shared at all (a pool, a process.Cmd). N names the type.
// Embed it, through an unexported alias, in the type.
type Local[N TypeName] struct{}

// EncodeMsgpack fails with ErrNotSendable: see Local.
func (Local[N]) EncodeMsgpack(*msgpack.Encoder) error {
	var n N
	return fmt.Errorf("%w: a %s cannot be sent in a message: it belongs to the process that made it and cannot be shared",
		ErrNotSendable, n)
}

// DecodeMsgpack fails with ErrNotSendable: see Local.
func (*Local[N]) DecodeMsgpack(*msgpack.Decoder) error {
	var n N
	return fmt.Errorf("%w: a %s cannot be received in a message: it belongs to the process that made it",
		ErrNotSendable, n)
}

func pkgOf(typeName string) string {
	pkg, _, _ := strings.Cut(typeName, ".")
	return pkg
}
