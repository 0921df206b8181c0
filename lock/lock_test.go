package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/plock"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func init() {
	testproc.Register("peer", helperPeer)
	testproc.Register("records", helperRecords)
	testproc.Register("inherit", helperInherit)
}

// helperPeer inherits "lock" and obeys one command per line of stdin,
// answering one line on stdout. It exits at EOF.
func helperPeer() {
	l, err := Inherit("lock")
	testproc.Check(err, "inherit")
	var spinning chan struct{}
	var spun chan int
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		var reply string
		switch cmd {
		case "try": // is the lock free? (leaves it as it was)
			reply = "busy"
			if l.TryLock() {
				l.Unlock()
				reply = "free"
			}
		case "lock":
			l.Lock()
			reply = "locked"
		case "lockctx":
			ms, _ := strconv.Atoi(arg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
			err := l.LockContext(ctx)
			cancel()
			reply = errName(err)
		case "lock-waiting": // Lock in the background; answer once it waits
			go l.Lock()
			testproc.WaitBlocked(nil, "lock.(*Lock).LockContext", 1)
			reply = "waiting"
		case "release":
			reply = errName(l.Release())
		case "spin": // lock and unlock in a loop until "stop"
			spinning = make(chan struct{})
			spun = make(chan int)
			go func() {
				n := 0
				for {
					select {
					case <-spinning:
						spun <- n
						return
					default:
					}
					l.Lock()
					n++
					l.Unlock()
				}
			}()
			reply = "spinning"
		case "stop":
			close(spinning)
			reply = strconv.Itoa(<-spun)
		case "unlock": // Unlock, reporting its panic
			reply = func() (r string) {
				defer func() {
					p := recover()
					err, _ := p.(error)
					r = "panic " + errName(err)
					if p == nil {
						r = "no panic"
					}
				}()
				l.Unlock()
				return ""
			}()
		default:
			testproc.Fatalf("unknown command %q", cmd)
		}
		fmt.Println(reply)
	}
	testproc.Check(l.Close(), "close")
}

func errName(err error) string {
	for _, e := range []struct {
		err  error
		name string
	}{{ErrNotHeld, "ErrNotHeld"}, {ErrClosed, "ErrClosed"}, {context.DeadlineExceeded, "DeadlineExceeded"}} {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// peer is a running helperPeer.
type peer struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startPeer(t testing.TB, l *Lock) *peer {
	t.Helper()
	cmd := testproc.Command(t, "peer")
	cmd.Stdout = nil
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, l.Share(cmd, "lock"))
	require.NoError(t, cmd.Start())
	return &peer{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
}

// do sends one command and returns the answer.
func (p *peer) do(command string) string {
	p.t.Helper()
	_, err := fmt.Fprintln(p.in, command)
	require.NoError(p.t, err, "send %q to the peer", command)
	require.True(p.t, p.out.Scan(), "the peer answers %q (read error: %v)", command, p.out.Err())
	return p.out.Text()
}

// stop closes the peer's stdin and waits for it to exit cleanly.
func (p *peer) stop() {
	p.t.Helper()
	p.in.Close()
	require.NoError(p.t, testproc.WaitTimeout(p.cmd, 10*time.Second), "peer exits cleanly")
}

func newLockT(t *testing.T) *Lock {
	t.Helper()
	l, err := New()
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// tokens returns 1 when l is free in every process and 0 when some
// process holds it: it tries the flock from an open file description of
// its own (which conflicts with this process's too) and gives it back.
func tokens(t *testing.T, l *Lock) int {
	t.Helper()
	own, err := plock.Reopen(l.r)
	require.NoError(t, err)
	defer unix.Close(own)
	switch err := unix.Flock(own, unix.LOCK_EX|unix.LOCK_NB); err {
	case nil:
		require.NoError(t, unix.Flock(own, unix.LOCK_UN))
		return 1
	case unix.EWOULDBLOCK:
		return 0
	default:
		t.Fatalf("flock: %v", err)
	}
	return -1
}

// --- mutual exclusion across processes -------------------------------------

const (
	recordParts   = 4
	recordPayload = 24 // bytes of payload per part
)

// record returns writer w's record number seq, in recordParts pieces. The
// line is "w seq payload" where payload repeats one letter per writer.
func record(w, seq int) []string {
	letter := string(rune('a' + w%26))
	line := fmt.Sprintf("%d %04d %s\n", w, seq, strings.Repeat(letter, recordParts*recordPayload))
	parts := make([]string, 0, recordParts)
	step := (len(line) + recordParts - 1) / recordParts
	for len(line) > step {
		parts = append(parts, line[:step])
		line = line[step:]
	}
	return append(parts, line)
}

// writeRecords appends n records of writer w to f, each in several writes
// under l, alternating the three ways to lock.
func writeRecords(l *Lock, f *os.File, w, n int) error {
	for seq := range n {
		switch seq % 3 {
		case 0:
			l.Lock()
		case 1:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := l.LockContext(ctx)
			cancel()
			if err != nil {
				return err
			}
		case 2:
			for !l.TryLock() {
				time.Sleep(50 * time.Microsecond)
			}
		}
		for i, part := range record(w, seq) {
			if _, err := f.WriteString(part); err != nil {
				l.Unlock()
				return err
			}
			if i%2 == 0 {
				time.Sleep(20 * time.Microsecond) // let the others run mid-record
			} else {
				runtime.Gosched()
			}
		}
		if err := l.Release(); err != nil {
			return err
		}
	}
	return nil
}

// verifyRecords checks that data holds exactly the records of writers
// 0..writers-1, n each, none torn, each writer's in order.
func verifyRecords(data string, writers, n int) error {
	next := make([]int, writers)
	lines := strings.SplitAfter(data, "\n")
	if last := lines[len(lines)-1]; last != "" {
		return fmt.Errorf("trailing partial record %q", last)
	}
	lines = lines[:len(lines)-1]
	for i, line := range lines {
		var w, seq int
		if _, err := fmt.Sscanf(line, "%d %d", &w, &seq); err != nil || w < 0 || w >= writers {
			return fmt.Errorf("line %d is torn: %q", i+1, line)
		}
		if want := strings.Join(record(w, seq), ""); line != want {
			return fmt.Errorf("line %d is torn: %q, want %q", i+1, line, want)
		}
		if seq != next[w] {
			return fmt.Errorf("line %d: writer %d record %d, want record %d", i+1, w, seq, next[w])
		}
		next[w]++
	}
	if len(lines) != writers*n {
		return fmt.Errorf("%d records, want %d", len(lines), writers*n)
	}
	return nil
}

func TestVerifyRecordsCatchesTearing(t *testing.T) {
	a, b := record(0, 0), record(1, 0)
	good := strings.Join(a, "") + strings.Join(b, "")
	require.NoError(t, verifyRecords(good, 2, 1), "intact records pass")
	torn := a[0] + b[0] + strings.Join(a[1:], "") + strings.Join(b[1:], "")
	assert.Error(t, verifyRecords(torn, 2, 1), "interleaved writes are caught")
	assert.Error(t, verifyRecords(good+strings.Join(record(0, 1), ""), 2, 1), "an extra record is caught")
	assert.NoError(t, verifyRecords(strings.Join(b, "")+strings.Join(a, ""), 2, 1), "writers may come in any order")
	assert.Error(t, verifyRecords(strings.Join(record(0, 1), "")+strings.Join(a, ""), 1, 2), "one writer's records are in order")
	assert.Error(t, verifyRecords(strings.Join(a, ""), 2, 1), "a missing record is caught")
}

// helperRecords: args path, first writer, records per writer. Inherits
// "lock" and runs two writer goroutines, first and first+1, so goroutines
// contend inside the process as well as across processes.
func helperRecords() {
	args := testproc.Args()
	first, _ := strconv.Atoi(args[1])
	n, _ := strconv.Atoi(args[2])
	l, err := Inherit("lock")
	testproc.Check(err, "inherit")
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_APPEND, 0)
	testproc.Check(err, "open")
	var wg sync.WaitGroup
	for w := first; w < first+2; w++ {
		wg.Go(func() { testproc.Check(writeRecords(l, f, w, n), "write records") })
	}
	wg.Wait()
	testproc.Check(f.Close(), "close file")
	testproc.Check(l.Close(), "close lock")
}

func TestMutualExclusionAcrossProcesses(t *testing.T) {
	testproc.CheckFDs(t)
	const procs, perProc, n = 8, 2, 40
	l := newLockT(t)
	path := filepath.Join(t.TempDir(), "records")
	require.NoError(t, os.WriteFile(path, nil, 0o600))

	var cmds []*exec.Cmd
	for p := range procs {
		cmd := testproc.Command(t, "records", path, strconv.Itoa(p*perProc), strconv.Itoa(n))
		require.NoError(t, l.Share(cmd, "lock"))
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	// The parent writes too, as writers procs*perProc and the next one.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { errs[i] = writeRecords(l, f, procs*perProc+i, n) })
	}
	wg.Wait()
	require.NoError(t, f.Close())
	require.NoError(t, errors.Join(errs...))
	for i, cmd := range cmds {
		require.NoError(t, testproc.WaitTimeout(cmd, 60*time.Second), "writer process %d", i)
	}

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, verifyRecords(string(data), procs*perProc+2, n), "every record whole, once, in order per writer")
	assert.Equal(t, 1, tokens(t, l), "one token left in the pipe")
}

// --- TryLock, LockContext ---------------------------------------------------

func TestTryLock(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)

	require.True(t, l.TryLock(), "free lock")
	assert.False(t, l.TryLock(), "held by this process")
	assert.Equal(t, "busy", p.do("try"), "held by the parent, as another process sees it")
	l.Unlock()
	assert.Equal(t, "free", p.do("try"))

	assert.Equal(t, "locked", p.do("lock"))
	assert.False(t, l.TryLock(), "held by the child")
	assert.Equal(t, "ok", p.do("release"))
	assert.True(t, l.TryLock(), "released by the child")
	l.Unlock()
	p.stop()
	assert.Equal(t, 1, tokens(t, l))
}

func TestLockContextHonoursCtx(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)
	require.Equal(t, "locked", p.do("lock"))

	t.Run("waiting on the pipe", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := l.LockContext(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 5*time.Second, "returns soon after the deadline")
		assert.Equal(t, 0, tokens(t, l), "the child still holds the lock")
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		assert.ErrorIs(t, l.LockContext(ctx), context.Canceled)
	})
	t.Run("waiting behind a goroutine", func(t *testing.T) {
		started := make(chan struct{})
		done := make(chan error)
		go func() {
			close(started)
			done <- l.LockContext(context.Background()) // waits on the pipe
		}()
		<-started
		testproc.WaitBlocked(t, "lock.(*Lock).LockContext", 1)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, l.LockContext(ctx), context.DeadlineExceeded, "waits for the turn, then gives up")
		assert.Equal(t, "ok", p.do("release"))
		require.NoError(t, <-done, "the first waiter gets the lock")
		assert.Equal(t, "busy", p.do("try"))
		l.Unlock()
	})
	t.Run("ctx already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.Equal(t, "free", p.do("try"))
		assert.ErrorIs(t, l.LockContext(ctx), context.Canceled, "even when the lock is free")
		assert.Equal(t, 1, tokens(t, l), "and takes nothing")
	})
	t.Run("deadline in the child", func(t *testing.T) {
		require.NoError(t, l.LockContext(context.Background()))
		assert.Equal(t, "DeadlineExceeded", p.do("lockctx 50"))
		l.Unlock()
		assert.Equal(t, "ok", p.do("lockctx 5000"))
		assert.Equal(t, "ok", p.do("release"))
	})
	p.stop()
	assert.Equal(t, 1, tokens(t, l), "failed waits left the token alone")
}

// --- misuse -----------------------------------------------------------------

func unlockPanic(l *Lock) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			err = errors.New("no panic")
			return
		}
		err, _ = p.(error)
	}()
	l.Unlock()
	return nil
}

func TestUnlockOfUnlockedInProcess(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	assert.ErrorIs(t, l.Release(), ErrNotHeld, "never locked")
	assert.ErrorIs(t, unlockPanic(l), ErrNotHeld, "Unlock panics like sync.Mutex")
	assert.Equal(t, 1, tokens(t, l), "no second token")

	l.Lock()
	//lint:ignore SA2001 the test only needs the lock taken and given back once
	l.Unlock()
	assert.ErrorIs(t, l.Release(), ErrNotHeld, "second unlock")
	assert.ErrorIs(t, unlockPanic(l), ErrNotHeld)
	assert.Equal(t, 1, tokens(t, l), "no second token")

	var wg sync.WaitGroup
	l.Lock()
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = l.Release() })
	}
	wg.Wait()
	var ok int
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			assert.ErrorIs(t, err, ErrNotHeld)
		}
	}
	assert.Equal(t, 1, ok, "one of four racing unlocks succeeds")
	assert.Equal(t, 1, tokens(t, l))
}

func TestUnlockOfUnlockedInAnotherProcess(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)

	assert.Equal(t, "ErrNotHeld", p.do("release"), "free lock")
	assert.Equal(t, "panic ErrNotHeld", p.do("unlock"))
	assert.Equal(t, 1, tokens(t, l), "no second token")

	l.Lock()
	assert.Equal(t, "ErrNotHeld", p.do("release"), "held by another process")
	assert.Equal(t, "panic ErrNotHeld", p.do("unlock"))
	assert.Equal(t, 0, tokens(t, l), "still held")
	assert.Equal(t, "DeadlineExceeded", p.do("lockctx 20"), "still exclusive")
	l.Unlock()

	assert.Equal(t, "locked", p.do("lock"))
	assert.ErrorIs(t, l.Release(), ErrNotHeld, "the parent cannot release the child's lock")
	assert.Equal(t, 0, tokens(t, l))
	assert.Equal(t, "ok", p.do("release"))
	assert.Equal(t, "ErrNotHeld", p.do("release"), "second unlock in the child")
	p.stop()
	assert.Equal(t, 1, tokens(t, l))
}

func TestCloseWakesBlockedCallers(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)
	require.Equal(t, "locked", p.do("lock"))

	const waiters = 4
	errs := make(chan error, waiters)
	for i := range waiters {
		go func() {
			if i == 0 {
				defer func() {
					err, _ := recover().(error)
					errs <- err
				}()
				l.Lock()
				errs <- errors.New("Lock returned on a closed lock")
				return
			}
			errs <- l.LockContext(context.Background())
		}()
	}
	testproc.WaitBlocked(t, "lock.(*Lock).LockContext", waiters) // one waits on the pipe, the others for the turn
	require.NoError(t, l.Close())
	for range waiters {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake a blocked caller")
		}
	}
	assert.NoError(t, l.Close(), "Close is idempotent")
	assert.False(t, l.TryLock())
	assert.ErrorIs(t, l.LockContext(context.Background()), ErrClosed)
	assert.ErrorIs(t, l.Release(), ErrNotHeld)
	assert.ErrorIs(t, l.Share(exec.Command("true"), "lock"), ErrClosed)

	assert.Equal(t, "busy", p.do("try"), "the child still holds the lock")
	assert.Equal(t, "ok", p.do("release"), "and works on")
	assert.Equal(t, "free", p.do("try"))
	p.stop()
}

func TestCloseWhileHeld(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)

	l.Lock()
	require.NoError(t, l.Close())
	assert.Equal(t, "busy", p.do("try"), "Close does not unlock")
	l.Unlock() // gives the token back and closes the last descriptor
	assert.Equal(t, "free", p.do("try"), "Unlock after Close hands the token on")
	assert.ErrorIs(t, l.Release(), ErrNotHeld)
	p.stop()
	// CheckFDs fails the test if Unlock left the write end open.
}

func TestCloseRacesWithUse(t *testing.T) {
	testproc.CheckFDs(t)
	for range 20 {
		l, err := New()
		require.NoError(t, err)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for {
					switch g % 2 {
					case 0:
						if err := l.LockContext(context.Background()); err != nil {
							assert.ErrorIs(t, err, ErrClosed)
							return
						}
					case 1:
						if !l.TryLock() {
							select {
							case <-l.done:
								return
							default:
								runtime.Gosched()
								continue
							}
						}
					}
					runtime.Gosched()
					assert.NoError(t, l.Release(), "the holder releases, closed or not")
				}
			})
		}
		time.Sleep(time.Millisecond)
		assert.NoError(t, l.Close())
		wg.Wait()
	}
}

// --- crash ------------------------------------------------------------------

func TestHolderKilled(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)
	require.Equal(t, "locked", p.do("lock"))
	require.NoError(t, p.cmd.Process.Kill())
	p.cmd.Wait()

	// The kernel released the dead holder's flock: the lock is free at
	// once, for TryLock too.
	assert.Equal(t, 1, tokens(t, l))
	require.True(t, l.TryLock(), "free as soon as its holder is dead")
	l.Unlock()
}

// A process blocked in Lock while the holder is killed gets the lock within
// a second (within plock.Recheck: the dead holder wrote no wake).
func TestHolderKilledWhileOthersWait(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	holder := startPeer(t, l)
	require.Equal(t, "locked", holder.do("lock"))
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got <- l.LockContext(ctx)
	}()
	require.Never(t, func() bool { return len(got) > 0 }, 50*time.Millisecond, 5*time.Millisecond, "held by the child")
	require.NoError(t, holder.cmd.Process.Kill())
	killed := time.Now()
	holder.cmd.Wait()
	require.NoError(t, <-got)
	assert.Less(t, time.Since(killed), time.Second, "taken within a second of the holder's death")
	l.Unlock()
}

func TestWaiterKilled(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	p := startPeer(t, l)
	l.Lock()
	// The child waits for the token and is killed waiting: nothing is lost.
	require.Equal(t, "waiting", p.do("lock-waiting"))
	require.NoError(t, p.cmd.Process.Kill())
	p.cmd.Wait()
	l.Unlock()
	assert.True(t, l.TryLock())
	l.Unlock()
}

// --- goroutines -------------------------------------------------------------

func TestGoroutines(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	var wg sync.WaitGroup
	counter := 0 // plain int: the race detector checks the happens-before edges
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				switch (g + i) % 3 {
				case 0:
					l.Lock()
				case 1:
					require.NoError(t, l.LockContext(context.Background()))
				case 2:
					for !l.TryLock() {
						runtime.Gosched()
					}
				}
				counter++
				l.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 8*200, counter)
	assert.Equal(t, 1, tokens(t, l))
}

// --- inheritance ------------------------------------------------------------

// helperInherit checks Inherit's answers for the names the test shares.
func helperInherit() {
	a, err := Inherit("lock")
	testproc.Check(err, "inherit")
	b, err := Inherit("lock")
	testproc.Check(err, "inherit again")
	if a != b {
		testproc.Fatalf("two Inherits of one name gave two Locks")
	}
	if _, err := Inherit("nope"); !errors.Is(err, ErrNotInherited) {
		testproc.Fatalf("Inherit(nope) = %v, want ErrNotInherited", err)
	}
	for _, name := range []string{"onefd", "twopipes", "swapped", "socket", "conn"} {
		if _, err := Inherit(name); !errors.Is(err, ErrWrongKind) {
			testproc.Fatalf("Inherit(%s) = %v, want ErrWrongKind", name, err)
		}
	}
	// A blocking pipe (a parent in another language) still honours ctx.
	c, err := Inherit("blocking")
	testproc.Check(err, "inherit blocking")
	if !c.TryLock() {
		testproc.Fatalf("blocking: the lock is not free")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.LockContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		testproc.Fatalf("blocking: LockContext = %v, want DeadlineExceeded", err)
	}
	c.Unlock()
	testproc.Check(c.Close(), "close blocking")
	testproc.Check(a.Close(), "close")
}

func TestInherit(t *testing.T) {
	testproc.CheckFDs(t)
	l := newLockT(t)
	cmd := testproc.Command(t, "inherit")
	require.NoError(t, l.Share(cmd, "lock"))

	pipe := func(flags int) (r, w *os.File) {
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], flags))
		r, w = os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
		t.Cleanup(func() { r.Close(); w.Close() })
		return r, w
	}
	r1, w1 := pipe(unix.O_CLOEXEC | unix.O_NONBLOCK)
	r2, w2 := pipe(unix.O_CLOEXEC | unix.O_NONBLOCK)
	require.NoError(t, share.Add(cmd, "onefd", Kind, r1))
	require.NoError(t, share.Add(cmd, "twopipes", Kind, r1, w2))
	require.NoError(t, share.Add(cmd, "swapped", Kind, w1, r1))
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	s0, s1 := os.NewFile(uintptr(sp[0]), "s0"), os.NewFile(uintptr(sp[1]), "s1")
	t.Cleanup(func() { s0.Close(); s1.Close() })
	require.NoError(t, share.Add(cmd, "socket", Kind, s0, s1))
	require.NoError(t, share.Add(cmd, "conn", "conn", r2))
	br, bw := pipe(unix.O_CLOEXEC) // blocking
	require.NoError(t, share.Add(cmd, "blocking", Kind, br, bw))

	assert.ErrorIs(t, l.Share(cmd, "bad name"), ErrBadName)
	require.NoError(t, cmd.Start())
	require.NoError(t, testproc.WaitTimeout(cmd, 30*time.Second), "the child's checks pass")
	assert.Equal(t, 1, tokens(t, l))
}
