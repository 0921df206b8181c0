package queue_test

import (
	"context"
	"errors"
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
	"github.com/mproc-go/mproc/joinable"
	"github.com/mproc-go/mproc/queue"
	"github.com/mproc-go/mproc/simplequeue"
)

// The crash matrix checks, for every queue kind of the module (the
// synchronous simplequeue, the buffered queue, the bounded queue and the
// joinable queue), the promise of their package documentation: a process
// killed with SIGKILL at any moment loses at most the items it held; every
// other process goes on, sees no corrupted item and does not hang.
//
// Consumers report each item they get, before getting the next, on a
// simplequeue, whose Put is synchronous: when a consumer is killed, what it
// held and did not report is the item it was handling and the rest of what
// its last receive took from the socket. For the buffered kinds that is
// the rest of one packet, which holds consecutive items of one producer,
// so one run of consecutive items of one producer, at most one packet's
// worth; a synchronous queue sends one item per packet and its consumers
// take up to 8 packets per receive, so at most 8 items.

// packetSize is the most data a queue packet carries (64 KiB, see the
// package documentation); an item larger than that travels alone.
const packetSize = 64 << 10

// syncRecvBatch is the most one-item packets a consumer of a synchronous
// queue takes in one receive (see simplequeue's documentation).
const syncRecvBatch = 8

// crashQueue is what the matrix needs of a queue, in the test and in its
// helpers: every kind has it.
type crashQueue interface {
	Put(ctx context.Context, v item) error
	Get(ctx context.Context) (item, error)
	Empty() bool
	Close() error
	Share(cmd *exec.Cmd, name string) error
}

// queueKind is one column of the matrix.
type queueKind struct {
	name    string
	sync    bool // Put is synchronous: one item per packet
	maxsize int  // for a bounded kind; 0: unbounded
}

var crashKinds = []queueKind{
	{name: "simplequeue", sync: true},
	{name: "queue"},
	{name: "bounded", maxsize: 1000},
	{name: "joinable"},
}

// create makes a queue of kind k in the test, closed at cleanup; maxsize
// overrides k's for a bounded kind when positive.
func (k queueKind) create(t *testing.T, maxsize int) crashQueue {
	t.Helper()
	if k.maxsize == 0 {
		maxsize = 0
	} else if maxsize <= 0 {
		maxsize = k.maxsize
	}
	var q crashQueue
	var err error
	switch k.name {
	case "simplequeue":
		q, err = simplequeue.New[item]()
	case "queue", "bounded":
		q, err = queue.New[item](maxsize)
	case "joinable":
		q, err = joinable.New[item](maxsize)
	default:
		t.Fatalf("unknown queue kind %q", k.name)
	}
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	return q
}

// inheritKind opens, in a helper, the queue of the kind named kind shared
// as qname.
func inheritKind(kind string) crashQueue {
	var q crashQueue
	var err error
	switch kind {
	case "simplequeue":
		q, err = simplequeue.Inherit[item](qname)
	case "queue", "bounded":
		q, err = queue.Inherit[item](qname)
	case "joinable":
		q, err = joinable.Inherit[item](qname)
	default:
		testproc.Fatalf("unknown queue kind %q", kind)
	}
	testproc.Check(err, "inherit "+kind)
	return q
}

// closedErr reports whether err is the ErrClosed of any kind.
func closedErr(err error) bool {
	return errors.Is(err, simplequeue.ErrClosed) || errors.Is(err, queue.ErrClosed) || errors.Is(err, joinable.ErrClosed)
}

// report is what a consumer tells the test of each item it got.
type report struct {
	C   int    `msgpack:"c"` // consumer
	P   int    `msgpack:"p"`
	I   int    `msgpack:"i"` // stop when the consumer got its stop item
	Err string `msgpack:"e"` // why the item is not intact; empty if it is
}

func init() {
	// report KIND C: get items from "q" and report each on "r" before the
	// next Get (then mark it done, for a joinable queue), until the stop
	// item; then report the stop and Close both.
	testproc.Register("report", func() {
		q := inheritKind(testproc.Args()[0])
		r, err := simplequeue.Inherit[report]("r")
		testproc.Check(err, "inherit r")
		c := intArg(1)
		ctx, cancel := helperCtx()
		defer cancel()
		jq, _ := q.(*joinable.Queue[item])
		for {
			v, err := q.Get(ctx)
			testproc.Check(err, "get")
			rep := report{C: c, P: v.P, I: v.I}
			if err := v.Check(); err != nil {
				rep.Err = err.Error()
			}
			testproc.Check(r.Put(ctx, rep), "report")
			if jq != nil {
				testproc.Check(jq.TaskDone(), "task done")
			}
			if v.I == stop {
				break
			}
		}
		testproc.Check(q.Close(), "close q")
		testproc.Check(r.Close(), "close r")
	})
	// stream KIND P N SIZE: put items P/0..P/N-1 with bodies of SIZE bytes,
	// printing "put K" after every N/20 items, then Close and print
	// "closed". A Put that fails because the consumer that took a large
	// item died while reading it (a synchronous Put waits for the body to
	// be read) prints "lost I" and goes on.
	testproc.Register("stream", func() {
		q := inheritKind(testproc.Args()[0])
		p, n, size := intArg(1), intArg(2), intArg(3)
		ctx, cancel := helperCtx()
		defer cancel()
		step := max(1, n/20)
		for i := range n {
			err := q.Put(ctx, newItem(p, i, size))
			if err != nil && size > packetSize && ctx.Err() == nil && !closedErr(err) {
				fmt.Printf("lost %d: %v\n", i, err)
			} else {
				testproc.Check(err, "put")
			}
			if (i+1)%step == 0 {
				fmt.Printf("put %d\n", i+1)
			}
		}
		testproc.Check(q.Close(), "close")
		fmt.Println("closed")
	})
}

// crash describes a run: producers each put n items of size bytes
// through a queue of kind to 3 consumer processes; a consumer is killed
// (and replaced) when the items delivered reach each of killAt (fractions
// of all items), after a random delay up to jitter; producer killP, if
// not negative, is killed when it has put killPAt of its items.
type crash struct {
	kind         queueKind
	maxsize      int // for a bounded kind: overrides kind.maxsize
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
	kind    queueKind
	q       crashQueue
	r       *simplequeue.Queue[report]
	live    map[int]*exec.Cmd // running consumers by id
	nextC   int
	reports chan report
	readErr chan error
	quit    chan struct{} // closed at cleanup: forwarding goroutines end
}

func newRig(t *testing.T, ctx context.Context, kind queueKind, maxsize int) *rig {
	rg := &rig{
		t: t, kind: kind, q: kind.create(t, maxsize), live: map[int]*exec.Cmd{},
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
	cmd := testproc.Command(rg.t, "report", rg.kind.name, strconv.Itoa(rg.nextC))
	require.NoError(rg.t, rg.q.Share(cmd, qname))
	require.NoError(rg.t, rg.r.Share(cmd, "r"))
	require.NoError(rg.t, cmd.Start())
	rg.live[rg.nextC] = cmd
	rg.nextC++
	return rg.nextC - 1
}

// startProducer starts a "stream" helper.
func (rg *rig) startProducer(p, n, size int) *child {
	rg.t.Helper()
	return start(rg.t, "stream", []sharer{rg.q}, rg.kind.name, strconv.Itoa(p), strconv.Itoa(n), strconv.Itoa(size))
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

// waitFor polls cond every millisecond until it holds, failing at ctx's
// end.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			require.FailNow(t, "timed out waiting: "+what)
		case <-time.After(time.Millisecond):
		}
	}
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
	rg := newRig(t, ctx, cr.kind, cr.maxsize)
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
		prods[p] = rg.startProducer(p, cr.n, cr.size)
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
	putLost := map[id]bool{} // items whose Put reported them lost
	delivered, kills, killedAfter := 0, 0, 0
	producing := cr.producers
	stopsSent, stopsSeen := 0, 0
	jitter := func() {
		// A random moment, not a wait for anything: where the kill falls
		// is the point of the test.
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
			var k int
			switch {
			case l.s == "":
				if l.p == cr.killP {
					require.Positive(t, killedAfter, "producer %d ended before it was killed", l.p)
				} else {
					require.NoError(t, testproc.WaitTimeout(prods[l.p].Cmd, 30*time.Second), "producer %d", l.p)
				}
				producing--
			case l.p == cr.killP && killedAfter == 0:
				if _, err := fmt.Sscanf(l.s, "put %d", &k); err == nil && float64(k) >= cr.killPAt*float64(cr.n) {
					killed(t, prods[l.p].Cmd, fmt.Sprintf("producer %d", l.p))
					t.Logf("killed producer %d after %d of its Puts returned, %d delivered", l.p, k, delivered)
					killedAfter = k
				}
			default:
				if _, err := fmt.Sscanf(l.s, "lost %d", &k); err == nil {
					putLost[id{l.p, k}] = true
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
	lost := 0
	var runs []string
	for p := range cr.producers {
		if p == cr.killP {
			// A killed producer's items arrive in order, then stop: what
			// it still buffered died with it. A synchronous Put buffers
			// nothing: every item whose Put returned arrived.
			k := slices.Index(got[p], false)
			require.True(t, k >= 0, "the killed producer's last items are lost")
			require.False(t, slices.Contains(got[p][k:], true), "producer %d's items after the first lost one", p)
			if cr.kind.sync {
				require.GreaterOrEqual(t, k, killedAfter, "every item whose Put returned arrived")
			}
			t.Logf("producer %d: %d items delivered, %d lost with it", p, k, cr.n-k)
			continue
		}
		r, l := got.lostRuns(p)
		runs, lost = append(runs, r...), lost+l
	}
	for v := range putLost {
		assert.False(t, got[v.p][v.i], "item %d/%d, whose Put failed, was delivered", v.p, v.i)
	}
	if cr.kind.sync {
		t.Logf("%d items delivered, %d lost by %d consumer kills (%s)", delivered, lost, kills, strings.Join(runs, " "))
		assert.LessOrEqual(t, lost, syncRecvBatch*kills, "a killed consumer loses at most the items of its last receive")
	} else {
		perPacket := max(1, packetSize/frameLen(t, cr.size))
		t.Logf("%d items delivered, %d lost by %d consumer kills (%s), packets of at most %d items",
			delivered, lost, kills, strings.Join(runs, " "), perPacket)
		assert.LessOrEqual(t, len(runs), kills, "each killed consumer loses one run of consecutive items")
		assert.LessOrEqual(t, lost, kills*perPacket, "each killed consumer loses at most one packet's items")
	}
	if bq, ok := rg.q.(*queue.Queue[item]); ok && bq.Maxsize() > 0 {
		if cr.killP < 0 {
			// An item holds its slot until a Get returns it: a consumer
			// killed between a Get and its report gave that one back.
			qs := bq.Qsize()
			assert.True(t, qs <= lost && qs >= lost-kills, "the lost items keep their slots, but for those a Get returned: Qsize %d, %d lost", qs, lost)
		} else {
			t.Logf("the killed producer held %d slots", bq.Qsize())
		}
	}
	assert.True(t, drained(rg.q), "the survivors got everything in the queue")
}

// frameLen returns the bytes an item with a body of size bytes takes in a
// packet, at least.
func frameLen(t *testing.T, size int) int {
	b, err := msgpack.Marshal(newItem(0, 0, size))
	require.NoError(t, err)
	return 4 + len(b)
}

// items returns how many small items a stream of kind carries in the
// matrix: a synchronous queue sends one per system call, so fewer.
func (k queueKind) items(t *testing.T) int {
	n := 50000
	if k.sync || k.maxsize > 0 {
		n = 10000
	}
	if testing.Short() {
		n /= 5
	}
	return n
}

// TestCrashConsumers: a stream of small items from 2 producers to 3
// consumers, of which one is killed at about 10%, 40% and 70% of the
// stream (and replaced), over every queue kind.
func TestCrashConsumers(t *testing.T) {
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) {
			killAt := []float64{0.1 + rand.Float64()*0.05, 0.4 + rand.Float64()*0.05, 0.7 + rand.Float64()*0.05}
			crash{kind: k, producers: 2, n: k.items(t), size: 8, killAt: killAt, killP: -1}.run(t)
		})
	}
}

// TestCrashProducer: one of 2 producers is killed during a stream of small
// items, over every queue kind: the items it put arrive in order up to the
// ones it still buffered (a synchronous queue: up to the last whose Put
// returned, at least); the other producer's all arrive.
func TestCrashProducer(t *testing.T) {
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) {
			crash{kind: k, producers: 2, n: k.items(t), size: 8, killP: 0, killPAt: 0.2 + rand.Float64()*0.4}.run(t)
		})
	}
}

// TestCrashBigItems: 8 MiB items, which travel through a pipe of their
// own, arrive intact at 3 racing consumers, over every queue kind; killing
// one at a random moment loses at most the item it was reading.
func TestCrashBigItems(t *testing.T) {
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) {
			crash{kind: k, maxsize: 4, producers: 2, n: 4, size: 8 << 20, killAt: []float64{0.25}, jitter: 30 * time.Millisecond, killP: -1}.run(t)
		})
	}
}

// TestCrashBigItemMidBody: a consumer killed while it reads the body of an
// 8 MiB item loses that item alone, over every queue kind: its producer
// goes on, and 3 consumers then get the others intact. The producer is
// stopped with SIGSTOP once the item's stub is in the socket, so the body
// cannot be complete when the consumer has taken the stub: the kill falls
// mid-body for certain, without waiting for time to pass.
func TestCrashBigItemMidBody(t *testing.T) {
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			ctx := ctxT(t, 60*time.Second)
			rg := newRig(t, ctx, k, 0)
			const n = 6
			p := rg.startProducer(0, n, 8<<20)
			if k.sync {
				// Put waits for the body to be read: the stub is in the
				// socket when the queue is no longer empty.
				waitFor(t, ctx, "the first item's stub", func() bool { return !rg.q.Empty() })
			} else {
				// Put sent the stub itself (nothing was buffered before it).
				require.Equal(t, "put 1", p.Line(t))
			}
			require.NoError(t, p.Cmd.Process.Signal(syscall.SIGSTOP))
			c := rg.startConsumer()
			waitFor(t, ctx, "the consumer to take the stub", func() bool { return holdsForeignPipe(t, rg.live[c].Process.Pid) })
			rg.kill(c)
			require.NoError(t, p.Cmd.Process.Signal(syscall.SIGCONT))
			for range consumers {
				rg.startConsumer()
			}

			got := newSeen(1, n)
			putLost := false
			stopsSent, stopsSeen := 0, 0
			for producing := true; producing || stopsSeen < stopsSent; {
				select {
				case l := <-p.Lines:
					switch {
					case strings.HasPrefix(l, "lost 0: "):
						putLost = true
					case strings.HasPrefix(l, "lost"):
						require.FailNow(t, "the producer lost another item", l)
					case l == "closed":
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
			if k.sync {
				assert.True(t, putLost, "a synchronous Put reports the item its reader dropped")
			}
			assert.True(t, drained(rg.q), "the survivors got everything in the queue")
		})
	}
}

// holdsForeignPipe reports whether process pid has a pipe open that this
// process has not: the body pipe of a large item, which a consumer gets
// with the item's stub (every other pipe of a consumer, the token pipe of a
// bounded queue or its stderr, this process holds too).
func holdsForeignPipe(t *testing.T, pid int) bool {
	mine := pipes(t, "self")
	for l := range pipes(t, strconv.Itoa(pid)) {
		if !mine[l] {
			return true
		}
	}
	return false
}

// pipes returns the pipes process pid ("self": this one) has open, as
// their /proc links ("pipe:[inode]").
func pipes(t *testing.T, pid string) map[string]bool {
	dir := "/proc/" + pid + "/fd"
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	m := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			m[l] = true
		}
	}
	return m
}

// drained reports whether no item is left in q: TryGet finds none (for a
// bounded queue, Empty counts the slots that lost items keep).
func drained(q crashQueue) bool {
	switch q := q.(type) {
	case *queue.Queue[item]:
		_, err := q.TryGet()
		return errors.Is(err, queue.ErrEmpty)
	case *joinable.Queue[item]:
		_, err := q.TryGet()
		return errors.Is(err, joinable.ErrEmpty)
	}
	return q.Empty()
}
