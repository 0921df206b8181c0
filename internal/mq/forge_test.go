package mq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/share"
	"github.com/mproc-go/mproc/internal/testproc"
)

// A foreign process that holds a queue's descriptors can write anything
// into its socket. These tests run such a forger as a child: it takes the
// descriptors shared as "q" without opening the queue and sends packets
// no mq writer produces.

// forgedStub is a large-item stub announcing size bytes.
func forgedStub(size uint64, inline []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, bigMarker)
	b = binary.BigEndian.AppendUint64(b, size)
	return append(b, inline...)
}

// forgedFrames are packets of frames that are not msgpack items: random
// bytes, empty packets, empty frames, a value with bytes after it, a
// value nested too deep.
func forgedFrames() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var pkts [][]byte
	for range 20 {
		p := make([]byte, 1+rng.IntN(200))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		pkts = append(pkts, p)
	}
	frame := func(payload []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
	}
	deep := append([]byte(strings.Repeat("\x91", 20000)), 0xc0)
	pkts = append(pkts,
		nil,        // an empty packet
		frame(nil), // one empty frame
		[]byte(strings.Repeat(string(frame(nil)), 64)), // 64 empty frames
		frame([]byte{0x2a, 0xc1, 0xc1, 0xc1}),          // 42 and trailing bytes
		frame(deep),                                    // too deep
	)
	return pkts
}

func init() {
	// forge MODE: send forged packets on the socket shared as "q", print
	// "sent", then, for "stall", wait to be killed.
	//   frames: forgedFrames, then a stub whose body ends early;
	//   stall: a stub whose (blocking-mode) pipe it keeps open and never
	//   writes.
	testproc.Register("forge", func() {
		e, ok := share.Lookup("q")
		if !ok {
			testproc.Fatalf("no q")
		}
		sfd := e.FDs[0]
		send := func(p []byte, rights int) {
			testproc.Check(sendPacket(sfd, p, rights), "send")
		}
		switch mode := testproc.Args()[0]; mode {
		case "frames":
			for _, p := range forgedFrames() {
				send(p, -1)
			}
			var p [2]int
			testproc.Check(unix.Pipe2(p[:], unix.O_CLOEXEC), "pipe")
			send(forgedStub(100<<10, make([]byte, 10)), p[0])
			unix.Write(p[1], make([]byte, 1000))
			unix.Close(p[0])
			unix.Close(p[1])
			fmt.Println("sent")
		case "stall":
			var p [2]int
			testproc.Check(unix.Pipe2(p[:], unix.O_CLOEXEC), "pipe") // blocking
			send(forgedStub(100<<10, make([]byte, 10)), p[0])
			fmt.Println("sent")
			time.Sleep(time.Hour)
		default:
			testproc.Fatalf("mode %q", mode)
		}
	})
}

// Forged packets change no accounting: a bounded queue gives back no slot
// for them, the Dropped hook (joinable's count) never runs, each is
// reported once by the Get that meets it, and the genuine items behind
// them all arrive.
func TestForgedPacketsChangeNoAccounting(t *testing.T) {
	testproc.CheckFDs(t)
	var dropped atomic.Int64
	const maxsize = 4
	q, err := New[item](maxsize, Hooks{Dropped: func(_ context.Context, n int) { dropped.Add(int64(n)) }})
	require.NoError(t, err)
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	assert.Equal(t, "sent", output(t, q, "forge", "frames"))
	forged := len(forgedFrames()) + 1
	assert.Equal(t, 0, q.Qsize(), "forged packets take no slot")
	for i := range maxsize {
		require.NoError(t, q.Put(ctx, item{I: i}))
	}
	require.ErrorIs(t, q.TryPut(item{}), ErrFull)

	errs, gets := 0, 0
	var got []int
	for len(got) < maxsize {
		gets++
		require.LessOrEqual(t, gets, forged+64+maxsize, "a bad packet is reported once, not forever")
		v, err := q.Get(ctx)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			errs++
			continue
		}
		got = append(got, v.I)
	}
	assert.Equal(t, []int{0, 1, 2, 3}, got, "every genuine item arrives, in order")
	assert.Positive(t, errs)
	_, err = q.TryGet()
	assert.ErrorIs(t, err, ErrEmpty, "nothing is left: the short stub was dropped")

	// The queue holds exactly maxsize items again, no more.
	assert.Equal(t, 0, q.Qsize())
	assert.True(t, q.Empty())
	for i := range maxsize {
		require.NoError(t, q.TryPut(item{I: i}), "slot %d", i)
	}
	assert.ErrorIs(t, q.TryPut(item{}), ErrFull, "no slot was given back for a forged packet")
	assert.Equal(t, maxsize, q.Qsize())
	assert.Zero(t, dropped.Load(), "Dropped (joinable's count) never runs for a forged packet")
}

// A stub whose pipe its sender keeps open and never writes (here, a
// blocking-mode pipe): Get returns on its ctx, TryGet does not wait, the
// next Get goes on with the same item, and Close does not hang.
func TestStalledBodyHonoursContext(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := New[item](0, Hooks{})
	require.NoError(t, err)
	cmd := testproc.Command(t, "forge", "stall")
	require.NoError(t, share.Add(cmd, "q", kind, q.Files()...))
	c := testproc.StartLines(t, cmd)
	require.Equal(t, "sent", c.Line(t))

	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err = q.Get(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, q.Qsize(), "the item being read is this process's")
	}
	_, err = q.TryGet()
	assert.ErrorIs(t, err, ErrEmpty)

	errs := make(chan error, 1)
	go func() { _, err := q.Get(context.Background()); errs <- err }()
	closed := make(chan error, 1)
	go func() { closed <- q.Close() }()
	select {
	case err := <-closed:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a stalled body")
	}
	assert.ErrorIs(t, <-errs, ErrClosed)
	cmd.Process.Kill()
	cmd.Wait()
}

func init() {
	// batch-get-one-last: wait for a line on stdin (the parent has closed
	// its copy: this process holds the queue's last ends), take a batch of
	// packets, return one item, then Close; print how many items it held
	// and what Close returned.
	testproc.Register("batch-get-one-last", func() {
		q := inherit[item]("q", Hooks{})
		fmt.Scanln()
		q.recv.ensure()
		q.recv.batch = maxRecvBatch
		_, err := q.Get(context.Background())
		testproc.Check(err, "get")
		fmt.Println(q.recv.pending(), q.Close())
	})
}

// The last holder of a synchronous queue closes it while holding items it
// received and no Get took: they cannot be handed back to anyone, and
// Close does not report them as items of this process that were not sent.
func TestLastHolderCloseHoldsNoUnsentItems(t *testing.T) {
	testproc.CheckFDs(t)
	q, err := NewSync[item](Hooks{})
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, q.Put(context.Background(), item{I: i}))
	}
	cmd := testproc.Command(t, "batch-get-one-last")
	require.NoError(t, share.Add(cmd, "q", kind, q.Files()...))
	c := testproc.StartLines(t, cmd)
	require.NoError(t, q.Close())
	_, err = fmt.Fprintln(c.Stdin)
	require.NoError(t, err)
	assert.Equal(t, []string{fmt.Sprint(maxRecvBatch-1, " <nil>")}, c.Wait(t))
}

// FuzzPacket: whatever another process sends on a queue's socket (any
// bytes, with or without a descriptor whose contents are any bytes), the
// Get that meets it never panics, reports it once, gives no slot back for
// what is not a genuine item, and the queue goes on delivering genuine
// items.
func FuzzPacket(f *testing.F) {
	for _, p := range forgedFrames() {
		f.Add(p, false, []byte(nil))
	}
	good, _ := encode(&item{I: 7, S: "x"}, MaxItemSize)
	f.Add(append([]byte(nil), good.frame()...), false, []byte(nil))
	good.release()
	f.Add(forgedStub(100, make([]byte, 10)), true, make([]byte, 90))
	f.Add(forgedStub(5, []byte{0x95}), true, []byte{1, 2, 3, 4})
	f.Add(forgedStub(1<<20, nil), true, []byte{1})
	const maxsize = 4
	q, err := New[item](maxsize, Hooks{Dropped: func(context.Context, int) { panic("Dropped ran for a forged packet") }})
	require.NoError(f, err)
	defer q.Close()
	f.Fuzz(func(t *testing.T, p []byte, withPipe bool, body []byte) {
		if len(p) > maxPacket {
			p = p[:maxPacket]
		}
		rights := -1
		if withPipe {
			var fds [2]int
			require.NoError(t, unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK))
			unix.Write(fds[1], body) // what the pipe takes
			unix.Close(fds[1])
			rights = fds[0]
			defer unix.Close(fds[0])
		}
		var serr error
		require.NoError(t, q.sndRC.Control(func(d uintptr) { serr = sendPacket(int(d), p, rights) }))
		require.NoError(t, serr)
		// Take whatever it carries; each Get reports at most one problem.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for i := 0; ; i++ {
			require.Less(t, i, maxFrames+2, "a forged packet keeps failing Gets")
			_, err := q.TryGet()
			if errors.Is(err, ErrEmpty) {
				break
			}
		}
		// Genuine items still arrive, and forged ones left the slots alone:
		// the queue holds exactly maxsize items.
		n := 0
		for ; n < maxsize+1; n++ {
			if err := q.TryPut(item{I: n}); err != nil {
				require.ErrorIs(t, err, ErrFull)
				break
			}
		}
		require.LessOrEqual(t, n, maxsize, "more slots than maxsize")
		for i := range n {
			v, err := q.Get(ctx)
			require.NoError(t, err)
			require.Equal(t, i, v.I)
		}
		require.Equal(t, 0, q.Qsize())
	})
}

// FuzzParseMeta: a queue's description packet comes from whoever holds its
// descriptors. parseMeta never panics, and what it accepts writes back the
// same.
func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(metaMagic + "\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x01x"))
	f.Add([]byte(metaMagic + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeta(b)
		if err != nil {
			return
		}
		if m.maxsize < 0 || m.maxsize > 1<<31 {
			t.Fatalf("maxsize %d accepted", m.maxsize)
		}
		if m.typed && len(m.typ.name) > 255 {
			t.Fatalf("name of %d bytes", len(m.typ.name))
		}
	})
}
