// Package semaphore provides [Semaphore], a counting semaphore shared by
// the processes of a program: Python's multiprocessing.Semaphore and, made
// with [NewBounded], BoundedSemaphore.
//
//	s, err := semaphore.New(3)          // parent
//	err = s.Share(cmd, "seats")         // before cmd.Start
//
//	s, err := semaphore.Inherit("seats") // child
//	if err := s.Acquire(ctx); err != nil { ... }
//	defer s.Release()
//
// # How it works
//
// The count lives in a crash-safe record (internal/record: a memfd read
// with pread and written with pwrite, under flock, as package value does),
// with the list of tokens held. A process that takes a token also takes a
// record lock (F_OFD_SETLK) on one byte of the memfd, the token's id: the
// kernel drops it when the process dies. Acquire waits, when the count is
// zero, for the wake that every change writes into the semaphore's pipe.
//
// Release gives back a token this process holds, if any; otherwise (a
// semaphore used to signal between processes: one releases, another
// acquires) it adds one to the count. A bounded semaphore refuses a
// Release that would take it past its initial value with
// [ErrTooManyReleases], in the process that calls Release; a Release in a
// process that holds no token, while other processes hold some, gives back
// one of theirs (their own later Release is then the one too many).
//
// # Crashes
//
// A process killed while it holds tokens, SIGKILL included, gives them back:
// the next Acquire, TryAcquire or Release of any process finds the dead
// holder's byte lock gone and returns its tokens to the count, and a
// process already waiting in Acquire notices within 100 ms. A process
// killed in the middle of Acquire or Release leaves the count as it was
// before or after, never torn. Python's semaphore loses a dead holder's
// token for good.
//
// # Cost
//
// An uncontended Acquire or Release is about seven system calls (flock,
// two preads, a record lock or unlock, pwrite, flock(LOCK_UN), the wake
// write), a few µs; Python's semaphore, in shared memory, makes none when
// uncontended. See bench/README.md. Linux only.
package semaphore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"

	"github.com/mproc-go/mproc/internal/record"
	"github.com/mproc-go/mproc/internal/share"
)

// Kind is the kind recorded for a Semaphore in the environment variable
// that lists inherited descriptors: the memfd of its record and the two
// ends of its wake pipe.
const Kind = "semaphore"

// Errors of this package. Test with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Semaphore, and by an
	// Acquire that Close interrupted.
	ErrClosed = errors.New("semaphore: closed")
	// ErrTooManyReleases is returned by Release of a bounded semaphore
	// when the count is already at its initial value.
	ErrTooManyReleases = errors.New("semaphore: released more times than acquired")
	// ErrCorrupt means the shared record does not hold a semaphore.
	ErrCorrupt = errors.New("semaphore: corrupt record")

	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Semaphore (or a value holding one) was given to
	// Send, Put, Map, Apply or Go, or met in a message being decoded; share
	// it through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

type notSendable = share.Inheritable[typeName]

// typeName names semaphore.Semaphore in the errors of notSendable.
type typeName struct{}

func (typeName) String() string { return "semaphore.Semaphore" }

// Semaphore is a counting semaphore shared by processes. It is safe for use
// by several goroutines and processes.
type Semaphore struct {
	// notSendable makes msgpack refuse a Semaphore in a message: see ErrNotSendable.
	notSendable

	rec *record.Record

	mu   sync.Mutex
	mine []uint32 // ids of the tokens this process holds
}

// state is the shared record: the free count, the bound plus one (0:
// unbounded) and the ids of the tokens held.
//
//	count int64 | bound int64 | n uint32 | n ids uint32, big-endian
type state struct {
	count   int64
	bound   int64
	holders []uint32
}

func (s state) encode() []byte {
	b := make([]byte, 20+4*len(s.holders))
	binary.BigEndian.PutUint64(b[0:], uint64(s.count))
	binary.BigEndian.PutUint64(b[8:], uint64(s.bound))
	binary.BigEndian.PutUint32(b[16:], uint32(len(s.holders)))
	for i, id := range s.holders {
		binary.BigEndian.PutUint32(b[20+4*i:], id)
	}
	return b
}

func decode(b []byte) (state, error) {
	if len(b) < 20 {
		return state{}, ErrCorrupt
	}
	s := state{count: int64(binary.BigEndian.Uint64(b[0:])), bound: int64(binary.BigEndian.Uint64(b[8:]))}
	n := binary.BigEndian.Uint32(b[16:])
	if uint64(len(b)) != 20+4*uint64(n) || s.count < 0 || s.bound < 0 {
		return state{}, ErrCorrupt
	}
	s.holders = make([]uint32, n)
	for i := range s.holders {
		s.holders[i] = binary.BigEndian.Uint32(b[20+4*i:])
	}
	return s, nil
}

// New returns a semaphore with n tokens (n >= 0), which Release may take
// past n: Python's Semaphore(n).
func New(n int) (*Semaphore, error) { return create(n, false) }

// NewBounded returns a semaphore with n tokens (n >= 0) whose Release
// refuses to go past n: Python's BoundedSemaphore(n).
func NewBounded(n int) (*Semaphore, error) { return create(n, true) }

func create(n int, bounded bool) (*Semaphore, error) {
	if n < 0 {
		return nil, fmt.Errorf("semaphore: negative count %d", n)
	}
	st := state{count: int64(n)}
	if bounded {
		st.bound = int64(n) + 1
	}
	rec, err := record.New("semaphore", []byte(Kind), st.encode())
	if err != nil {
		return nil, fmt.Errorf("semaphore: %w", err)
	}
	return &Semaphore{rec: rec}, nil
}

func (s *Semaphore) err(err error) error {
	return record.Public(err, ErrClosed, "semaphore: ")
}

// reclaim gives back to the count the tokens of processes that died
// holding them, and reports whether it found any. The caller holds the
// record's lock.
func (s *Semaphore) reclaim(st *state) (bool, error) {
	s.mu.Lock()
	mine := slices.Clone(s.mine)
	s.mu.Unlock()
	found := false
	kept := st.holders[:0]
	for _, id := range st.holders {
		if slices.Contains(mine, id) {
			kept = append(kept, id)
			continue
		}
		alive, err := s.rec.Alive(id)
		if err != nil {
			return false, err
		}
		if alive {
			kept = append(kept, id)
			continue
		}
		st.count++
		found = true
	}
	st.holders = kept
	return found, nil
}

// take takes a token if one is free, under the record's lock.
func (s *Semaphore) take(ctx context.Context) (bool, error) {
	took := false
	err := s.rec.Update(ctx, func(old []byte) ([]byte, error) {
		st, err := decode(old)
		if err != nil {
			return nil, err
		}
		changed := false
		if st.count == 0 {
			if changed, err = s.reclaim(&st); err != nil {
				return nil, err
			}
		}
		if st.count > 0 {
			id, err := s.newID(st.holders)
			if err != nil {
				return nil, err
			}
			st.count--
			st.holders = append(st.holders, id)
			took, changed = true, true
		}
		if !changed {
			return nil, nil
		}
		return st.encode(), nil
	})
	return took, s.err(err)
}

// newID finds an id no process holds and takes its byte lock, recording it
// as this process's.
func (s *Semaphore) newID(holders []uint32) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := uint32(0); ; id++ {
		if slices.Contains(holders, id) || slices.Contains(s.mine, id) {
			continue
		}
		ok, err := s.rec.Hold(id)
		if err != nil {
			return 0, err
		}
		if ok {
			s.mine = append(s.mine, id)
			return id, nil
		}
	}
}

// Acquire takes a token, waiting while there is none, until ctx ends or s
// is closed. On ctx's end it returns ctx.Err() and takes nothing.
func (s *Semaphore) Acquire(ctx context.Context) error {
	for {
		took, err := s.take(ctx)
		if took || err != nil {
			return err
		}
		err = s.rec.Wait(ctx, func(data []byte) (bool, error) {
			st, err := decode(data)
			if err != nil {
				return false, err
			}
			if st.count > 0 {
				return true, nil
			}
			// A dead holder's token: go and reclaim it.
			s.mu.Lock()
			mine := slices.Clone(s.mine)
			s.mu.Unlock()
			for _, id := range st.holders {
				if slices.Contains(mine, id) {
					continue
				}
				if alive, err := s.rec.Alive(id); err != nil || !alive {
					return true, err
				}
			}
			return false, nil
		})
		if err != nil {
			return s.err(err)
		}
	}
}

// TryAcquire takes a token if one is free and reports whether it did. It
// does not wait for a token (it may wait, briefly, for another process's
// Acquire or Release under way). It reports false when s is closed.
func (s *Semaphore) TryAcquire() bool {
	took, _ := s.take(context.Background())
	return took
}

// Release gives a token back: one this process holds if any, else one
// more to the count (or, for a bounded semaphore at its bound, one that
// another process holds). A bounded semaphore returns ErrTooManyReleases,
// and changes nothing, when no token is out. Release never waits for a
// token (only, briefly, for another process's call under way).
func (s *Semaphore) Release() error {
	var drop *uint32
	err := s.rec.Update(context.Background(), func(old []byte) ([]byte, error) {
		st, err := decode(old)
		if err != nil {
			return nil, err
		}
		if _, err := s.reclaim(&st); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		// One of this process's tokens, if it is still recorded as held.
		for i := len(s.mine) - 1; i >= 0; i-- {
			id := s.mine[i]
			if j := slices.Index(st.holders, id); j >= 0 {
				st.holders = slices.Delete(st.holders, j, j+1)
				st.count++
				s.mine = slices.Delete(s.mine, i, i+1)
				drop = &id
				return st.encode(), nil
			}
		}
		// Tokens of this process given back by another process's
		// Release: they are no longer held.
		for _, id := range s.mine {
			s.rec.Drop(id)
		}
		s.mine = s.mine[:0]
		switch {
		case st.bound == 0:
			st.count++
		case st.count+int64(len(st.holders)) < st.bound-1:
			st.count++
		case len(st.holders) > 0:
			st.holders = st.holders[1:] // another process's token
			st.count++
		default:
			return nil, ErrTooManyReleases
		}
		return st.encode(), nil
	})
	if err == nil && drop != nil {
		err = s.rec.Drop(*drop)
	}
	return s.err(err)
}

// Value returns the number of free tokens (Python's get_value), counting
// those of dead holders not yet reclaimed as taken. By the time it
// returns, other processes may have changed it.
func (s *Semaphore) Value(ctx context.Context) (int, error) {
	data, err := s.rec.Load(ctx)
	if err != nil {
		return 0, s.err(err)
	}
	st, err := decode(data)
	if err != nil {
		return 0, err
	}
	return int(st.count), nil
}

// Share arranges for the child that cmd will start to inherit s under
// name: it appends s's three descriptors to cmd.ExtraFiles and records
// them in cmd.Env. The child calls Inherit(name). Share may be called by
// several goroutines, for any number of commands; it fails with ErrClosed
// once s is closed. Tokens this process holds stay this process's.
func (s *Semaphore) Share(cmd *exec.Cmd, name string) error {
	select {
	case <-s.rec.Done():
		return ErrClosed
	default:
	}
	return share.Add(cmd, name, Kind, s.rec.Files()...)
}

// Inherit returns the Semaphore a parent shared with this process under
// name. Calling it again with the same name returns the same *Semaphore.
// The error wraps ErrNotInherited, ErrWrongKind or ErrBadFD. Inherit is
// safe for use by several goroutines.
func Inherit(name string) (*Semaphore, error) {
	return share.InheritAs(name, Kind, func(files []*os.File) (*Semaphore, error) {
		rec, err := record.Inherit(files, Kind, "a semaphore")
		if err != nil {
			return nil, err
		}
		return &Semaphore{rec: rec}, nil
	})
}

// Close releases this process's descriptors of s and wakes every goroutine
// of this process waiting in Acquire, which get ErrClosed. Tokens this
// process holds are given back, as if it had died: the next call of
// another process reclaims them. Close is idempotent and safe to call
// concurrently with the other methods.
func (s *Semaphore) Close() error { return s.err(s.rec.Close()) }
