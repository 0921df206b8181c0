package process

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/mproc-go/mproc/internal/share"
)

var (
	// ErrNotRegistered is returned by [Cmd.Start] when no function is
	// registered under the Cmd's name. Test with errors.Is.
	ErrNotRegistered = errors.New("process: no function registered under that name")
	// ErrNotStarted is returned by [Cmd.Wait], [Cmd.Signal] and [Cmd.Kill]
	// before a successful [Cmd.Start]. Test with errors.Is.
	ErrNotStarted = errors.New("process: not started")
	// ErrStarted is returned by [Cmd.Start] and [Cmd.Share] once the Cmd
	// has been started. Test with errors.Is.
	ErrStarted = errors.New("process: already started")
	// ErrNoMain is wrapped by the error of [Cmd.Start] when the child
	// exits before it reaches [Main], or has not reached it within
	// [Cmd.StartTimeout]: the program's main does not call Main first,
	// so the child would run the parent's main again (Start then kills
	// it). [pool.New] fails with it for the same reason. It is also
	// returned by Start in such a child, where starting another child
	// would run main again in a loop. Test with errors.Is.
	ErrNoMain = errors.New("process: main does not call process.Main first")
	// ErrFlush is wrapped by the error of [Cmd.Wait] when the child's
	// flush of its queues at exit did not complete: it failed, its
	// FlushTimeout ran out, or the child was killed while flushing. Items
	// the child had put may not have reached their queue. Test with
	// errors.Is.
	ErrFlush = errors.New("process: the child's flush at exit did not complete")
	// ErrReservedName is returned by [Cmd.Share] for a name of the
	// "mproc." prefix, which the package keeps for itself. Test with
	// errors.Is.
	ErrReservedName = errors.New("process: share names starting with \"mproc.\" are reserved")
	// ErrNotSendable is the error of a message holding a Cmd (or a lock,
	// queue or Conn, which a child gets through [Cmd.Share] instead): a
	// Cmd belongs to the process that started it. Test with errors.Is.
	ErrNotSendable = share.ErrNotSendable
	// ErrBadName is returned by [Cmd.Share] for a name other than ASCII
	// letters, digits, '_', '-' and '.'. It is the ErrBadName of every
	// mproc package. Test with errors.Is.
	ErrBadName = share.ErrBadName
	// ErrTyped is returned by [Cmd.Start] for a function registered with
	// [RegisterFunc]: it takes an argument, so its commands come from its
	// [Func.Command]. Test with errors.Is.
	ErrTyped = errors.New("process: the function takes a typed argument; start it with its Func's Command")
	// ErrEncode is wrapped by the error of [TypedCmd.Start] for an
	// argument that msgpack cannot encode, and by that of [TypedCmd.Wait]
	// for a result the parent cannot decode. Test with errors.Is.
	ErrEncode = errors.New("process: msgpack encoding")
)

// Error is the error that a child's function returned, as the parent sees
// it: the value stayed in the child, its text and type came over the
// report channel. Wait returns it as *Error; test with errors.As.
type Error struct {
	Name string // the registered name of the function
	Pid  int    // the child's process ID
	Msg  string // the text of the error (err.Error() in the child)
	Type string // the error's dynamic type in the child, as printed by %T
}

func (e *Error) Error() string {
	return fmt.Sprintf("process: %s (pid %d): %s", e.Name, e.Pid, e.Msg)
}

// PanicError reports a child whose function panicked: the panic value as
// text and the stack of the panicking goroutine. Wait returns it as
// *PanicError; test with errors.As. A panic in another goroutine of the
// child is not recovered (Go cannot); it kills the child, and Wait returns
// an [ExitError] with exit status 2, the stack having gone to the child's
// stderr.
type PanicError struct {
	Name  string // the registered name of the function
	Pid   int    // the child's process ID
	Value string // the panic value, formatted with %v
	Stack string // the panicking goroutine's stack, as runtime/debug.Stack prints it
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("process: %s (pid %d): panic: %s\n\n%s", e.Name, e.Pid, e.Value, e.Stack)
}

// ExitError reports a child that ended without reporting the result of its
// function: it was killed by a signal, called os.Exit, crashed in the
// runtime, or died before Main ran. It also reports a child killed after it
// reported success. Wait returns it as *ExitError; test with errors.As.
type ExitError struct {
	Name  string           // the registered name of the function
	Pid   int              // the child's process ID
	State *os.ProcessState // how the child ended
}

func (e *ExitError) Error() string {
	s := fmt.Sprintf("process: %s (pid %d): %v", e.Name, e.Pid, e.State)
	if e.State.Success() || e.Signal() == 0 {
		s += " before its function returned"
	}
	return s
}

// ExitCode returns the child's exit status, or -1 when a signal ended it.
func (e *ExitError) ExitCode() int { return e.State.ExitCode() }

// Signal returns the signal that ended the child, or 0 if it exited.
func (e *ExitError) Signal() syscall.Signal {
	if ws, ok := e.State.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// The report, the one message a child sends on its control channel before
// it exits. Its absence means the child never got to the end of Main.
type report struct {
	Kind  uint8  `msgpack:"k"`
	Msg   string `msgpack:"m,omitempty"`
	Type  string `msgpack:"t,omitempty"`
	Stack string `msgpack:"s,omitempty"`
	// The flush at exit: how many queues it flushed, and the items they
	// still buffered (for the parent's log).
	Flushes int `msgpack:"f,omitempty"`
	Items   int `msgpack:"i,omitempty"`
	// Result is the encoded result of a function registered with
	// RegisterFunc, with Kind kindOK.
	Result []byte `msgpack:"r,omitempty"`
	// Flush is the error of the flush at exit, "" if it succeeded (its
	// text is in Msg too).
	Flush string `msgpack:"x,omitempty"`
}

const (
	kindNone  uint8 = iota // no report arrived
	kindOK                 // the function returned nil and the flush succeeded
	kindError              // the function returned an error, or the flush failed
	kindPanic              // the function panicked

	// Not reports: the notices a child sends before its report.
	kindReady    = 8 // Main runs: the first message of every child
	kindFlushing = 9 // the flush at exit begins, bounded by the flush timeout
)

// maxText bounds each text field of a report, so that a huge error message
// cannot make the report fail.
const maxText = 256 << 10

func truncate(s string) string {
	if len(s) <= maxText {
		return s
	}
	return s[:maxText] + fmt.Sprintf("... [%d bytes truncated]", len(s)-maxText)
}
