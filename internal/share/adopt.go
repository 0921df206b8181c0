package share

import (
	"errors"
	"fmt"
	"slices"
)

// ErrNameTaken is returned by [Adopt] for a name this process already has.
var ErrNameTaken = errors.New("mproc: this process already has an object by that name")

// Adopt registers descriptors that another process sent to this one (over a
// unix socket, SCM_RIGHTS) as the object name of kind, so that [Inherit]
// builds it exactly as it builds an inherited one. The descriptors must be
// close-on-exec and this process's alone; on error the caller keeps (and
// closes) them.
//
// The kernel gave these descriptor numbers just now, so an entry that lists
// one of them describes descriptors closed since: it is removed, as is an
// entry by the same name none of whose descriptors is open any more (its
// object was closed).
func Adopt(name, kind string, fds []int) error {
	if !ValidName(name) {
		return fmt.Errorf("%w %q", ErrBadName, name)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.entries = slices.DeleteFunc(registry.entries, func(e Entry) bool {
		stale := slices.ContainsFunc(e.FDs, func(fd int) bool { return slices.Contains(fds, fd) }) ||
			e.Name == name && !slices.ContainsFunc(e.FDs, fdOpen)
		if stale {
			delete(registry.objects, e.Name)
		}
		return stale
	})
	for _, e := range registry.entries {
		if e.Name == name {
			return fmt.Errorf("%w: %q (a %s)", ErrNameTaken, name, e.Kind)
		}
	}
	registry.entries = append(registry.entries, Entry{Name: name, Kind: kind, FDs: slices.Clone(fds)})
	return nil
}
