// Command log-lock shows a lock.Lock keeping log lines whole: 8 worker
// processes append lines to one log file, each line in several writes (a
// prefix, then word by word, as a logger that formats piece by piece
// does). Under the shared lock a line is never cut by another worker's
// writes; the parent then reads the log back and checks every line.
//
//	go run ./examples/log-lock          # 0 torn lines, every time
//	go run ./examples/log-lock -nolock  # writes interleave: torn lines
//
// Each worker is this same program re-executed (os/exec) with the log's
// path in its environment; it inherits the lock the parent shared with it
// (Lock.Share, lock.Inherit).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mproc-go/mproc/lock"
)

const (
	workers = 8
	lines   = 25
	message = "the quick brown fox jumps over the lazy dog"
	// workerEnv, in a worker's environment, holds the log file's path.
	workerEnv = "LOG_LOCK_FILE"
)

// lineRE is a whole line; a torn one does not match.
var lineRE = regexp.MustCompile(`^worker (\d) line (\d\d): ` + message + `$`)

func main() {
	nolock := flag.Bool("nolock", false, "write the lines without taking the lock")
	flag.Parse()
	log.SetFlags(0)
	if path := os.Getenv(workerEnv); path != "" {
		if err := worker(path, *nolock); err != nil {
			log.Fatalf("worker %d: %v", os.Getpid(), err)
		}
		return
	}
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
	cmds, err := startWorkers(l, path)
	l.Unlock()
	for _, cmd := range cmds {
		if werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("a worker failed: %v", werr)
		}
	}
	if err != nil {
		return err
	}
	return check(path, nolock)
}

// startWorkers starts worker processes 0..workers-1, each inheriting l
// under the name "log". On error it kills the ones it started.
func startWorkers(l *lock.Lock, path string) ([]*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cmds []*exec.Cmd
	for w := range workers {
		// Same flags as the parent, then the worker's number.
		cmd := exec.Command(self, slices.Concat(os.Args[1:], []string{strconv.Itoa(w)})...)
		cmd.Env = append(os.Environ(), workerEnv+"="+path)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		err := l.Share(cmd, "log") // adds the lock to cmd.ExtraFiles and cmd.Env
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			for _, c := range cmds {
				c.Process.Kill()
				c.Wait()
			}
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// worker appends its lines to the log, each in several writes.
func worker(path string, nolock bool) error {
	id := flag.Arg(0)
	l, err := lock.Inherit("log")
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	l.Lock() // wait at the starting gate
	l.Unlock()

	for i := range lines {
		if !nolock {
			l.Lock()
		}
		err := writeLine(f, fmt.Sprintf("worker %s line %02d:", id, i))
		if !nolock {
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
