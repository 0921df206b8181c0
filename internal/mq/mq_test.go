package mq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
)

// The engine's own tests: what the public packages cannot reach (hooks,
// batching, hand-back, the wire format's defences, the token pipe's
// arithmetic). The behaviour users see is tested, across processes, in
// queue, simplequeue and joinable.

func TestMain(m *testing.M) { testproc.Main(m) }

type item struct {
	P int    `msgpack:"p"` // producer
	I int    `msgpack:"i"` // sequence number
	S string `msgpack:"s"`
}

const kind = "mq-test"

// inherit opens, in a helper, the queue shared under name.
func inherit[T any](name string, h Hooks) *Queue[T] {
	obj, err := share.Inherit(name, kind, func(files []*os.File) (any, error) { return FromFiles[T](files, h) })
	testproc.Check(err, "inherit "+name)
	return obj.(*Queue[T])
}

func argInt(i int) int {
	n, err := strconv.Atoi(testproc.Args()[i])
	testproc.Check(err, "argument")
	return n
}

func init() {
	// counted-put N: put N items with hooks that count; print "put F",
	// F the items SendFailed gave back so far (a direct send that found
	// the socket full); then Close, and print "sent failed" (the items
	// BeforeSend let through, and those SendFailed gave back).
	testproc.Register("counted-put", func() {
		var sent, failed atomic.Int64
		q := inherit[item]("q", Hooks{
			BeforeSend: func(_ context.Context, n int) error { sent.Add(int64(n)); return nil },
			SendFailed: func(_ context.Context, n int) { failed.Add(int64(n)) },
		})
		for i := 0; i < argInt(0); i++ {
			testproc.Check(q.Put(context.Background(), item{P: 1, I: i}), "put")
		}
		fmt.Println("put", q.send.pending())
		testproc.Check(q.Close(), "close")
		fmt.Println(sent.Load(), failed.Load())
	})
	// get-one-and-close: get one item, then Close, which gives back the
	// rest of the packet it came in; print how many that was.
	// get-one-and-close: get one item, Close (which gives the rest of the
	// packet back), and print how many items this process held and how
	// many its BeforeSend hook counted (none: they were counted when first
	// sent).
	testproc.Register("get-one-and-close", func() {
		var counted atomic.Int64
		q := inherit[item]("q", Hooks{BeforeSend: func(_ context.Context, n int) error { counted.Add(int64(n)); return nil }})
		_, err := q.Get(context.Background())
		testproc.Check(err, "get")
		held := q.recv.pending()
		testproc.Check(q.Close(), "close")
		fmt.Println(held, counted.Load())
	})
	// batch-get-one-and-close: take up to 8 packets in one receive, return
	// one item, print how many this process holds, and Close, which gives
	// the rest back, large items with their pipes.
	testproc.Register("batch-get-one-and-close", func() {
		q := inherit[item]("q", Hooks{})
		q.recv.ensure()
		q.recv.batch = maxRecvBatch
		_, err := q.Get(context.Background())
		testproc.Check(err, "get")
		fmt.Println(q.recv.pending())
		testproc.Check(q.Close(), "close")
	})
	// slow-consumer MS: get items, spending MS milliseconds on each, until
	// one with I < 0; print how many.
	testproc.Register("slow-consumer", func() {
		q := inherit[item]("q", Hooks{})
		n := 0
		for {
			v, err := q.Get(context.Background())
			testproc.Check(err, "get")
			if v.I < 0 {
				break
			}
			n++
			time.Sleep(time.Duration(argInt(0)) * time.Millisecond)
		}
		fmt.Println(n)
		testproc.Check(q.Close(), "close")
	})
	// is-sync: report whether the inherited queue is synchronous and
	// bounded.
	testproc.Register("is-sync", func() {
		q := inherit[item]("q", Hooks{})
		fmt.Println(q.Sync(), q.Maxsize())
		testproc.Check(q.Close(), "close")
	})
}

// output runs helper with q shared as "q" and returns its stdout.
func output[T any](t *testing.T, q *Queue[T], helper string, args ...string) string {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	var out strings.Builder
	cmd.Stdout = &out
	require.NoError(t, share.Add(cmd, "q", kind, q.Files()...))
	require.NoError(t, cmd.Start())
	require.NoError(t, testproc.WaitTimeout(cmd, 30*time.Second))
	return strings.TrimSpace(out.String())
}

// BeforeSend counts every item once it can reach the kernel; SendFailed
// gives back those that did not (a direct send that found the socket full
// and went to the backlog instead).
func TestHooksCountEveryItem(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := New[item](0, Hooks{})
	require.NoError(t, err)
	defer q.Close()
	const n = 20000
	cmd := testproc.Command(t, "counted-put", strconv.Itoa(n))
	require.NoError(t, share.Add(cmd, "q", kind, q.Files()...))
	child := testproc.StartLines(t, cmd)
	// Nobody gets until every Put has returned: the producer filled the
	// socket and its buffer.
	var early int
	_, err = fmt.Sscanf(child.Line(t), "put %d", &early)
	require.NoError(t, err)
	assert.Positive(t, early, "the socket filled up: items were buffered")
	for i := 0; i < n; i++ {
		v, err := q.Get(context.Background())
		require.NoError(t, err)
		require.Equal(t, i, v.I)
	}
	var sent, failed int
	_, err = fmt.Sscan(child.Line(t), &sent, &failed)
	require.NoError(t, err)
	assert.Equal(t, n, sent, "every item counted once by BeforeSend, also one whose direct send found the socket full")
	assert.Zero(t, failed, "and never uncounted: it went to the backlog counted")
	child.Wait(t)
}

// A BeforeSend error fails the Put that sends directly; for buffered
// items it goes to the next Put, Flush or Close of the process, and the
// items are not sent (a bounded queue gets their slots back).
func TestBeforeSendError(t *testing.T) {
	testproc.CheckFDs(t)
	boom := errors.New("boom")
	var fail atomic.Bool
	var blocked atomic.Int64
	q, err := New[item](100000, Hooks{
		BeforeSend: func(_ context.Context, n int) error {
			if fail.Load() {
				return boom
			}
			return nil
		},
		BeforeBlock: func() { blocked.Add(1) },
	})
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	fail.Store(true)
	assert.ErrorIs(t, q.Put(ctx, item{I: 0}), boom, "a direct send")
	assert.Equal(t, 0, q.Qsize(), "its slot is back")
	fail.Store(false)
	// Fill the socket so that Puts buffer.
	n := 0
	for q.send.pending() == 0 {
		require.NoError(t, q.Put(ctx, item{I: n}))
		n++
	}
	fail.Store(true)
	var reported []error      // the flusher's failures, reported to later calls
	for i := 0; i < 50; i++ { // fewer than maxBuffered: these Puts do not wait
		if err := q.Put(ctx, item{I: n + i}); err != nil {
			reported = append(reported, err)
		}
	}
	// Make room: the flusher's BeforeSend now fails for what it had not
	// sent yet. What arrives is the items sent before, in order.
	got := 0
	for {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		v, err := q.Get(short)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, got, v.I)
		got++
	}
	if err := q.Flush(ctx); err != nil {
		reported = append(reported, err)
	}
	// Each failure is reported: by the Put that sent directly (then
	// plainly), or by a later call (then saying how many items it cost).
	require.NotEmpty(t, reported)
	for _, err := range reported {
		require.ErrorIs(t, err, boom)
	}
	assert.NoError(t, q.Flush(ctx), "an error is reported once")
	assert.GreaterOrEqual(t, got, n-1, "the items the flusher had let through arrived")
	assert.Less(t, got, n+50, "the others did not")
	assert.Equal(t, 0, q.Qsize(), "the failed items' slots are back")
	_, err = q.TryGet()
	assert.ErrorIs(t, err, ErrEmpty)
	fail.Store(false)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = q.Get(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Positive(t, blocked.Load(), "BeforeBlock ran before Get waited")
}

// A consumer that received a packet of several items and took one gives
// the others back on Close, while other processes go on: none is lost.
func TestCloseHandsBack(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := New[item](0, Hooks{})
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	// One packet of 5 items, as the flusher sends to quick consumers.
	var p []byte
	for i := 0; i < 5; i++ {
		e, err := encode(&item{I: i}, MaxItemSize)
		require.NoError(t, err)
		p = append(p, e.frame()...)
		e.release()
	}
	var serr error
	require.NoError(t, q.sndRC.Control(func(d uintptr) { serr = sendPacket(int(d), p, -1) }))
	require.NoError(t, serr)
	var gaveBack, counted int
	_, err = fmt.Sscan(output(t, q, "get-one-and-close"), &gaveBack, &counted)
	require.NoError(t, err)
	assert.Equal(t, 4, gaveBack)
	assert.Zero(t, counted, "items given back are not counted again by BeforeSend (joinable's Join would wait for them forever)")
	for i := 1; i < 5; i++ {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v.I, "given back in order")
	}
	assert.True(t, q.Empty())
}

// A consumer that took several packets at once, large items among them,
// and returned one item gives the others back on Close, intact.
func TestCloseHandsBackReceivedPackets(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := NewSync[item](Hooks{})
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	const n = 10
	mk := func(i int) item {
		if i%3 == 1 {
			return item{I: i, S: strings.Repeat(strconv.Itoa(i), 100<<10)} // larger than a packet
		}
		return item{I: i, S: "small"}
	}
	for i := 0; i < n; i++ {
		require.NoError(t, q.Put(ctx, mk(i)))
	}
	held, err := strconv.Atoi(output(t, q, "batch-get-one-and-close"))
	require.NoError(t, err)
	assert.Equal(t, maxRecvBatch-1, held, "the child held the rest of its batch")
	seen := map[int]bool{}
	for i := 0; i < n-1; i++ {
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, mk(v.I), v, "item %d intact", v.I)
		require.False(t, seen[v.I])
		seen[v.I] = true
	}
	assert.False(t, seen[0], "the child's item")
	assert.True(t, q.Empty())
}

// Slow consumers get one item per packet: neither of two consumers that
// each spend a millisecond per item is left idle while the other holds a
// batch.
func TestPacerSpreadsWorkOverSlowConsumers(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := New[item](0, Hooks{})
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	const n = 600
	outs := make([]chan string, 2)
	for c := range outs {
		outs[c] = make(chan string, 1)
		go func() { outs[c] <- output(t, q, "slow-consumer", "1") }()
	}
	for i := 0; i < n; i++ {
		require.NoError(t, q.Put(ctx, item{I: i}))
	}
	for range outs {
		require.NoError(t, q.Put(ctx, item{I: -1}))
	}
	var counts []int
	for _, out := range outs {
		k, err := strconv.Atoi(<-out)
		require.NoError(t, err)
		counts = append(counts, k)
	}
	assert.Equal(t, n, counts[0]+counts[1])
	for _, k := range counts {
		assert.Greater(t, k, n/3, "each consumer did a fair share: %v", counts)
	}
	assert.Equal(t, int32(1), q.send.batch.Load(), "one item per packet for slow consumers")
}

// Quick consumers get batches.
func TestPacerBatchesForQuickConsumers(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := New[item](0, Hooks{})
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	done := make(chan string, 1)
	go func() { done <- output(t, q, "slow-consumer", "0") }()
	const n = 200000
	for i := 0; i < n; i++ {
		require.NoError(t, q.Put(ctx, item{I: i}))
	}
	require.NoError(t, q.Put(ctx, item{I: -1}))
	assert.Equal(t, strconv.Itoa(n), <-done)
	assert.Greater(t, q.send.batch.Load(), int32(1), "several items per packet")
}

// Packets no mq writer produces are refused with ErrCorrupt, their
// descriptors closed, and the queue goes on.
func TestCorruptPackets(t *testing.T) {
	testproc.CheckFDs(t)
	var dropped atomic.Int64
	q, err := New[item](0, Hooks{Dropped: func(_ context.Context, n int) { dropped.Add(int64(n)) }})
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	raw := func(p []byte, rights int) {
		t.Helper()
		var serr error
		require.NoError(t, q.sndRC.Control(func(d uintptr) { serr = sendPacket(int(d), p, rights) }))
		require.NoError(t, serr)
	}
	pipe := func() (r, w int) {
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK))
		_, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20)
		require.NoError(t, err)
		return p[0], p[1]
	}
	good := func(i int) {
		t.Helper()
		require.NoError(t, q.Put(ctx, item{I: i}))
		v, err := q.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, i, v.I)
	}
	stub := func(size uint64, inline []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, bigMarker)
		b = binary.BigEndian.AppendUint64(b, size)
		return append(b, inline...)
	}

	for name, p := range map[string][]byte{
		"half a header":   {0, 0},
		"a short frame":   {0, 0, 0, 9, 1, 2},
		"negative length": {0x80, 0, 0, 1, 0},
		"empty":           {},
	} {
		raw(p, -1)
		_, err := q.Get(ctx)
		assert.ErrorIs(t, err, ErrCorrupt, name)
		good(1)
	}

	// Descriptors where none belongs, or a stub without one, or one that
	// lies about its size: refused, and the descriptors closed.
	r, w := pipe()
	raw([]byte{0, 0, 0, 1, 0xc0}, r)
	unix.Close(r)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, ErrCorrupt, "a frame with a descriptor")
	raw(stub(10, nil), -1)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, ErrCorrupt, "a stub without its pipe")
	r2, w2 := pipe()
	raw(stub(MaxItemSize+1, nil), r2)
	unix.Close(r2)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, ErrCorrupt, "a stub announcing more than MaxItemSize")
	unix.Close(w)
	unix.Close(w2)
	good(2)

	// A large item whose sender dies midway (here: closes its end after
	// half the body) is dropped alone, whether what arrived decodes so far
	// or not; the next item comes.
	e, err := encode(&item{S: strings.Repeat("x", 100<<10)}, MaxItemSize)
	require.NoError(t, err)
	for k, payload := range [][]byte{e.payload(), make([]byte, 100<<10)} {
		r3, w3 := pipe()
		raw(stub(uint64(len(payload)), payload[:100]), r3)
		unix.Close(r3)
		_, werr := unix.Write(w3, payload[100:50<<10])
		require.NoError(t, werr)
		unix.Close(w3)
		require.NoError(t, q.Put(ctx, item{I: 3 + k}))
		v, err := q.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, 3+k, v.I, "the dropped item is skipped")
		assert.Zero(t, dropped.Load(), "a body that ends early gives nothing back: a forged stub looks the same")
	}
	e.release()

	// A whole large item that does not decode into T is reported, and
	// consumed.
	r4, w4 := pipe()
	payload := make([]byte, 100<<10)
	raw(stub(uint64(len(payload)), payload[:100]), r4)
	unix.Close(r4)
	k, werr := unix.Write(w4, payload[100:])
	require.NoError(t, werr)
	require.Equal(t, len(payload)-100, k)
	unix.Close(w4)
	_, err = q.Get(ctx)
	assert.ErrorIs(t, err, ErrCorrupt, "a large item that is not one msgpack value")
	good(6)
}

// The token pipe never refuses a slot given back, even when the queue
// holds maxsize items and every page of the pipe is in use: maxPipeTokens
// is safe.
func TestTokenPipeArithmetic(t *testing.T) {
	testproc.CheckFDs(t)
	maxsize := maxPipeTokens(64 << 10) // the default pipe size: no resize
	tok, err := newTokens(maxsize)
	require.NoError(t, err)
	defer tok.r.Close()
	defer tok.w.Close()
	n, err := tok.count()
	require.NoError(t, err)
	require.Equal(t, maxsize, n)
	// Take and give back in every pattern of sizes up to maxGive, so that
	// pages are split at every offset; the pipe must always take them.
	for round := 0; round < 3000; round++ {
		k := 1 + round%maxGive
		for i := 0; i < k; i++ {
			ok, err := tok.tryTake()
			require.NoError(t, err)
			require.True(t, ok)
		}
		require.NoError(t, tok.give(k), "round %d: give %d", round, k)
	}
	n, err = tok.count()
	require.NoError(t, err)
	assert.Equal(t, maxsize, n)
	ok, err := tok.tryTake()
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, tok.give(1))
	// One token more than maxsize-ish is what a broken invariant looks
	// like: it is reported, not blocked on.
	var gerr error
	for i := 0; i < 70000 && gerr == nil; i++ {
		gerr = tok.give(1)
	}
	assert.Error(t, gerr)
}

func socketpairFiles(typ int) (*os.File, *os.File, error) { return fd.Socketpair(typ, "mq-test") }

// FromFiles checks what it is given, and closes it on error.
func TestFromFilesRefuses(t *testing.T) {
	testproc.CheckFDs(t)
	_, err := FromFiles[item](nil, Hooks{})
	assert.Error(t, err)
	a, b, err := socketpairFiles(unix.SOCK_SEQPACKET)
	require.NoError(t, err)
	_, err = FromFiles[item]([]*os.File{a, b}, Hooks{})
	assert.ErrorContains(t, err, "not a queue")
	c, d, err := socketpairFiles(unix.SOCK_STREAM)
	require.NoError(t, err)
	_, err = FromFiles[item]([]*os.File{c, d}, Hooks{})
	assert.ErrorContains(t, err, "SOCK_SEQPACKET")
}

// A child opens a synchronous or bounded queue as it was created.
func TestChildSeesTheQueueKind(t *testing.T) {
	testproc.CheckFDs(t)
	s, err := NewSync[item](Hooks{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, "true 0", output(t, s, "is-sync"))
	b, err := New[item](5, Hooks{})
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, "false 5", output(t, b, "is-sync"))
}

// Close waits for the goroutines it started, and Flush and Close after it
// report ErrClosed or nothing.
func TestCloseIsIdempotent(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := New[item](0, Hooks{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); assert.NoError(t, q.Close()) }()
	}
	wg.Wait()
	assert.ErrorIs(t, q.Flush(context.Background()), ErrClosed)
	assert.True(t, q.Closed())
}
