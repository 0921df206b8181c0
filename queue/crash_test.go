package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/queue"
	"github.com/mproc-go/mproc/simplequeue"
)

// The crash tests check the promise of the package documentation: a
// process killed with SIGKILL at any moment loses at most the items it
// held; every other process goes on, sees no corrupted item and does not
// hang.
//
// Consumers report each item they get, before getting the next, on a
// simplequeue, whose Put is synchronous: when a consumer is killed, what it
// held and did not report is the item it was handling and the rest of the
// packet that item came in (a consumer takes a whole packet from the
// socket and keeps the items it has not yet returned). A packet holds the
// consecutive items of one producer, so the items a consumer's death costs
// are one run of consecutive sequence numbers of one producer, at most one
// packet's worth.

// packetSize is the most data a queue packet carries (64 KiB, see the
// package documentation); an item larger than that travels alone.
const packetSize = 64 << 10

// report is what a consumer tells the test of each item it got.
type report struct {
	C   int    `msgpack:"c"` // consumer
	P   int    `msgpack:"p"`
	I   int    `msgpack:"i"` // stop when the consumer got its stop item
	Err string `msgpack:"e"` // why the item is not intact; empty if it is
}

func init() {
	// report C: get items from "q" and report each on "r" before the next
	// Get, until the stop item; then report the stop and Close both.
	testproc.Register("report", func() {
		q := inherit()
		r, err := simplequeue.Inherit[report]("r")
		testproc.Check(err, "inherit r")
		c := intArg(0)
		ctx, cancel := helperCtx()
		defer cancel()
		for {
			v, err := q.Get(ctx)
			testproc.Check(err, "get")
			rep := report{C: c, P: v.P, I: v.I}
			if err := v.Check(); err != nil {
				rep.Err = err.Error()
			}
			testproc.Check(r.Put(ctx, rep), "report")
			if v.I == stop {
				break
			}
		}
		testproc.Check(q.Close(), "close q")
		testproc.Check(r.Close(), "close r")
	})
	// stream P N SIZE [pause]: put items P/0..P/N-1 with bodies of SIZE
	// bytes, printing "put K" after every N/20 items, then Close and print
	// "closed". With pause, wait for a line on stdin after the first item.
	testproc.Register("stream", func() {
		q := inherit()
		p, n, size := intArg(0), intArg(1), intArg(2)
		ctx, cancel := helperCtx()
		defer cancel()
		pause := len(testproc.Args()) > 3 && testproc.Args()[3] == "pause"
		step := max(1, n/20)
		for i := range n {
			testproc.Check(q.Put(ctx, newItem(p, i, size)), "put")
			if (i+1)%step == 0 {
				fmt.Printf("put %d\n", i+1)
			}
			if pause && i == 0 {
				_, err := bufio.NewReader(os.Stdin).ReadString('\n')
				testproc.Check(err, "wait for the test")
			}
		}
		testproc.Check(q.Close(), "close")
		fmt.Println("closed")
	})
}

// crash describes a run: producers each put n items of size bytes
// through a queue of maxsize to 3 consumer processes; a consumer is killed
// (and replaced) when the items delivered reach each of killAt (fractions
// of all items), after a random delay up to jitter; producer killP, if
// not negative, is killed when it has put killPAt of its items.
type crash struct {
	maxsize      int
	producers, n int
	size         int
	killAt       []float64
	jitter       time.Duration
	killP        int
	killPAt      float64
}

const consumers = 3

// rig is the test's side of a crash run: the queue under test, the
// consumers and the reports they send.
type rig struct {
	t       *testing.T
	q       *queue.Queue[item]
	r       *simplequeue.Queue[report]
	live    map[int]*exec.Cmd // running consumers by id
	nextC   int
	reports chan report
	readErr chan error
	quit    chan struct{} // closed at cleanup: forwarding goroutines end
}

func newRig(t *testing.T, ctx context.Context, maxsize int) *rig {
	rg := &rig{
		t: t, q: newQueue[item](t, maxsize), live: map[int]*exec.Cmd{},
		reports: make(chan report, 256), readErr: make(chan error, 1), quit: make(chan struct{}),
	}
	var err error
	rg.r, err = simplequeue.New[report]()
	require.NoError(t, err)
	t.Cleanup(func() { rg.r.Close() })
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			rep, err := rg.r.Get(rctx)
			if err != nil {
				rg.readErr <- err
				return
			}
			select {
			case rg.reports <- rep:
			case <-rg.quit:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(rg.quit)
		rcancel()
		<-done
	})
	return rg
}

// startConsumer starts a "report" helper and returns its id.
func (rg *rig) startConsumer() int {
	rg.t.Helper()
	cmd := testproc.Command(rg.t, "report", strconv.Itoa(rg.nextC))
	require.NoError(rg.t, rg.q.Share(cmd, qname))
	require.NoError(rg.t, rg.r.Share(cmd, "r"))
	require.NoError(rg.t, cmd.Start())
	rg.live[rg.nextC] = cmd
	rg.nextC++
	return rg.nextC - 1
}

// kill kills consumer c and reaps it.
func (rg *rig) kill(c int) {
	rg.t.Helper()
	killed(rg.t, rg.live[c], fmt.Sprintf("consumer %d", c))
	delete(rg.live, c)
}

// killed kills cmd's process and checks that it died of it.
func killed(t *testing.T, cmd *exec.Cmd, what string) {
	t.Helper()
	require.NoError(t, cmd.Process.Kill(), "kill %s", what)
	err := cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%s died of the kill, not %v", what, err)
}

// stopped handles a consumer's report that it got its stop item: it must
// then exit cleanly.
func (rg *rig) stopped(rep report) {
	rg.t.Helper()
	cmd := rg.live[rep.C]
	require.NotNil(rg.t, cmd, "stop of consumer %d", rep.C)
	require.NoError(rg.t, testproc.WaitTimeout(cmd, 30*time.Second), "consumer %d exits after its stop", rep.C)
	delete(rg.live, rep.C)
}

// sendStops puts one stop item per running consumer and returns how many.
func (rg *rig) sendStops(ctx context.Context) int {
	rg.t.Helper()
	for range rg.live {
		require.NoError(rg.t, rg.q.Put(ctx, item{I: stop}))
	}
	return len(rg.live)
}

// seen records the items delivered, once each, intact.
type seen [][]bool

func newSeen(producers, n int) seen {
	s := make(seen, producers)
	for p := range s {
		s[p] = make([]bool, n)
	}
	return s
}

func (s seen) add(t *testing.T, rep report) {
	t.Helper()
	require.Empty(t, rep.Err, "consumer %d got a corrupted item", rep.C)
	require.True(t, rep.P >= 0 && rep.P < len(s) && rep.I >= 0 && rep.I < len(s[rep.P]), "item %d/%d", rep.P, rep.I)
	require.False(t, s[rep.P][rep.I], "item %d/%d delivered twice", rep.P, rep.I)
	s[rep.P][rep.I] = true
}

// lostRuns returns the runs of consecutive items of producer p that were
// not delivered, and how many items they hold.
func (s seen) lostRuns(p int) (runs []string, lost int) {
	got := s[p]
	for i := 0; i < len(got); i++ {
		if got[i] {
			continue
		}
		j := i
		for j < len(got) && !got[j] {
			j++
		}
		runs = append(runs, fmt.Sprintf("%d/%d..%d", p, i, j-1))
		lost += j - i
		i = j
	}
	return runs, lost
}

func (cr crash) run(t *testing.T) {
	testproc.CheckFDs(t)
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	ctx := ctxT(t, 90*time.Second)
	rg := newRig(t, ctx, cr.maxsize)
	for range consumers {
		rg.startConsumer()
	}

	// Producers, their output lines forwarded with their index.
	type line struct {
		p int
		s string // "" when the output ended
	}
	lines := make(chan line, 64)
	prods := make([]*child, cr.producers)
	for p := range prods {
		prods[p] = start(t, "stream", []sharer{rg.q}, strconv.Itoa(p), strconv.Itoa(cr.n), strconv.Itoa(cr.size))
		go func(c *child) {
			for l := range c.Lines {
				select {
				case lines <- line{p, l}:
				case <-rg.quit:
					return
				}
			}
			select {
			case lines <- line{p, ""}:
			case <-rg.quit:
			}
		}(prods[p])
	}

	total := cr.producers * cr.n
	got := newSeen(cr.producers, cr.n)
	delivered, kills := 0, 0
	killPDone := false
	producing := cr.producers
	stopsSent, stopsSeen := 0, 0
	jitter := func() {
		if cr.jitter > 0 {
			time.Sleep(time.Duration(rng.Int64N(int64(cr.jitter))))
		}
	}
	for producing > 0 || stopsSent == 0 || stopsSeen < stopsSent {
		if producing == 0 && stopsSent == 0 && kills == len(cr.killAt) {
			stopsSent = rg.sendStops(ctx) // every producer has ended
		}
		select {
		case rep := <-rg.reports:
			if rep.I == stop {
				stopsSeen++
				rg.stopped(rep)
				continue
			}
			got.add(t, rep)
			delivered++
			if kills < len(cr.killAt) && float64(delivered) >= cr.killAt[kills]*float64(total) {
				ids := slices.Sorted(maps.Keys(rg.live))
				jitter()
				rg.kill(ids[rng.IntN(len(ids))])
				t.Logf("killed a consumer after %d items delivered", delivered)
				kills++
				rg.startConsumer()
			}
		case l := <-lines:
			switch {
			case l.s == "":
				if l.p == cr.killP {
					require.True(t, killPDone, "producer %d ended before it was killed", l.p)
				} else {
					require.NoError(t, testproc.WaitTimeout(prods[l.p].Cmd, 30*time.Second), "producer %d", l.p)
				}
				producing--
			case l.p == cr.killP && !killPDone:
				var k int
				if _, err := fmt.Sscanf(l.s, "put %d", &k); err == nil && float64(k) >= cr.killPAt*float64(cr.n) {
					killed(t, prods[l.p].Cmd, fmt.Sprintf("producer %d", l.p))
					t.Logf("killed producer %d after it put %d items, %d delivered", l.p, k, delivered)
					killPDone = true
				}
			}
		case err := <-rg.readErr:
			require.NoError(t, err, "reading the reports")
		case <-ctx.Done():
			require.FailNow(t, "the stream did not end", "%d of %d items delivered, %d producers running, %d/%d stops seen", delivered, total, producing, stopsSeen, stopsSent)
		}
	}
	require.Equal(t, len(cr.killAt), kills, "consumer kills")
	require.Empty(t, rg.live, "every consumer got its stop")

	// What was lost: per producer, the runs of consecutive items missing.
	perPacket := max(1, packetSize/frameLen(t, cr.size))
	lost := 0
	var runs []string
	for p := range cr.producers {
		if p == cr.killP {
			// A killed producer's items arrive in order, then stop: what
			// it still buffered died with it.
			k := slices.Index(got[p], false)
			require.True(t, k >= 0, "the killed producer's last items are lost")
			require.False(t, slices.Contains(got[p][k:], true), "producer %d's items after the first lost one", p)
			t.Logf("producer %d: %d items delivered, %d lost with it", p, k, cr.n-k)
			continue
		}
		r, l := got.lostRuns(p)
		runs, lost = append(runs, r...), lost+l
	}
	t.Logf("%d items delivered, %d lost by %d consumer kills (%s), packets of at most %d items",
		delivered, lost, kills, strings.Join(runs, " "), perPacket)
	assert.LessOrEqual(t, len(runs), kills, "each killed consumer loses one run of consecutive items")
	assert.LessOrEqual(t, lost, kills*perPacket, "each killed consumer loses at most one packet's items")
	if cr.maxsize > 0 {
		if cr.killP < 0 {
			// An item holds its slot until a Get returns it: a consumer
			// killed between a Get and its report gave that one back.
			qs := rg.q.Qsize()
			assert.True(t, qs <= lost && qs >= lost-kills, "the lost items keep their slots, but for those a Get returned: Qsize %d, %d lost", qs, lost)
		} else {
			t.Logf("the killed producer held %d slots", rg.q.Qsize())
		}
	}
	_, err := rg.q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty, "the survivors got everything in the queue")
}

// frameLen returns the bytes an item with a body of size bytes takes in a
// packet, at least.
func frameLen(t *testing.T, size int) int {
	b, err := msgpack.Marshal(newItem(0, 0, size))
	require.NoError(t, err)
	return 4 + len(b)
}

// TestCrashConsumers: a stream of 100k small items from 2 producers to 3
// consumers, of which one is killed at about 10%, 40% and 70% of the
// stream (and replaced).
func TestCrashConsumers(t *testing.T) {
	n := 50000
	if testing.Short() {
		n = 10000
	}
	killAt := func() []float64 {
		return []float64{0.1 + rand.Float64()*0.05, 0.4 + rand.Float64()*0.05, 0.7 + rand.Float64()*0.05}
	}
	t.Run("unbounded", func(t *testing.T) {
		crash{producers: 2, n: n, size: 8, killAt: killAt(), killP: -1}.run(t)
	})
	t.Run("bounded", func(t *testing.T) {
		crash{maxsize: 1000, producers: 2, n: n / 5, size: 8, killAt: killAt(), killP: -1}.run(t)
	})
}

// TestCrashProducer: one of 2 producers is killed during a stream of 100k
// small items: the items it put arrive in order up to the ones it still
// buffered; the other producer's all arrive.
func TestCrashProducer(t *testing.T) {
	n := 50000
	if testing.Short() {
		n = 10000
	}
	for _, maxsize := range []int{0, 1000} {
		t.Run(fmt.Sprintf("maxsize=%d", maxsize), func(t *testing.T) {
			crash{maxsize: maxsize, producers: 2, n: n, size: 8, killP: 0, killPAt: 0.2 + rand.Float64()*0.4}.run(t)
		})
	}
}

// TestBigItems: 8 MiB items, which travel through a pipe of their own,
// arrive intact at 3 racing consumers; killing one while it reads an item
// loses that item alone.
func TestBigItems(t *testing.T) {
	for _, maxsize := range []int{0, 4} {
		t.Run(fmt.Sprintf("maxsize=%d", maxsize), func(t *testing.T) {
			crash{maxsize: maxsize, producers: 2, n: 4, size: 8 << 20, killAt: []float64{0.25}, jitter: 30 * time.Millisecond, killP: -1}.run(t)
		})
	}
}

// TestBigItemKilledMidTransfer: a consumer killed while it reads the body
// of an 8 MiB item (its producer is stopped with SIGSTOP mid-body, so the
// moment is certain) loses that item alone: its producer goes on, and 3
// consumers then get the others intact.
func TestBigItemKilledMidTransfer(t *testing.T) {
	testproc.CheckFDs(t)
	ctx := ctxT(t, 60*time.Second)
	rg := newRig(t, ctx, 0)
	const n = 6
	p := start(t, "stream", []sharer{rg.q}, "0", strconv.Itoa(n), strconv.Itoa(8<<20), "pause")
	require.Equal(t, "put 1", p.Line(t))
	// The first item's stub is in the socket, at most a pipe's worth of its
	// body in its pipe, and the rest waits in the producer, which we stop.
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGSTOP))
	c := rg.startConsumer()
	for !rg.q.Empty() { // the consumer takes the stub, then reads the body
		select {
		case <-ctx.Done():
			require.FailNow(t, "the consumer did not take the item")
		case <-time.After(time.Millisecond):
		}
	}
	time.Sleep(50 * time.Millisecond) // let it read what it can of the body
	rg.kill(c)
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGCONT))
	_, err := p.Stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	for range consumers {
		rg.startConsumer()
	}

	got := newSeen(1, n)
	stopsSent, stopsSeen := 0, 0
	for producing := true; producing || stopsSeen < stopsSent; {
		select {
		case l := <-p.Lines:
			if l == "closed" {
				require.NoError(t, testproc.WaitTimeout(p.Cmd, 30*time.Second), "the producer")
				stopsSent = rg.sendStops(ctx)
				producing = false
			}
		case rep := <-rg.reports:
			if rep.I == stop {
				stopsSeen++
				rg.stopped(rep)
				continue
			}
			got.add(t, rep)
		case err := <-rg.readErr:
			require.NoError(t, err, "reading the reports")
		case <-ctx.Done():
			require.FailNow(t, "the stream did not end")
		}
	}
	runs, lost := got.lostRuns(0)
	assert.Equal(t, []string{"0/0..0"}, runs, "the item being read is lost, and it alone")
	assert.Equal(t, 1, lost)
	_, err = rg.q.TryGet()
	assert.ErrorIs(t, err, queue.ErrEmpty)
}
