// Command log-lock shows a lock.Lock keeping log lines whole: 8 worker
// processes append lines to one log file, each line in several writes (a
// prefix, then word by word, as a logger that formats piece by piece
// does). Under the shared lock a line is never cut by another worker's
// writes; the parent then reads the log back and checks every line.
//
//	go run ./examples/log-lock          # 0 torn lines, every time
//	go run ./examples/log-lock -nolock  # writes interleave: torn lines
//
// Each worker is a function of this program run in a child process
// (process.RegisterFunc; the child is this program executed again), given
// the log's path and its number as a typed argument; it inherits the lock
// the parent shared with it (Cmd.Share, lock.Inherit).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mproc-go/mproc/lock"
	"github.com/mproc-go/mproc/process"
)

const (
	workers = 8
	lines   = 25
	message = "the quick brown fox jumps over the lazy dog"
)

// job is a worker's argument.
type job struct {
	ID     int
	Path   string
	NoLock bool
}

// logWorker runs in each worker process: it appends its lines to the log.
var logWorker = process.RegisterFunc("log-worker", func(ctx context.Context, j job) (struct{}, error) {
	return struct{}{}, worker(j)
})

// lineRE is a whole line; a torn one does not match.
var lineRE = regexp.MustCompile(`^worker (\d) line (\d\d): ` + message + `$`)

func main() {
	process.Main() // in a worker: runs logWorker, then exits
	nolock := flag.Bool("nolock", false, "write the lines without taking the lock")
	flag.Parse()
	log.SetFlags(0)
	if err := parent(*nolock); err != nil {
		log.Fatal(err)
	}
}

func parent(nolock bool) error {
	dir, err := os.MkdirTemp("", "log-lock")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.log")
	l, err := lock.New()
	if err != nil {
		return err
	}
	defer l.Close()

	how := "each line under one shared lock.Lock"
	if nolock {
		how = "with no lock (-nolock)"
	}
	writes := 1 + len(strings.Fields(message))
	fmt.Printf("%d processes append %d lines each to one log file, %d writes per line, %s\n",
		workers, lines, writes, how)

	// The lock doubles as a starting gate: the workers wait for it until
	// they have all started, so that they really write at the same time.
	l.Lock()
	cmds, err := startWorkers(l, path, nolock)
	l.Unlock()
	for _, cmd := range cmds {
		if _, werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("a worker failed: %v", werr)
		}
	}
	if err != nil {
		return err
	}
	return check(path, nolock)
}

// startWorkers starts worker processes 0..workers-1, each inheriting l
// under the name "log". On error it stops the ones it started.
func startWorkers(l *lock.Lock, path string, nolock bool) ([]*process.TypedCmd[struct{}], error) {
	var cmds []*process.TypedCmd[struct{}]
	for w := range workers {
		cmd := logWorker.Command(job{ID: w, Path: path, NoLock: nolock})
		err := cmd.Share(l, "log")
		if err == nil {
			err = cmd.Start(context.Background())
		}
		if err != nil {
			for _, c := range cmds {
				c.Kill()
				c.Wait()
			}
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// worker appends its lines to the log, each in several writes.
func worker(j job) error {
	l, err := lock.Inherit("log")
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := os.OpenFile(j.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	l.Lock() // wait at the starting gate
	//lint:ignore SA2001 waiting for the lock is the point: the parent holds it until every worker is ready
	l.Unlock()

	for i := range lines {
		if !j.NoLock {
			l.Lock()
		}
		err := writeLine(f, fmt.Sprintf("worker %d line %02d:", j.ID, i))
		if !j.NoLock {
			l.Unlock()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeLine writes prefix and the message word by word, pausing between
// writes as a slow logger would.
func writeLine(f *os.File, prefix string) error {
	if _, err := f.WriteString(prefix); err != nil {
		return err
	}
	words := strings.Fields(message)
	for i, word := range words {
		time.Sleep(50 * time.Microsecond)
		end := ""
		if i == len(words)-1 {
			end = "\n"
		}
		if _, err := f.WriteString(" " + word + end); err != nil {
			return err
		}
	}
	return nil
}

// check reads the log back: every line whole, each worker's lines all
// there and in order.
func check(path string, nolock bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	next := make([]int, workers) // next line number expected from each worker
	total, torn, misordered := 0, 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		total++
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			if torn++; torn <= 3 {
				fmt.Printf("torn line %d: %q\n", total, sc.Text())
			}
			continue
		}
		w, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		if w >= workers || n != next[w] {
			misordered++ // or a line before it was torn
		}
		if w < workers {
			next[w] = n + 1
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Printf("read back %d lines: %d whole, %d torn\n", total, total-torn, torn)
	switch {
	case torn == 0 && misordered == 0 && total == workers*lines:
		fmt.Printf("every line whole: each of the %d workers wrote its %d lines in order, none cut by another\n", workers, lines)
	case nolock:
		fmt.Println("without the lock, one worker's writes landed in the middle of another's line")
	default:
		return fmt.Errorf("under the lock: %d torn lines, %d out of order, %d in all (%d expected)",
			torn, misordered, total, workers*lines)
	}
	return nil
}
