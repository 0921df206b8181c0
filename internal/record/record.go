// Package record is a record of bytes shared by processes that survives the
// death of any of them at any moment: the state of value.Value,
// semaphore.Semaphore, event.Event and barrier.Barrier.
//
// # Where the bytes live
//
// A pipe cannot be read without consuming what it holds, so a record kept
// in a pipe (a baton, as internal/counter does) is gone while a process
// holds it, and lost with that process if it dies. The record lives
// instead in a memfd (an anonymous file in memory, passed to children like
// a pipe and read with pread(2) and written with pwrite(2); it is never
// mapped, so there is no shared memory), in two copies written in turn:
//
//	copy i (i = 0, 1) at offset i<<32:
//	offset  size  field
//	0       4     magic "mprc"
//	4       4     CRC-32C of bytes 8..24+len
//	8       8     seq, big-endian: the copy holding the higher valid seq is current
//	16      8     len, big-endian
//	24      len   the data
//
// A writer holds the lock (package plock, flock on the memfd), reads the
// current copy (seq s), and writes the new data with seq s+1 into the other
// copy with one pwrite. Until that pwrite is complete the other copy's CRC
// does not match and readers take copy s: a process killed at any moment
// leaves the old data or the new, never nothing, and the kernel releases
// its lock. Readers need no lock: they read both copies and take the
// highest seq whose CRC matches.
//
// # Live holders
//
// A primitive that must know whether a process is still alive (a semaphore
// token, a barrier party) has it hold a record lock (F_OFD_SETLK) on one
// byte of the memfd, at offset 3<<32 plus an id it chooses under the lock:
// the kernel drops it when the process dies, and [Record.Alive] tests it.
package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/plock"
	"github.com/mproc-go/mproc/internal/share"
)

const (
	copyStride = 1 << 32 // copy i begins at i*copyStride
	headerLen  = 24
	metaOffset = 2 << 32 // the meta block: 4-byte length, bytes; written once
	liveOffset = 3 << 32 // the bytes whose record locks mark live holders
	// MaxLen is the largest record.
	MaxLen = copyStride - headerLen
	// readAhead is how much of each copy a read takes in one pread.
	readAhead = 1024
)

var magic = [4]byte{'m', 'p', 'r', 'c'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NumFiles is the number of files of a Record: the memfd and the two ends
// of the wake pipe.
const NumFiles = 3

// Errors of this package.
var (
	ErrClosed  = errors.New("closed")
	ErrCorrupt = errors.New("no valid record in the file")
	ErrTooLong = fmt.Errorf("record longer than %d bytes", MaxLen)
)

// Error is an error of the record itself (a system call, a corrupt record),
// as opposed to one that the caller's function returned through Update:
// the public package adds its prefix to these.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(err error) error {
	if err == nil || errors.Is(err, ErrClosed) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Err: err}
}

// Record is one process's handle on a shared record. Its methods are safe
// for concurrent use by several goroutines and processes.
type Record struct {
	mem, wr, ww *os.File
	lk          *plock.Mutex
	own         int // this process's own description of mem (pread, pwrite, record locks)

	// fdmu keeps own open while a goroutine uses it outside the lock
	// (Load, Meta, Hold, Drop, Alive); Close takes it to close.
	fdmu   sync.RWMutex
	closed bool // guarded by fdmu

	// sem lets one goroutine of this process at a time hold the lock.
	sem  chan struct{}
	done chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// New returns a record holding data, with meta stored once beside it (a
// description of the data's type, read by FromFiles' callers).
func New(name string, meta, data []byte) (*Record, error) {
	if len(data) > MaxLen {
		return nil, fail(ErrTooLong)
	}
	mfd, err := unix.MemfdCreate("mproc:"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fail(os.NewSyscallError("memfd_create", err))
	}
	mem := os.NewFile(uintptr(mfd), "mproc:"+name+":mem")
	wr, ww, err := fd.Pipe("mproc:" + name + ":wake")
	if err != nil {
		mem.Close()
		return nil, fail(err)
	}
	mb := make([]byte, 4+len(meta))
	binary.BigEndian.PutUint32(mb, uint32(len(meta)))
	copy(mb[4:], meta)
	if _, err := unix.Pwrite(mfd, mb, metaOffset); err != nil {
		closeAll(mem, wr, ww)
		return nil, fail(os.NewSyscallError("pwrite", err))
	}
	if err := writeCopy(mfd, 1, data); err != nil {
		closeAll(mem, wr, ww)
		return nil, err
	}
	r, err := open(mem, wr, ww)
	if err != nil {
		closeAll(mem, wr, ww)
		return nil, err
	}
	return r, nil
}

// Inherit returns the Record over files that a primitive of kind kind
// shared (its meta block holds kind), for the primitives' Inherit: any
// other record, or files that are not a record, is share.ErrWrongKind.
// what names the primitive in the error ("an event"). It owns the files
// and closes them on error.
func Inherit(files []*os.File, kind, what string) (*Record, error) {
	rec, err := FromFiles(files)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", share.ErrWrongKind, err)
	}
	if meta, err := rec.Meta(); err != nil || string(meta) != kind {
		rec.Close()
		return nil, fmt.Errorf("%w: not %s's record", share.ErrWrongKind, what)
	}
	return rec, nil
}

// FromFiles returns a Record over the files another process's Files
// returned. It owns the files and closes them on error.
func FromFiles(files []*os.File) (*Record, error) {
	if len(files) != NumFiles {
		closeAll(files...)
		return nil, fmt.Errorf("%d files, want %d", len(files), NumFiles)
	}
	if err := check(files); err != nil {
		closeAll(files...)
		return nil, err
	}
	var err error
	for i := 1; i < 3; i++ {
		if files[i], err = fd.Pollable(files[i]); err != nil {
			closeAll(files[:i]...)
			closeAll(files[i+1:]...)
			return nil, err
		}
	}
	r, err := open(files[0], files[1], files[2])
	if err != nil {
		closeAll(files...)
		return nil, err
	}
	if _, err := r.Load(context.Background()); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func check(files []*os.File) error {
	var st [3]unix.Stat_t
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		rc.Control(func(d uintptr) { serr = unix.Fstat(int(d), &st[i]) })
		if serr != nil {
			return os.NewSyscallError("fstat", serr)
		}
	}
	if st[0].Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("the first descriptor is not a memfd")
	}
	for i := 1; i < 3; i++ {
		if st[i].Mode&unix.S_IFMT != unix.S_IFIFO {
			return fmt.Errorf("descriptor %d is not a pipe", i)
		}
	}
	if st[1].Ino != st[2].Ino || st[1].Dev != st[2].Dev {
		return errors.New("the wake descriptors are ends of different pipes")
	}
	return nil
}

func open(mem, wr, ww *os.File) (*Record, error) {
	lk, err := plock.New(mem, wr, ww)
	if err != nil {
		return nil, fail(err)
	}
	return &Record{
		mem: mem, wr: wr, ww: ww, lk: lk, own: lk.Own(),
		sem:  make(chan struct{}, 1),
		done: make(chan struct{}),
	}, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// Files returns the files to hand to a child, in FromFiles' order. They
// stay owned by r.
func (r *Record) Files() []*os.File { return []*os.File{r.mem, r.wr, r.ww} }

// Meta returns the meta bytes given to New.
func (r *Record) Meta() ([]byte, error) {
	r.fdmu.RLock()
	defer r.fdmu.RUnlock()
	if r.closed {
		return nil, ErrClosed
	}
	var n [4]byte
	if err := r.pread(n[:], metaOffset); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	if err := r.pread(b, metaOffset+4); err != nil {
		return nil, err
	}
	return b, nil
}

func (r *Record) pread(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(r.own, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(os.NewSyscallError("pread", err))
		}
		if n == 0 {
			clear(b)
			return nil // a hole past the end reads as zeros
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// version is what a read found in one copy.
type version struct {
	seq  uint64
	data []byte
	ok   bool
}

// readCopy reads copy i and checks it. A copy being written, or left half
// written by a dead writer, is not ok.
func (r *Record) readCopy(i int, buf []byte) (version, error) {
	off := int64(i) * copyStride
	buf = buf[:readAhead]
	n, err := unix.Pread(r.own, buf, off)
	for err == unix.EINTR {
		n, err = unix.Pread(r.own, buf, off)
	}
	if err != nil {
		return version{}, fail(os.NewSyscallError("pread", err))
	}
	if n < headerLen || [4]byte(buf[0:4]) != magic {
		return version{}, nil
	}
	seq := binary.BigEndian.Uint64(buf[8:16])
	ln := binary.BigEndian.Uint64(buf[16:24])
	if ln > MaxLen {
		return version{}, nil
	}
	whole := buf[:n]
	if uint64(n) < headerLen+ln {
		// A length that a dead writer or a foreign process got wrong must
		// not make us allocate more than the file holds: the data must end
		// before the first hole after the copy's start.
		hole, err := unix.Seek(r.own, off, unix.SEEK_HOLE)
		if err != nil {
			return version{}, fail(os.NewSyscallError("lseek", err))
		}
		if uint64(hole-off) < headerLen+ln {
			return version{}, nil
		}
		whole = make([]byte, headerLen+ln)
		copy(whole, buf[:n])
		if err := r.pread(whole[n:], off+int64(n)); err != nil {
			return version{}, err
		}
	}
	whole = whole[:headerLen+ln]
	if crc32.Checksum(whole[8:], castagnoli) != binary.BigEndian.Uint32(whole[4:8]) {
		return version{}, nil
	}
	return version{seq: seq, data: whole[headerLen:], ok: true}, nil
}

// current returns the current copy: the valid one with the higher seq.
func (r *Record) current() (version, error) {
	var b0, b1 [readAhead]byte
	s0, err := r.readCopy(0, b0[:])
	if err != nil {
		return version{}, err
	}
	s1, err := r.readCopy(1, b1[:])
	if err != nil {
		return version{}, err
	}
	switch {
	case s0.ok && (!s1.ok || s0.seq > s1.seq):
		return s0, nil
	case s1.ok:
		return s1, nil
	}
	return version{}, nil
}

func writeCopy(fd int, seq uint64, data []byte) error {
	b := make([]byte, headerLen+len(data))
	copy(b[0:4], magic[:])
	binary.BigEndian.PutUint64(b[8:16], seq)
	binary.BigEndian.PutUint64(b[16:24], uint64(len(data)))
	copy(b[headerLen:], data)
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], castagnoli))
	off := int64(seq%2) * copyStride
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(os.NewSyscallError("pwrite", err))
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// Load returns the current data, without the lock: it reads both copies
// and keeps the valid one with the higher seq. When a writer was rewriting
// both copies while it read (two updates during one Load), it reads again,
// and after a few tries takes the lock.
func (r *Record) Load(ctx context.Context) ([]byte, error) {
	if data, ok, err := r.tryLoad(); ok || err != nil {
		return data, err
	}
	var out []byte
	err := r.Update(ctx, func(old []byte) ([]byte, error) {
		out = slices.Clone(old)
		return nil, nil
	})
	return out, err
}

func (r *Record) tryLoad() ([]byte, bool, error) {
	r.fdmu.RLock()
	defer r.fdmu.RUnlock()
	if r.closed {
		return nil, false, ErrClosed
	}
	for range 4 {
		s, err := r.current()
		if err != nil {
			return nil, false, err
		}
		if s.ok {
			return slices.Clone(s.data), true, nil
		}
	}
	return nil, false, nil
}

// Update runs fn on the current data under the lock and stores what it
// returns; a nil result (or an error) leaves the record unchanged. fn runs
// while every other process that wants the lock waits: keep it short. On
// ctx's end before the lock is taken it returns ctx.Err() and changes
// nothing.
func (r *Record) Update(ctx context.Context, fn func(old []byte) ([]byte, error)) error {
	if err := r.lock(ctx); err != nil {
		return err
	}
	err := r.update(fn)
	return errors.Join(err, r.unlock())
}

func (r *Record) update(fn func(old []byte) ([]byte, error)) error {
	s, err := r.current()
	if err != nil {
		return err
	}
	if !s.ok {
		// Under the lock no writer is under way: both copies are bad.
		return fail(ErrCorrupt)
	}
	data, err := fn(s.data)
	if err != nil || data == nil {
		return err
	}
	if len(data) > MaxLen {
		return fail(ErrTooLong)
	}
	return writeCopy(r.own, s.seq+1, data)
}

func (r *Record) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return ErrClosed
	}
	select {
	case <-r.done:
		<-r.sem
		return ErrClosed
	default:
	}
	if err := r.lk.Lock(ctx); err != nil {
		<-r.sem
		if errors.Is(err, plock.ErrClosed) {
			return ErrClosed
		}
		if ctx.Err() != nil && err == ctx.Err() {
			return err
		}
		return fail(err)
	}
	return nil
}

func (r *Record) unlock() error {
	err := r.lk.Unlock()
	<-r.sem
	return fail(err)
}

// Wait waits until check, called with the current data at once, after
// every change and every plock.Recheck, reports true. It returns check's
// error, ctx.Err() or ErrClosed.
func (r *Record) Wait(ctx context.Context, check func(data []byte) (bool, error)) error {
	err := r.lk.Wait(ctx, func() (bool, error) {
		data, err := r.Load(ctx)
		if err != nil {
			return false, err
		}
		return check(data)
	})
	if errors.Is(err, plock.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Wake wakes the waiters of every process (Update does it after every
// change, when it releases the lock).
func (r *Record) Wake() error { return fail(r.lk.Wake()) }

// Hold takes the live-holder lock id for this process, without waiting,
// and reports whether it did: false when another process holds it. Holding
// it again from this process succeeds and changes nothing.
func (r *Record) Hold(id uint32) (bool, error) {
	r.fdmu.RLock()
	defer r.fdmu.RUnlock()
	if r.closed {
		return false, ErrClosed
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: liveOffset + int64(id), Len: 1}
	err := unix.FcntlFlock(uintptr(r.own), unix.F_OFD_SETLK, &lk)
	switch err {
	case nil:
		return true, nil
	case unix.EAGAIN, unix.EACCES:
		return false, nil
	}
	return false, fail(os.NewSyscallError("fcntl F_OFD_SETLK", err))
}

// Drop releases the live-holder lock id of this process.
func (r *Record) Drop(id uint32) error {
	r.fdmu.RLock()
	defer r.fdmu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: liveOffset + int64(id), Len: 1}
	if err := unix.FcntlFlock(uintptr(r.own), unix.F_OFD_SETLK, &lk); err != nil {
		return fail(os.NewSyscallError("fcntl F_OFD_SETLK", err))
	}
	return nil
}

// Alive reports whether a process other than this one holds the
// live-holder lock id (this process's own locks never show).
func (r *Record) Alive(id uint32) (bool, error) {
	r.fdmu.RLock()
	defer r.fdmu.RUnlock()
	if r.closed {
		return false, ErrClosed
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: liveOffset + int64(id), Len: 1}
	if err := unix.FcntlFlock(uintptr(r.own), unix.F_OFD_GETLK, &lk); err != nil {
		return false, fail(os.NewSyscallError("fcntl F_OFD_GETLK", err))
	}
	return lk.Type != unix.F_UNLCK, nil
}

// Close releases this process's descriptors, and with them its lock and
// its live-holder locks. It wakes this process's waiters with ErrClosed
// and waits for a goroutine holding the lock to give it back. Idempotent.
func (r *Record) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		r.lk.Stop()         // waiters for the lock give up
		r.sem <- struct{}{} // no goroutine holds the lock from now on
		r.fdmu.Lock()
		r.closed = true
		r.fdmu.Unlock()
		r.closeErr = fail(errors.Join(r.lk.Close(), r.mem.Close(), r.wr.Close(), r.ww.Close()))
	})
	return r.closeErr
}

// Done is closed when Close is called.
func (r *Record) Done() <-chan struct{} { return r.done }

// Public turns an error of a Record's method into the public package's:
// ErrClosed into closed, and an *Error into one with the package's prefix
// ("value: "); the caller's own errors pass unchanged.
func Public(err error, closed error, prefix string) error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed):
		return closed
	case errors.As(err, &e):
		return fmt.Errorf("%s%w", prefix, err)
	}
	return err
}
