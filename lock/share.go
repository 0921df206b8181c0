package lock

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
)

// Kind is the kind recorded for a Lock in the environment variable that
// lists inherited descriptors: two descriptors, the read end then the
// write end of the lock's pipe.
const Kind = "lock"

// Errors of Share and Inherit, shared by every mproc package. Test with
// errors.Is.
var (
	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive, or its
	// descriptors are not the two ends of one pipe.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Lock (or a value holding one) was given to Send,
	// Put, Map, Apply or Go, or met in a message being decoded; share it
	// through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

// Share arranges for the child that cmd will start to inherit l under
// name: it appends the two ends of the lock's pipe to cmd.ExtraFiles and
// records them in cmd.Env (starting from os.Environ() when cmd.Env is nil;
// several Shares on one cmd all survive). The child calls Inherit(name).
// The parent keeps using l as before: the child is one more process
// contending for the same lock.
//
// Share may be called by several goroutines, for any number of commands.
// It fails with ErrClosed once l is closed.
func (l *Lock) Share(cmd *exec.Cmd, name string) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return share.Add(cmd, name, Kind, l.r, l.w)
}

// Inherit returns the Lock a parent shared with this process under name.
// Calling it again with the same name returns the same *Lock: a descriptor
// is never wrapped twice, and the process has one view of whether it holds
// the Lock. A Lock is inherited unlocked by this process, whatever the
// parent held when it started the child. The error lists the names that
// exist when name is unknown, and wraps ErrNotInherited, ErrWrongKind or
// ErrBadFD.
//
// Inherit is safe for use by several goroutines.
func Inherit(name string) (*Lock, error) {
	obj, err := share.Inherit(name, Kind, func(files []*os.File) (any, error) {
		l, err := inheritFiles(files)
		if err != nil {
			return nil, err // as share.Inherit asks, inheritFiles closed files
		}
		return l, nil
	})
	if err != nil {
		return nil, err
	}
	return obj.(*Lock), nil
}

// inheritFiles builds the Lock over files, the read and write ends of one
// pipe. It owns files: on error it closes them.
func inheritFiles(files []*os.File) (*Lock, error) {
	if err := checkFiles(files); err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	r, err := fd.Pollable(files[0])
	if err != nil {
		files[1].Close()
		return nil, err
	}
	w, err := fd.Pollable(files[1])
	if err != nil {
		r.Close()
		return nil, err
	}
	l, err := newLock(r, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return l, nil
}

// checkFiles checks that files are the read and write ends of one pipe.
func checkFiles(files []*os.File) error {
	if len(files) != 2 {
		return fmt.Errorf("%w: a lock has two descriptors, got %d", ErrWrongKind, len(files))
	}
	var id [2][2]uint64 // device, inode
	for i, f := range files {
		info, err := fd.FileStat(f)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrWrongKind, err)
		}
		if info.Socket || !(i == 0 && info.Readable || i == 1 && info.Writable) {
			return fmt.Errorf("%w: descriptor %d of a lock must be the %s end of a pipe", ErrWrongKind, i, [2]string{"read", "write"}[i])
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var st unix.Stat_t
		var serr error
		rc.Control(func(d uintptr) { serr = unix.Fstat(int(d), &st) })
		if serr != nil {
			return os.NewSyscallError("fstat", serr)
		}
		id[i] = [2]uint64{st.Dev, st.Ino}
	}
	if id[0] != id[1] {
		return fmt.Errorf("%w: the two descriptors of a lock are ends of different pipes", ErrWrongKind)
	}
	return nil
}
