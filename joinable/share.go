package joinable

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/mproc-go/mproc/internal/counter"
	"github.com/mproc-go/mproc/internal/mq"
	"github.com/mproc-go/mproc/internal/share"
)

// Share arranges for the child that cmd will start to inherit jq under
// name: it appends jq's descriptors (see Kind) to cmd.ExtraFiles and
// records them in cmd.Env (starting from os.Environ() when cmd.Env is nil;
// several Shares on one cmd all survive). The child calls Inherit(name).
// The parent keeps using jq: the child is one more process on the same
// queue and the same task count.
//
// Share may be called by several goroutines, for any number of commands.
// It fails with ErrClosed once jq is closed.
func (jq *Queue[T]) Share(cmd *exec.Cmd, name string) error {
	if jq.closed.Load() {
		return ErrClosed
	}
	return share.Add(cmd, name, Kind, jq.files()...)
}

// Inherit returns the joinable queue a parent shared with this process
// under name. Calling it again with the same name returns the same *Queue;
// asking for another T is an error. The error wraps ErrNotInherited
// (listing the names there are), ErrWrongKind or ErrBadFD. ErrWrongKind
// also means that the parent's queue has items of another msgpack shape
// than T (see "Item types" in package queue): the check happens here, not
// at the first Get.
//
// What the queue holds for other processes (items put, TaskDones) is
// flushed at a child's exit through process.Main; a program that exits
// another way should Close the queue.
func Inherit[T any](name string) (*Queue[T], error) {
	return share.InheritAs(name, Kind, func(files []*os.File) (*Queue[T], error) {
		jq, err := fromFiles[T](files)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrongKind, err)
		}
		return jq, nil
	})
}

func fromFiles[T any](files []*os.File) (*Queue[T], error) {
	if len(files) <= counter.NumFiles {
		closeFiles(files)
		return nil, fmt.Errorf("%d descriptors, want the task count's %d and the queue's", len(files), counter.NumFiles)
	}
	c, err := counter.FromFiles(files[:counter.NumFiles])
	if err != nil {
		closeFiles(files[counter.NumFiles:])
		return nil, fmt.Errorf("task count: %w", err)
	}
	jq := newQueue[T](c)
	q, err := mq.FromFiles[T](files[counter.NumFiles:], jq.hooks())
	if err != nil {
		jq.abandon()
		return nil, err
	}
	jq.start(q)
	return jq, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
