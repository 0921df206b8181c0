package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
)

// Handing primitives to a running process: SendShare sends one frame
// carrying an object's descriptors (SCM_RIGHTS) over a unix socket;
// RecvShare registers them in this process as if they had been inherited,
// and the package's own Inherit builds the object, with every check it
// makes for a child. FORMAT.md describes the frame.

var (
	// ErrNotUnixSocket is returned by SendShare on a Conn that cannot
	// carry descriptors: anything but a unix socket (tcp, a Simplex
	// pipe), or a TLS connection. Test with errors.Is.
	ErrNotUnixSocket = errors.New("conn: descriptors travel only over a unix socket")
	// ErrNotShared is returned by RecvShare for a message that is not a
	// shared object; the message is consumed. Test with errors.Is.
	ErrNotShared = errors.New("conn: the message is not a shared object")
	// ErrUnexpectedShare is returned by Recv and RecvBytes for a shared
	// object (SendShare), which only RecvShare receives; the object is
	// consumed and its descriptors closed. Test with errors.Is.
	ErrUnexpectedShare = errors.New("conn: received a shared object; receive it with RecvShare")
	// ErrNameTaken is returned by RecvShare when this process already has
	// an object, inherited or received and not closed, by the name the
	// sender gave; the descriptors are closed. Test with errors.Is.
	ErrNameTaken = share.ErrNameTaken
)

// Sharer is what every mproc primitive is: a lock.Lock, a queue.Queue, a
// simplequeue.Queue, a joinable.Queue and a Conn can all be shared with a
// child by name, and so sent to a running process with SendShare.
type Sharer interface {
	Share(cmd *exec.Cmd, name string) error
}

// The shared-object frame: shareMagic (whose first byte, 0xc1, begins no
// msgpack value), a version, the number of descriptors, then the name and
// the kind, each a length byte and ASCII bytes. The descriptors travel with
// the frame's first byte.
const (
	shareMagic   = "\xc1MPROC-SHARE"
	shareVersion = 1
	// maxShareFDs is the most descriptors one shared object has (a
	// joinable queue has the most, well under it).
	maxShareFDs = 16
)

func appendShareFrame(dst []byte, name, kind string, nfds int) []byte {
	p := append([]byte(shareMagic), shareVersion, byte(nfds), byte(len(name)))
	p = append(p, name...)
	p = append(p, byte(len(kind)))
	p = append(p, kind...)
	dst = AppendHeader(dst, len(p))
	return append(dst, p...)
}

func isShareFrame(p []byte) bool {
	return len(p) > 0 && p[0] == shareMagic[0] && bytes.HasPrefix(p, []byte(shareMagic))
}

// parseShareFrame parses the payload of a shared-object frame, which
// comes from another process.
func parseShareFrame(p []byte) (name, kind string, nfds int, err error) {
	bad := func(what string) (string, string, int, error) {
		return "", "", 0, fmt.Errorf("%w: a malformed shared-object message: %s", ErrProtocol, what)
	}
	if !isShareFrame(p) {
		return bad("no magic")
	}
	p = p[len(shareMagic):]
	if len(p) < 3 {
		return bad("too short")
	}
	if p[0] != shareVersion {
		return bad(fmt.Sprintf("version %d", p[0]))
	}
	nfds = int(p[1])
	if nfds == 0 || nfds > maxShareFDs {
		return bad(fmt.Sprintf("%d descriptors", nfds))
	}
	p = p[2:]
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		s := string(p[1 : 1+p[0]])
		p = p[1+p[0]:]
		return s, true
	}
	name, ok := str()
	if !ok || !share.ValidName(name) {
		return bad("name")
	}
	kind, ok = str()
	if !ok || !validKind(kind) || len(p) != 0 {
		return bad("kind")
	}
	return name, kind, nfds, nil
}

// validKind reports whether kind can stand in an MPROC_FDS entry:
// printable ASCII without the entry's separators.
func validKind(kind string) bool {
	if kind == "" {
		return false
	}
	for i := 0; i < len(kind); i++ {
		if c := kind[i]; c <= ' ' || c > '~' || c == ';' || c == ':' || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

// SendShare sends obj, under name, to the process at the other end of c
// (the arguments in the order of every Share: the object, then its name),
// which receives it with RecvShare and then gets a working object with
// the ordinary Inherit of obj's package (queue.Inherit[T](name), lock.Inherit(name),
// conn.Inherit(name), ...), exactly as a child gets one that was shared
// with it before it started, with the same checks of kind and item type.
// The descriptors travel with the message (SCM_RIGHTS), so c must be a
// unix socket: a pipe.Duplex end, or a Conn from Dial or Accept on "unix";
// on anything else SendShare fails with ErrNotUnixSocket and sends nothing.
//
// obj stays this process's: both processes use the same lock or queue.
// SendShare follows SendContext's ctx rules and is serialized with Send.
func (c *Conn) SendShare(ctx context.Context, obj Sharer, name string) error {
	if err := c.canSend(); err != nil {
		return err
	}
	if !c.canPassFDs() {
		kind := "a pipe"
		switch {
		case c.peer != nil && c.peer.tls != nil:
			kind = "TLS"
		case c.peer != nil:
			kind = c.peer.network
		case c.info.Socket:
			kind = "not a unix socket"
		}
		return fmt.Errorf("%w (this Conn is %s)", ErrNotUnixSocket, kind)
	}
	files, kind, err := shareFiles(obj, name)
	if err != nil {
		return err
	}
	if len(name) > 255 || len(kind) > 255 || !validKind(kind) {
		return fmt.Errorf("conn: SendShare %.40q: the name or the kind %.40q does not fit the message (at most 255 bytes each)", name, kind)
	}
	if len(files) == 0 || len(files) > maxShareFDs {
		return fmt.Errorf("conn: SendShare %q: a %s with %d descriptors", name, kind, len(files))
	}
	fds := make([]int, 0, len(files))
	defer func() {
		for _, d := range fds {
			unix.Close(d)
		}
	}()
	for _, f := range files {
		d, err := dupFD(f)
		if err != nil {
			return fmt.Errorf("conn: SendShare %q: %w", name, err)
		}
		fds = append(fds, d)
	}
	frame := appendShareFrame(nil, name, kind, len(fds))
	return c.writeRights(ctx, frame, unix.UnixRights(fds...))
}

// shareFiles returns the files and the kind obj's Share gives a child
// under name.
func shareFiles(obj Sharer, name string) ([]*os.File, string, error) {
	cmd := &exec.Cmd{Env: []string{}}
	if err := obj.Share(cmd, name); err != nil {
		return nil, "", err
	}
	var entries []share.Entry
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, share.EnvVar+"="); ok {
			var err error
			if entries, err = share.Parse(v); err != nil {
				return nil, "", fmt.Errorf("conn: SendShare %q: %w", name, err)
			}
		}
	}
	i := slices.IndexFunc(entries, func(e share.Entry) bool { return e.Name == name })
	if i < 0 || len(entries) != 1 {
		return nil, "", fmt.Errorf("conn: SendShare %q: a %T's Share recorded no single object", name, obj)
	}
	files := make([]*os.File, 0, len(entries[i].FDs))
	for _, n := range entries[i].FDs {
		j := n - 3 // ExtraFiles[j] becomes descriptor 3+j
		if j < 0 || j >= len(cmd.ExtraFiles) {
			return nil, "", fmt.Errorf("conn: SendShare %q: a %T's Share recorded descriptor %d it did not add", name, obj, n)
		}
		files = append(files, cmd.ExtraFiles[j])
	}
	return files, entries[i].Kind, nil
}

func dupFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(d uintptr) { nfd, derr = unix.FcntlInt(d, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, os.NewSyscallError("fcntl", derr)
	}
	return nfd, nil
}

func (c *Conn) canPassFDs() bool {
	return c.info.Socket && c.info.Domain == unix.AF_UNIX && (c.peer == nil || c.peer.tls == nil)
}

// writeRights writes frame with the descriptors in rights attached to its
// first byte, with the ctx rules of write.
func (c *Conn) writeRights(ctx context.Context, frame, rights []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := fd.WatchDeadline(ctx, c.f.SetWriteDeadline)
	var n int
	var serr error
	err := c.rc.Write(func(d uintptr) bool {
		for {
			n, serr = unix.SendmsgN(int(d), frame, rights, nil, unix.MSG_NOSIGNAL)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	if err == nil && serr != nil {
		err = os.NewSyscallError("sendmsg", serr)
	}
	if err != nil {
		return c.writeErr(err)
	}
	for rest := frame[n:]; len(rest) > 0; {
		m, err := c.f.Write(rest)
		if err != nil {
			return c.writeErr(err)
		}
		rest = rest[m:]
	}
	return nil
}

// RecvShare receives an object that the other end sent with SendShare and
// registers it in this process under the name the sender gave, which it
// returns: the package's Inherit then returns the object, as it does for an
// object inherited from a parent (a name received is also one the process
// can Share with its own children). A message that is not a shared object
// is consumed and reported with ErrNotShared; a name this process already
// has is ErrNameTaken. RecvShare follows RecvContext's ctx rules and is
// serialized with Recv.
func (c *Conn) RecvShare(ctx context.Context) (string, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	p, _, err := c.recv(ctx) // p is valid while rmu is held
	if err != nil {
		return "", err
	}
	start := c.in.start
	if !isShareFrame(p) {
		c.in.dropBefore(start)
		return "", fmt.Errorf("%w (%d bytes)", ErrNotShared, len(p))
	}
	fds, lost := c.in.take(start)
	name, kind, n, err := parseShareFrame(p)
	if err == nil && len(fds) != n {
		err = fmt.Errorf("conn: RecvShare: the shared object %q has %d descriptors, %d arrived", name, n, len(fds))
		if lost {
			err = fmt.Errorf("%w (the rest did not fit: more than %d)", err, maxShareFDs)
		}
	}
	if err == nil {
		err = share.Adopt(name, kind, fds)
	}
	if err != nil {
		closeFDs(fds)
		return "", err
	}
	return name, nil
}

// notShare is called by Recv and RecvBytes, holding rmu, for the frame p
// they received: a shared object is refused and its descriptors closed.
func (c *Conn) notShare(p []byte) error {
	if c.rd == io.Reader(c.f) {
		if isShareFrame(p) {
			return ErrUnexpectedShare
		}
		return nil
	}
	if isShareFrame(p) {
		fds, _ := c.in.take(c.in.start)
		closeFDs(fds)
		return ErrUnexpectedShare
	}
	c.in.dropBefore(c.in.start)
	return nil
}

// inFDs keeps the descriptors received with the stream of a Conn over a
// unix socket until the frame they came with is parsed. The kernel hands
// the descriptors sent with a frame to the read that consumes the frame's
// first byte, and ends that read at the end of the message they came with,
// so a batch belongs to a frame beginning among the bytes of its read.
// Descriptors no frame claims (a peer that attached some to an ordinary
// message) are closed once the reader is past them, and at Close.
type inFDs struct {
	off   int64 // bytes read from the socket; guarded by the Conn's rmu
	start int64 // where the frame being read begins; guarded by rmu

	n       atomic.Int32 // len(batches), read without mu
	mu      sync.Mutex
	batches []fdBatch
	closed  bool
}

type fdBatch struct {
	start, end int64 // the stream bytes of the read they came with
	fds        []int
	lost       bool // MSG_CTRUNC: some did not fit
}

// maxPendingFDs bounds the descriptors held for frames not yet parsed.
const maxPendingFDs = 4 * maxShareFDs

func (in *inFDs) add(b fdBatch) {
	in.mu.Lock()
	defer in.mu.Unlock()
	pending := 0
	for _, o := range in.batches {
		pending += len(o.fds)
	}
	if in.closed || pending+len(b.fds) > maxPendingFDs {
		closeFDs(b.fds)
		b.fds, b.lost = nil, true
		if in.closed {
			return
		}
	}
	in.batches = append(in.batches, b)
	in.n.Store(int32(len(in.batches)))
}

// take returns the batch of the frame that begins at start, if any, and
// closes the batches of earlier bytes.
func (in *inFDs) take(start int64) ([]int, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.dropLocked(start)
	if len(in.batches) == 0 || in.batches[0].start > start {
		return nil, false
	}
	b := in.batches[0]
	in.batches = in.batches[1:]
	in.n.Store(int32(len(in.batches)))
	return b.fds, b.lost
}

// dropBefore closes the batches that came with bytes before start.
func (in *inFDs) dropBefore(start int64) {
	if in.n.Load() == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.dropLocked(start)
}

func (in *inFDs) dropLocked(start int64) {
	i := 0
	for i < len(in.batches) && in.batches[i].end <= start {
		closeFDs(in.batches[i].fds)
		i++
	}
	in.batches = in.batches[i:]
	in.n.Store(int32(len(in.batches)))
}

func (in *inFDs) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	for _, b := range in.batches {
		closeFDs(b.fds)
	}
	in.batches = nil
	in.n.Store(0)
}

func closeFDs(fds []int) {
	for _, d := range fds {
		unix.Close(d)
	}
}

// reader returns what frames are read from: on a unix socket, a reader
// that receives with recvmsg and keeps the descriptors that come along (a
// plain read would make the kernel close them).
func (c *Conn) reader() io.Reader {
	if c.info.Socket && c.info.Domain == unix.AF_UNIX {
		r := &unixReader{c: c, oob: make([]byte, unix.CmsgSpace(maxShareFDs*4))}
		r.fn = r.call
		return r
	}
	return c.f
}

// unixReader reads a unix socket with recvmsg. Like sys.go's rawOp, its
// system call's arguments and results live in the struct and the function
// RawConn calls is bound once; it is used under the Conn's rmu.
type unixReader struct {
	c     *Conn
	oob   []byte
	p     []byte
	n     int
	oobn  int
	flags int
	errno unix.Errno
	fn    func(fd uintptr) bool // r.call, bound once
}

// call receives into p and oob without allocating (unix.Recvmsg
// allocates the sender's address, which a socket bound to a path has);
// false (EAGAIN) makes RawConn wait in the poller and call again.
func (r *unixReader) call(fd uintptr) bool {
	iov := unix.Iovec{Base: &r.p[0]}
	iov.SetLen(len(r.p))
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &r.oob[0]}
	msg.SetControllen(len(r.oob))
	for {
		n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
		if e == unix.EINTR {
			continue
		}
		r.n, r.oobn, r.flags, r.errno = int(n), int(msg.Controllen), int(msg.Flags), e
		if e != 0 {
			r.n, r.oobn, r.flags = 0, 0, 0
		}
		return e != unix.EAGAIN
	}
}

// Read is called holding the Conn's rmu.
func (r *unixReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c := r.c
	r.p = p
	err := c.rc.Read(r.fn)
	r.p = nil
	if err != nil {
		return 0, err
	}
	n := r.n
	if r.oobn > 0 || r.flags&unix.MSG_CTRUNC != 0 {
		c.in.add(fdBatch{start: c.in.off, end: c.in.off + int64(max(n, 1)), fds: parseRights(r.oob[:r.oobn]), lost: r.flags&unix.MSG_CTRUNC != 0})
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmsg", r.errno)
	}
	if n == 0 {
		return 0, io.EOF
	}
	c.in.off += int64(n)
	return n, nil
}

// parseRights returns the descriptors in the control messages oob.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}
