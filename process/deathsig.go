package process

import (
	"runtime"
	"sync"
)

// Pdeathsig (prctl PR_SET_PDEATHSIG) fires when the *thread* that forked
// the child dies, not when the parent process does (go.dev/issue/27505). A
// Go program's goroutines move between threads, and the runtime ends a
// thread when a goroutine that locked it exits still locked. So the
// children that must die with this process are forked from one goroutine
// locked to its thread (runtime.LockOSThread), which keeps the thread, and
// keeps it locked, while any of those children lives: no other goroutine
// can run there, so none can end the thread and take the children with it.
// When the last of them has been reaped the goroutine unlocks and ends.
var starter struct {
	mu   sync.Mutex
	reqs chan func() // nil when the goroutine is not running
	live int         // children started there and not yet reaped
}

// startOnLockedThread runs start (an exec.Cmd's Start) on the starter
// thread. On success the caller must call release once the child has been
// reaped.
func startOnLockedThread(start func() error) (release func(), err error) {
	starter.mu.Lock()
	if starter.reqs == nil {
		starter.reqs = make(chan func())
		go runStarter(starter.reqs)
	}
	starter.live++
	reqs := starter.reqs
	starter.mu.Unlock()

	errc := make(chan error, 1)
	reqs <- func() { errc <- start() }
	if err := <-errc; err != nil {
		releaseStarter()
		return nil, err
	}
	return sync.OnceFunc(releaseStarter), nil
}

func releaseStarter() {
	starter.mu.Lock()
	defer starter.mu.Unlock()
	starter.live--
	if starter.live == 0 {
		close(starter.reqs)
		starter.reqs = nil
	}
}

func runStarter(reqs <-chan func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for start := range reqs {
		start()
	}
}
