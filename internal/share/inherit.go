package share

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The child side. At program start (init) every descriptor listed in
// EnvVar is marked close-on-exec, so that a child of this process does not
// inherit it by accident. Each descriptor is wrapped in an *os.File at most
// once, when its object is first inherited, and each name yields one object
// per process: wrapping a descriptor twice lets the first wrapper collected
// close it under the second.

var registry struct {
	mu      sync.Mutex
	entries []Entry
	err     error            // from parsing EnvVar
	objects map[string]any   // name -> object built by Inherit
	failed  map[string]error // name -> why its open failed (its files are closed)
}

func init() {
	registry.entries, registry.err = Parse(os.Getenv(EnvVar))
	for _, e := range registry.entries {
		for _, fd := range e.FDs {
			if fdOpen(fd) {
				unix.CloseOnExec(fd)
			}
		}
	}
	registry.objects = make(map[string]any)
	registry.failed = make(map[string]error)
}

func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// Names returns the names this process inherited, in the order listed.
func Names() []string {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	names := make([]string, len(registry.entries))
	for i, e := range registry.entries {
		names[i] = e.Name
	}
	return names
}

// Lookup returns the entry inherited under name without taking it.
func Lookup(name string) (Entry, bool) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, e := range registry.entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Inherit returns the object inherited under name. The first call checks
// the kind and the descriptors, wraps each descriptor once in an *os.File
// and passes the files to open, whose result is cached: later calls return
// the same object without calling open. If open fails, it owns the files
// (and must close them); its error is returned, and every later call for
// the name returns ErrBadFD wrapping it: the descriptors are closed, and
// their numbers may already belong to other files, so they are never
// wrapped again.
func Inherit(name, kind string, open func(files []*os.File) (any, error)) (any, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if obj, ok := registry.objects[name]; ok {
		return obj, nil
	}
	if err := registry.failed[name]; err != nil {
		return nil, fmt.Errorf("%w: %q: an earlier Inherit of it failed and closed its descriptors: %w", ErrBadFD, name, err)
	}
	if registry.err != nil {
		return nil, registry.err
	}
	var entry *Entry
	for i := range registry.entries {
		if registry.entries[i].Name == name {
			entry = &registry.entries[i]
		}
	}
	if entry == nil {
		if len(registry.entries) == 0 {
			return nil, fmt.Errorf("%w %q: this process inherited nothing (%s is not set)", ErrNotInherited, name, EnvVar)
		}
		names := make([]string, len(registry.entries))
		for i, e := range registry.entries {
			names[i] = e.Name
		}
		return nil, fmt.Errorf("%w %q (inherited: %s)", ErrNotInherited, name, strings.Join(names, ", "))
	}
	if entry.Kind != kind {
		return nil, fmt.Errorf("%w: %q is a %s, not a %s", ErrWrongKind, name, entry.Kind, kind)
	}
	for _, fd := range entry.FDs {
		if !fdOpen(fd) {
			return nil, fmt.Errorf("%w: %q: descriptor %d (was it passed in exec.Cmd.ExtraFiles?)", ErrBadFD, name, fd)
		}
	}
	files := make([]*os.File, len(entry.FDs))
	for i, fd := range entry.FDs {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("mproc:%s:%d", name, i))
	}
	obj, err := open(files)
	if err != nil {
		registry.failed[name] = err
		return nil, fmt.Errorf("mproc: inherit %q: %w", name, err)
	}
	registry.objects[name] = obj
	return obj, nil
}

// InheritAs is Inherit for a caller that knows the type of its object, such
// as a generic queue's Inherit[T]: open builds a T, and a name inherited
// earlier as another type (the same queue asked for with another item type)
// is an error rather than a failed type assertion.
func InheritAs[T any](name, kind string, open func(files []*os.File) (T, error)) (T, error) {
	var zero T
	obj, err := Inherit(name, kind, func(files []*os.File) (any, error) { return open(files) })
	if err != nil {
		return zero, err
	}
	v, ok := obj.(T)
	if !ok {
		return zero, fmt.Errorf("%w: %q was already inherited as a %T, not a %T", ErrWrongKind, name, obj, zero)
	}
	return v, nil
}
