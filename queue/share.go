package queue

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/mproc-go/mproc/internal/mq"
	"github.com/mproc-go/mproc/internal/share"
)

// Kind is the kind recorded for a Queue in the environment variable that
// lists inherited descriptors: the two ends of the socketpair, then, for a
// bounded queue, the read and write ends of the token pipe.
const Kind = "queue"

// Errors of Share and Inherit, shared by every mproc package. Test with
// errors.Is.
var (
	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive, or its
	// descriptors do not make a queue.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Queue (or a value holding one) was given to Send,
	// Put, Map, Apply or Go, or met in a message being decoded; share it
	// through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

// Share arranges for the child that cmd will start to inherit q under
// name: it appends q's descriptors to cmd.ExtraFiles and records them in
// cmd.Env (starting from os.Environ() when cmd.Env is nil; several Shares
// on one cmd all survive). The child calls Inherit(name). The parent keeps
// using q: the child is one more process on the same queue.
//
// Share may be called by several goroutines, for any number of commands.
// It fails with ErrClosed once q is closed.
func (q *Queue[T]) Share(cmd *exec.Cmd, name string) error {
	if q.q.Closed() {
		return ErrClosed
	}
	return share.Add(cmd, name, Kind, q.q.Files()...)
}

// Inherit returns the Queue a parent shared with this process under name.
// Calling it again with the same name returns the same *Queue; asking for
// another T is an error. The error wraps ErrNotInherited (listing the names
// there are), ErrWrongKind or ErrBadFD. ErrWrongKind also means that the
// parent's queue has items of another msgpack shape than T (see "Item
// types" in the package documentation of queue): the check happens here,
// not at the first Get.
//
// The queue's flush is registered to run at a child's exit (see
// process.Main); Close removes it.
func Inherit[T any](name string) (*Queue[T], error) {
	return share.InheritAs(name, Kind, func(files []*os.File) (*Queue[T], error) {
		q, err := mq.FromFiles[T](files, mq.Hooks{})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrongKind, err)
		}
		return &Queue[T]{q: q}, nil
	})
}
