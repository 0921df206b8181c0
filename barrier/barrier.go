// Package barrier provides [Barrier], a reusable barrier for a fixed
// number of parties spread over the processes of a program: Python's
// multiprocessing.Barrier.
//
//	b, err := barrier.New(4)            // parent
//	err = b.Share(cmd, "phase")         // before each cmd.Start
//
//	b, err := barrier.Inherit("phase")  // child
//	i, err := b.Wait(ctx)               // returns once 4 parties have called Wait
//
// [Barrier.Wait] returns each party's arrival index, 0 to parties-1, and the
// barrier is ready for the next round at once. As in Python, a barrier can
// break: [Barrier.Abort], a Wait whose ctx ends, or a party that dies,
// makes every Wait under way and every later one return [ErrBroken] until
// [Barrier.Reset].
//
// # How it works
//
// The round's state (arrivals, round number, broken flag, the parties that
// have waited) lives in a crash-safe record (internal/record, as package
// value's): an arrival updates it under flock, and waiters watch the
// barrier's pipe, into which every change writes one byte that wakes the
// runtime poller of every process. A process that calls Wait also takes,
// for as long as it has the Barrier open, a record lock (F_OFD_SETLK) on
// one byte of the barrier's memfd, which the kernel drops when the process
// dies.
//
// # Crashes
//
// A party killed at any moment, SIGKILL included, breaks the barrier: the
// processes waiting find its byte lock gone within 100 ms (waiters look
// again that often) and return ErrBroken; none hangs. A process killed in
// the middle of an arrival leaves the round as it was before or after,
// never torn. A process that has waited on the Barrier and exits without
// Close counts as dead, so Close a Barrier before exiting while others may
// still wait on it. In Python a party that dies leaves the others waiting
// until their timeout.
//
// # Cost
//
// An arrival is about six system calls (the record's update) plus, for
// every party but the last, a wait in the poller; the last arrival's wake
// reaches every process at once. Linux only.
package barrier

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

// Kind is the kind recorded for a Barrier in the environment variable that
// lists inherited descriptors: the memfd of its record and the two ends of
// its wake pipe.
const Kind = "barrier"

// Errors of this package. Test with errors.Is.
var (
	// ErrBroken is returned by Wait when the barrier is broken, or breaks
	// while it waits: Abort, a Wait whose ctx ended (that Wait's error
	// wraps ctx.Err() too), a party that died, or a Reset while it waited.
	ErrBroken = errors.New("barrier: broken")
	// ErrClosed is returned by calls on a closed Barrier, and by a Wait
	// that Close interrupted.
	ErrClosed = errors.New("barrier: closed")
	// ErrCorrupt means the shared record does not hold a barrier.
	ErrCorrupt = errors.New("barrier: corrupt record")

	// ErrNotInherited: this process inherited no object by that name.
	ErrNotInherited = share.ErrNotInherited
	// ErrWrongKind: the name was shared as another primitive.
	ErrWrongKind = share.ErrWrongKind
	// ErrBadFD: a descriptor recorded for the name is not open.
	ErrBadFD = share.ErrBadFD
	// ErrBadName: Share was given a name other than ASCII letters,
	// digits, '_', '-' and '.'.
	ErrBadName = share.ErrBadName
	// ErrNotSendable: a Barrier (or a value holding one) was given to
	// Send, Put, Map, Apply or Go, or met in a message being decoded; share
	// it through inheritance instead.
	ErrNotSendable = share.ErrNotSendable
)

type notSendable = share.Inheritable[typeName]

// typeName names barrier.Barrier in the errors of notSendable.
type typeName struct{}

func (typeName) String() string { return "barrier.Barrier" }

// Barrier is a reusable barrier for a fixed number of parties. It is safe
// for use by several goroutines and processes; each call of Wait is one
// party, whichever goroutine or process makes it.
type Barrier struct {
	// notSendable makes msgpack refuse a Barrier in a message: see ErrNotSendable.
	notSendable

	rec *record.Record

	mu sync.Mutex
	id *uint32 // this process's live id, once it has waited
}

// state is the record:
//
//	parties uint32 | count uint32 | round uint64 | resetRound uint64 |
//	broken byte | n uint32 | n ids uint32, big-endian
//
// count parties have arrived in round; resetRound-1 is the last round that
// a Reset ended (its waiters get ErrBroken); ids are the live ids of the
// processes that have waited.
type state struct {
	parties, count    uint32
	round, resetRound uint64
	broken            bool
	ids               []uint32
}

const fixedLen = 4 + 4 + 8 + 8 + 1 + 4

func (s state) encode() []byte {
	b := make([]byte, fixedLen+4*len(s.ids))
	binary.BigEndian.PutUint32(b[0:], s.parties)
	binary.BigEndian.PutUint32(b[4:], s.count)
	binary.BigEndian.PutUint64(b[8:], s.round)
	binary.BigEndian.PutUint64(b[16:], s.resetRound)
	if s.broken {
		b[24] = 1
	}
	binary.BigEndian.PutUint32(b[25:], uint32(len(s.ids)))
	for i, id := range s.ids {
		binary.BigEndian.PutUint32(b[fixedLen+4*i:], id)
	}
	return b
}

func decode(b []byte) (state, error) {
	if len(b) < fixedLen || b[24] > 1 {
		return state{}, ErrCorrupt
	}
	s := state{
		parties:    binary.BigEndian.Uint32(b[0:]),
		count:      binary.BigEndian.Uint32(b[4:]),
		round:      binary.BigEndian.Uint64(b[8:]),
		resetRound: binary.BigEndian.Uint64(b[16:]),
		broken:     b[24] == 1,
	}
	n := binary.BigEndian.Uint32(b[25:])
	if uint64(len(b)) != fixedLen+4*uint64(n) || s.parties == 0 || s.count >= s.parties {
		return state{}, ErrCorrupt
	}
	s.ids = make([]uint32, n)
	for i := range s.ids {
		s.ids[i] = binary.BigEndian.Uint32(b[fixedLen+4*i:])
	}
	return s, nil
}

// New returns a barrier for parties parties (parties >= 1).
func New(parties int) (*Barrier, error) {
	if parties < 1 || parties > 1<<31 {
		return nil, fmt.Errorf("barrier: %d parties: want at least 1", parties)
	}
	rec, err := record.New("barrier", []byte(Kind), state{parties: uint32(parties)}.encode())
	if err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	return &Barrier{rec: rec}, nil
}

func (b *Barrier) err(err error) error {
	return record.Public(err, ErrClosed, "barrier: ")
}

// update runs fn on the decoded state under the record's lock and stores
// it when fn reports a change.
func (b *Barrier) update(ctx context.Context, fn func(st *state) (bool, error)) error {
	return b.err(b.rec.Update(ctx, func(old []byte) ([]byte, error) {
		st, err := decode(old)
		if err != nil {
			return nil, err
		}
		changed, err := fn(&st)
		if err != nil || !changed {
			return nil, err
		}
		return st.encode(), nil
	}))
}

// dead reports whether a process that waited on the barrier died: its id is
// listed and its byte lock is gone.
func (b *Barrier) dead(st *state) (bool, error) {
	b.mu.Lock()
	mine := b.id
	b.mu.Unlock()
	for _, id := range st.ids {
		if mine != nil && id == *mine {
			continue
		}
		alive, err := b.rec.Alive(id)
		if err != nil || !alive {
			return true, err
		}
	}
	return false, nil
}

// register gives this process a live id, listed in st, if it has none.
// The caller holds the record's lock.
func (b *Barrier) register(st *state) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.id != nil {
		return false, nil
	}
	for id := uint32(0); ; id++ {
		if slices.Contains(st.ids, id) {
			continue
		}
		ok, err := b.rec.Hold(id)
		if err != nil {
			return false, err
		}
		if ok {
			b.id = &id
			st.ids = append(st.ids, id)
			return true, nil
		}
	}
}

// prune drops the ids of dead processes from st.
func (b *Barrier) prune(st *state) error {
	b.mu.Lock()
	mine := b.id
	b.mu.Unlock()
	kept := st.ids[:0]
	for _, id := range st.ids {
		if mine != nil && id == *mine {
			kept = append(kept, id)
			continue
		}
		alive, err := b.rec.Alive(id)
		if err != nil {
			return err
		}
		if alive {
			kept = append(kept, id)
		}
	}
	st.ids = kept
	return nil
}

// Wait arrives at the barrier and waits until parties calls of Wait, in
// any processes, have arrived in this round. It returns this call's arrival
// index, 0 for the first and parties-1 for the last (which releases the
// others). It returns ErrBroken if the barrier is broken or breaks while it
// waits. When ctx ends first, it breaks the barrier for every party (as a
// timeout does in Python) and returns an error that wraps both ErrBroken
// and ctx.Err(); if the round completed meanwhile, it returns its index.
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var idx uint32
	var round uint64
	released := false
	err := b.update(ctx, func(st *state) (bool, error) {
		changed, err := b.register(st)
		if err != nil {
			return false, err
		}
		if st.broken {
			return changed, ErrBroken
		}
		idx, round = st.count, st.round
		st.count++
		if st.count == st.parties {
			st.count = 0
			st.round++
			released = true
		}
		return true, nil
	})
	if err != nil || released {
		return int(idx), err
	}
	werr := b.rec.Wait(ctx, func(data []byte) (bool, error) {
		st, err := decode(data)
		if err != nil || st.round != round || st.broken {
			return true, err
		}
		return b.dead(&st)
	})
	if errors.Is(werr, record.ErrClosed) {
		return 0, ErrClosed
	}
	if werr != nil && ctx.Err() == nil {
		return 0, b.err(werr)
	}
	// The round completed, the barrier broke, a party died, or ctx ended:
	// decide under the lock, breaking the barrier for the last two.
	var result error
	err = b.update(context.Background(), func(st *state) (bool, error) {
		switch {
		case st.round != round:
			if st.resetRound == round+1 {
				result = ErrBroken
			}
			return false, nil
		case st.broken:
			result = ErrBroken
			return false, nil
		}
		if werr != nil {
			result = fmt.Errorf("%w: %w", ErrBroken, werr)
		} else {
			dead, err := b.dead(st)
			if err != nil || !dead {
				return false, err // a false alarm: nobody died
			}
			result = fmt.Errorf("%w: a party died", ErrBroken)
			if err := b.prune(st); err != nil {
				return false, err
			}
		}
		st.broken = true
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if result == nil && werr == nil && !released {
		// A false alarm (dead reported, then not found under the lock):
		// cannot happen, since a dead process stays dead; be safe.
		return b.waitAgain(ctx, idx, round)
	}
	return int(idx), result
}

// waitAgain resumes a Wait after a false alarm.
func (b *Barrier) waitAgain(ctx context.Context, idx uint32, round uint64) (int, error) {
	err := b.rec.Wait(ctx, func(data []byte) (bool, error) {
		st, err := decode(data)
		return err != nil || st.round != round || st.broken, err
	})
	if err != nil {
		return 0, b.err(err)
	}
	st, err := b.load()
	if err != nil {
		return 0, err
	}
	if st.round == round || st.resetRound == round+1 {
		return 0, ErrBroken
	}
	return int(idx), nil
}

func (b *Barrier) load() (state, error) {
	data, err := b.rec.Load(context.Background())
	if err != nil {
		return state{}, b.err(err)
	}
	return decode(data)
}

// Abort breaks the barrier: every Wait under way, in every process, and
// every later one returns ErrBroken until Reset.
func (b *Barrier) Abort() error {
	return b.update(context.Background(), func(st *state) (bool, error) {
		if st.broken {
			return false, nil
		}
		st.broken = true
		return true, nil
	})
}

// Reset returns the barrier to its empty, unbroken state: the Waits under
// way return ErrBroken, as in Python, and later Waits start a new round. It
// also forgets the processes that died.
func (b *Barrier) Reset() error {
	return b.update(context.Background(), func(st *state) (bool, error) {
		if st.count > 0 {
			st.resetRound = st.round + 1
			st.round++
		}
		st.count = 0
		st.broken = false
		return true, b.prune(st)
	})
}

// Parties returns the number of parties the barrier was made for.
func (b *Barrier) Parties() int {
	st, err := b.load()
	if err != nil {
		return 0
	}
	return int(st.parties)
}

// Waiting returns the number of parties waiting in the current round
// (Python's n_waiting).
func (b *Barrier) Waiting() (int, error) {
	st, err := b.load()
	return int(st.count), err
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() (bool, error) {
	st, err := b.load()
	return st.broken, err
}

// Share arranges for the child that cmd will start to inherit b under
// name: it appends b's three descriptors to cmd.ExtraFiles and records
// them in cmd.Env. The child calls Inherit(name). Share may be called by
// several goroutines, for any number of commands; it fails with ErrClosed
// once b is closed.
func (b *Barrier) Share(cmd *exec.Cmd, name string) error {
	select {
	case <-b.rec.Done():
		return ErrClosed
	default:
	}
	return share.Add(cmd, name, Kind, b.rec.Files()...)
}

// Inherit returns the Barrier a parent shared with this process under
// name. Calling it again with the same name returns the same *Barrier.
// The error wraps ErrNotInherited, ErrWrongKind or ErrBadFD. Inherit is
// safe for use by several goroutines.
func Inherit(name string) (*Barrier, error) {
	return share.InheritAs(name, Kind, func(files []*os.File) (*Barrier, error) {
		rec, err := record.Inherit(files, Kind, "a barrier")
		if err != nil {
			return nil, err
		}
		return &Barrier{rec: rec}, nil
	})
}

// Close takes this process off the barrier's list of live parties, then
// releases its descriptors and wakes every goroutine of this process
// blocked in Wait, which get ErrClosed. A Close while other processes wait
// for this one's arrival leaves them waiting (until their ctx ends, which
// breaks the barrier); a process that exits without Close counts as dead
// and breaks it. Close is idempotent and safe to call concurrently with the
// other methods.
func (b *Barrier) Close() error {
	b.mu.Lock()
	id := b.id
	b.mu.Unlock()
	var err error
	if id != nil {
		err = b.update(context.Background(), func(st *state) (bool, error) {
			i := slices.Index(st.ids, *id)
			if i < 0 {
				return false, nil
			}
			st.ids = slices.Delete(st.ids, i, i+1)
			return true, nil
		})
		if errors.Is(err, ErrClosed) {
			err = nil
		}
	}
	return errors.Join(err, b.err(b.rec.Close()))
}
