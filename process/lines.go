package process

import (
	"bytes"
	"log/slog"
	"sync"
	"sync/atomic"
)

// maxLine is the longest line of a child's stderr logged as one record.
const maxLine = 64 << 10

// lineLog is the child's stderr with Cmd.LogStderr: an io.Writer, fed by
// exec's copying goroutine, that logs each line.
type lineLog struct {
	log  *slog.Logger
	name string
	pid  atomic.Int64 // set once the child is started

	mu  sync.Mutex
	buf []byte // a line not ended yet
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			for len(l.buf) >= maxLine {
				l.emit(l.buf[:maxLine])
				l.buf = append(l.buf[:0], l.buf[maxLine:]...)
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.emit(l.buf)
		l.buf = l.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush logs what is left of an unfinished last line.
func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

// emit logs one line. The caller holds l.mu.
func (l *lineLog) emit(line []byte) {
	l.log.Info("process: child stderr", "name", l.name, "pid", l.pid.Load(), "line", string(bytes.TrimSuffix(line, []byte("\r"))))
}
