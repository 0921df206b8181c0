package joinable_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mproc-go/mproc/internal/testproc"
	"github.com/mproc-go/mproc/joinable"
)

// item is the small struct of the queue benchmarks (Python's is the same
// dict: see bench/python).
type item struct {
	ID    int      `msgpack:"id"`
	Kind  string   `msgpack:"kind"`
	Score float64  `msgpack:"score"`
	Tags  []string `msgpack:"tags"`
	OK    bool     `msgpack:"ok"`
}

const benchName = "bench"

func init() {
	// struct-consume: Get and TaskDone until an item with ID -1; check
	// each item whole.
	testproc.Register("struct-consume", func() {
		jq, err := joinable.Inherit[item](benchName)
		testproc.Check(err, "inherit")
		ctx := context.Background()
		for {
			v, err := jq.Get(ctx)
			testproc.Check(err, "get")
			testproc.Check(jq.TaskDone(), "task done")
			if v.ID < 0 {
				break
			}
			if v.Kind != "sample" || len(v.Tags) != 2 || !v.OK {
				testproc.Fatalf("damaged item %+v", v)
			}
		}
		testproc.Check(jq.Close(), "close")
	})
}

// putJoin puts n small structs to consumer processes, each of which
// TaskDones them, and Joins; it returns the time from the first Put to the
// end of Join. ready runs once the consumers are started.
func putJoin(tb testing.TB, consumers, n int, ready func()) time.Duration {
	jq, err := joinable.New[item](0)
	if err != nil {
		tb.Fatal(err)
	}
	defer jq.Close()
	for range consumers {
		cmd := testproc.Command(tb, "struct-consume")
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
		if err := jq.Share(cmd, benchName); err != nil {
			tb.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		defer func() {
			if err := testproc.WaitTimeout(cmd, 30*time.Second); err != nil {
				tb.Error(err)
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v := item{Kind: "sample", Score: 3.25, Tags: []string{"alpha", "beta"}, OK: true}
	ready()
	start := time.Now()
	for i := range n {
		v.ID = i
		if err := jq.Put(ctx, v); err != nil {
			tb.Fatal(err)
		}
	}
	if err := jq.Join(ctx); err != nil {
		tb.Fatal(err)
	}
	elapsed := time.Since(start)
	for range consumers {
		if err := jq.Put(ctx, item{ID: -1}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := jq.Join(ctx); err != nil {
		tb.Fatal(err)
	}
	return elapsed
}

func TestStructItems(t *testing.T) {
	testproc.CheckFDs(t)
	d := putJoin(t, 2, 5000, func() {})
	t.Logf("5000 items, 2 consumers: %v", d)
}

// BenchmarkJoinable: this process puts b.N small structs and Joins; child
// processes Get and TaskDone each. items/s is the end-to-end rate, to
// compare with Python's JoinableQueue in bench/ (go run ./bench queue).
func BenchmarkJoinable(b *testing.B) {
	for _, consumers := range []int{1, 2} {
		b.Run("1to"+strconv.Itoa(consumers), func(b *testing.B) {
			d := putJoin(b, consumers, b.N, b.ResetTimer)
			b.ReportMetric(float64(b.N)/d.Seconds(), "items/s")
		})
	}
}
