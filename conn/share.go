package conn

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
)

// Kind is the kind recorded for a Conn in the environment variable that
// lists inherited descriptors (see Share).
const Kind = "conn"

// Errors of Share and Inherit, shared by every mproc package. Test with
// errors.Is.
var (
	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive, or its
	// descriptor is neither a pipe nor a socket.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: the descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrNotSendable: a Conn (or a value holding one) was given to Send,
	// Put, Map, Apply or Go, or met in a message being decoded; share it
	// through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
)

// Share arranges for the child that cmd will start to inherit this end of
// the connection under name: it appends exactly one file to
// cmd.ExtraFiles and records name -> descriptor in cmd.Env (starting from
// os.Environ() when cmd.Env is nil). Several Shares on one cmd all survive.
// The child calls Inherit(name).
//
// After cmd.Start, close this Conn in the parent unless the parent uses
// it too: a copy left open keeps the peer from ever seeing EOF.
//
// A Conn reads ahead (see the package documentation), so Share refuses,
// with ErrBuffered, a Conn that holds bytes it has received and not yet
// returned: the child would begin in the middle of the stream. Once a
// readable Conn has been shared, this process reads from it exactly the
// bytes of each frame, no more, so that it never takes bytes another
// process was to read.
func (c *Conn) Share(cmd *exec.Cmd, name string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.hasBuffered() {
		return fmt.Errorf("%w: receive them before sharing the Conn", ErrBuffered)
	}
	if err := share.Add(cmd, name, Kind, c.f); err != nil {
		return err
	}
	if c.info.Readable {
		c.exact.Store(true)
	}
	return nil
}

// Inherit returns the Conn a parent shared with this process under name.
// Calling it again with the same name returns the same Conn: a descriptor
// is never wrapped twice. The error lists the names that exist when name
// is unknown, and wraps ErrNotInherited, ErrWrongKind or ErrBadFD.
//
// The descriptor is made nonblocking if the parent left it blocking (a
// parent in another language may).
func Inherit(name string) (*Conn, error) {
	obj, err := share.Inherit(name, Kind, func(files []*os.File) (any, error) {
		if len(files) != 1 {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("%w: a conn has one descriptor, got %d", ErrWrongKind, len(files))
		}
		return inheritFile(files[0])
	})
	if err != nil {
		return nil, err
	}
	return obj.(*Conn), nil
}

func inheritFile(f *os.File) (*Conn, error) {
	if _, err := fd.FileStat(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrWrongKind, err)
	}
	return Own(f)
}
