// Package value provides [Value], a value of any Go type shared by the
// processes of a program: what Python's multiprocessing.Value and Array
// are to Python. Python's Array is a Value of a slice or of a Go array:
//
//	n, err := value.New(0.0)              // Value('d', 0.0)
//	a, err := value.New([10]int32{})      // Array('i', 10)
//	err = n.Share(cmd, "n")               // before cmd.Start
//
//	n, err := value.Inherit[float64]("n") // child
//	n.Update(ctx, func(x float64) float64 { return x + 1 })
//
// [Value.Update] is Python's `with v.get_lock(): v.value += 1`: fn runs under
// the value's lock, atomically against every process. [Value.Load] then
// [Value.Store] is two steps, and another process's update between them is
// lost, as in Python.
//
// # How it works
//
// The value is msgpack-encoded (in the caller: a value that cannot be
// encoded fails in New, Store or Update, and changes nothing) into a
// record kept in a memfd, an anonymous file in memory that children
// inherit like a pipe, read with pread(2) and written with pwrite(2) (never
// mapped: no shared memory). The record has two copies written in turn,
// each with a sequence number and a CRC (internal/record). Update holds
// flock(2) on the memfd (internal/plock, the mechanism of lock.Lock),
// reads the current copy, runs fn and writes the result over the other
// copy in one pwrite. Load takes no lock: it reads both copies and keeps the
// newest whose CRC matches.
//
// # Crashes
//
// A process killed at any moment, SIGKILL included, also in the middle of
// an Update's write, leaves the value readable and holding the old value or
// the new one, never a mix and never nothing: the half-written copy's CRC
// does not match, and readers take the other one. The kernel drops the
// dead process's flock, so the others go on at once (a process already
// waiting to update notices within 100 ms). Python's Value, in the same
// case, keeps its lock locked for ever.
//
// # Cost
//
// An uncontended Update is six system calls: flock, two preads, pwrite,
// flock(LOCK_UN) and the write that wakes waiters; Load is two preads.
// Both also encode or decode the value with msgpack. Python's Value lives
// in shared memory and makes no system call uncontended: it is faster for
// a single process; see bench/README.md for the figures. Update holds the
// lock while fn runs: keep fn short and free of waits.
//
// A Value of up to 4 GiB works; each Update rewrites the whole encoded
// value. Linux only.
package value

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/codec"
	"github.com/mproc-go/mproc/internal/record"
	"github.com/mproc-go/mproc/internal/share"
)

// Kind is the kind recorded for a Value in the environment variable that
// lists inherited descriptors: three descriptors, the memfd holding the
// value and the two ends of its wake pipe.
const Kind = "value"

// Errors of this package. Test with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Value, and by calls that
	// Close interrupted.
	ErrClosed = errors.New("value: closed")
	// ErrCorrupt means the shared record holds something that does not
	// decode as the Value's type.
	ErrCorrupt = errors.New("value: corrupt")

	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive, or as a
	// Value of another type.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Value (or a value holding one) was given to
	// Send, Put, Map, Apply or Go, or met in a message being decoded; share
	// it through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

type notSendable = share.Inheritable[typeName]

// typeName names value.Value in the errors of notSendable.
type typeName struct{}

func (typeName) String() string { return "value.Value" }

// Value is a value of type T shared by processes. It is safe for use by
// several goroutines and processes. The zero Value is not usable: make one
// with New or Inherit.
type Value[T any] struct {
	// notSendable makes msgpack refuse a Value in a message: see ErrNotSendable.
	notSendable

	rec *record.Record
}

// New returns a Value holding v. It fails, creating nothing, when v cannot
// be msgpack-encoded.
func New[T any](v T) (*Value[T], error) {
	data, err := encode(v)
	if err != nil {
		return nil, err
	}
	rec, err := record.New("value", []byte(share.TypeID[T]()), data)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return &Value[T]{rec: rec}, nil
}

func encode[T any](v T) ([]byte, error) {
	data, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value: encode %T: %w", v, err)
	}
	if len(data) > record.MaxLen {
		return nil, fmt.Errorf("value: encoded %T is %d bytes, more than %d", v, len(data), record.MaxLen)
	}
	return data, nil
}

func decode[T any](data []byte) (T, error) {
	var v T
	if err := codec.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%w: decode a %s: %w", ErrCorrupt, share.TypeID[T](), err)
	}
	return v, nil
}

func (v *Value[T]) err(err error) error {
	return record.Public(err, ErrClosed, "value: ")
}

// Load returns the value. It takes no lock and does not wait for an Update
// under way in another process (it returns the value from before it); ctx
// matters only in the rare case where two updates overwrite both copies
// while Load reads, and Load then takes the lock.
func (v *Value[T]) Load(ctx context.Context) (T, error) {
	data, err := v.rec.Load(ctx)
	if err != nil {
		var zero T
		return zero, v.err(err)
	}
	return decode[T](data)
}

// Store sets the value to x, under the value's lock. x is encoded first: a
// value that cannot be encoded fails here and changes nothing. On ctx's
// end before the lock is taken it returns ctx.Err() and changes nothing.
func (v *Value[T]) Store(ctx context.Context, x T) error {
	data, err := encode(x)
	if err != nil {
		return err
	}
	return v.err(v.rec.Update(ctx, func([]byte) ([]byte, error) { return data, nil }))
}

// Update sets the value to fn(old) under the value's lock and returns the
// new value: atomically against every goroutine and process, so that no
// update is lost. fn runs while every other Update and Store waits: keep
// it short, and do not call the Value's methods from it. When the result
// cannot be encoded, Update returns the error and the value is unchanged;
// on ctx's end before the lock is taken it returns ctx.Err() and changes
// nothing.
func (v *Value[T]) Update(ctx context.Context, fn func(old T) T) (T, error) {
	var out T
	err := v.rec.Update(ctx, func(old []byte) ([]byte, error) {
		x, err := decode[T](old)
		if err != nil {
			return nil, err
		}
		out = fn(x)
		return encode(out)
	})
	if err != nil {
		var zero T
		return zero, v.err(err)
	}
	return out, nil
}

// Share arranges for the child that cmd will start to inherit v under
// name: it appends v's three descriptors to cmd.ExtraFiles and records
// them in cmd.Env. The child calls Inherit[T](name) with the same T. Share
// may be called by several goroutines, for any number of commands; it
// fails with ErrClosed once v is closed.
func (v *Value[T]) Share(cmd *exec.Cmd, name string) error {
	select {
	case <-v.rec.Done():
		return ErrClosed
	default:
	}
	return share.Add(cmd, name, Kind, v.rec.Files()...)
}

// Inherit returns the Value a parent shared with this process under name.
// T must be the type the parent's Value holds, or Inherit fails with
// ErrWrongKind. Calling it again with the same name returns the same
// *Value. The error lists the names that exist when name is unknown, and
// wraps ErrNotInherited, ErrWrongKind or ErrBadFD. Inherit is safe for use
// by several goroutines.
func Inherit[T any](name string) (*Value[T], error) {
	return share.InheritAs(name, Kind, func(files []*os.File) (*Value[T], error) {
		rec, err := record.FromFiles(files)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrongKind, err)
		}
		meta, err := rec.Meta()
		if err != nil {
			rec.Close()
			return nil, err
		}
		if want := share.TypeID[T](); string(meta) != want {
			rec.Close()
			return nil, fmt.Errorf("%w: a Value of %s, not of %s", ErrWrongKind, meta, want)
		}
		return &Value[T]{rec: rec}, nil
	})
}

// Close releases this process's descriptors of v and wakes every goroutine
// of this process waiting for v's lock, which get ErrClosed; it waits for
// a running Update of this process to finish. Other processes are not
// affected. Close is idempotent and safe to call concurrently with the
// other methods; later calls get ErrClosed.
func (v *Value[T]) Close() error { return v.err(v.rec.Close()) }
