// Package share is the inheritance protocol every mproc primitive uses to
// hand its file descriptors to a child process started with os/exec.
//
// The parent appends the files to [exec.Cmd.ExtraFiles] (entry i becomes file
// descriptor 3+i in the child) and records, in the child's environment, which
// descriptors belong to which named object:
//
//	MPROC_FDS=<entry>[;<entry>...]
//	<entry>  = <name>=<kind>:<fd>[,<fd>...]
//
// for example MPROC_FDS=results=conn:3;jobs=queue:4,5,6,7. Names are made of
// ASCII letters, digits, '_', '-' and '.'. The kind says which primitive
// the descriptors make up and in which order; a program in another language
// finds its descriptors by parsing the variable the same way.
package share

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// EnvVar is the environment variable that lists the inherited descriptors.
const EnvVar = "MPROC_FDS"

// firstExtraFD is the descriptor number the child sees for ExtraFiles[0].
const firstExtraFD = 3

// Errors returned by [Inherit] and [Add]. They are re-exported by every
// public package so users can test them with errors.Is.
var (
	ErrNotInherited = errors.New("mproc: no inherited object with that name")
	ErrWrongKind    = errors.New("mproc: inherited object is of another kind")
	ErrBadFD        = errors.New("mproc: inherited descriptor is not open")
	ErrBadName      = errors.New("mproc: invalid share name")
)

// Entry is one named object in the environment variable.
type Entry struct {
	Name string
	Kind string
	FDs  []int
}

func (e Entry) String() string {
	fds := make([]string, len(e.FDs))
	for i, fd := range e.FDs {
		fds[i] = strconv.Itoa(fd)
	}
	return e.Name + "=" + e.Kind + ":" + strings.Join(fds, ",")
}

// ValidName reports whether name may be used as a share name.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_' || c == '-' || c == '.':
		default:
			return false
		}
	}
	return true
}

// Parse parses the value of [EnvVar]. An empty value has no entries.
func Parse(v string) ([]Entry, error) {
	if v == "" {
		return nil, nil
	}
	var out []Entry
	for _, part := range strings.Split(v, ";") {
		name, rest, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mproc: malformed %s entry %q", EnvVar, part)
		}
		kind, list, ok := strings.Cut(rest, ":")
		if !ok || !ValidName(name) || kind == "" || list == "" {
			return nil, fmt.Errorf("mproc: malformed %s entry %q", EnvVar, part)
		}
		e := Entry{Name: name, Kind: kind}
		for _, s := range strings.Split(list, ",") {
			fd, err := strconv.Atoi(s)
			if err != nil || fd < 0 {
				return nil, fmt.Errorf("mproc: malformed %s entry %q", EnvVar, part)
			}
			e.FDs = append(e.FDs, fd)
		}
		out = append(out, e)
	}
	// One descriptor under two names (or twice in one) would be wrapped
	// twice: the first wrapper closed would leave the other on a number
	// that any file opened later may take.
	owner := map[int]string{}
	for _, e := range out {
		for _, fd := range e.FDs {
			if prev, dup := owner[fd]; dup {
				return nil, fmt.Errorf("mproc: %s lists descriptor %d more than once (under %q and %q): refused, since one descriptor must be wrapped once", EnvVar, fd, prev, e.Name)
			}
			owner[fd] = e.Name
		}
	}
	return out, nil
}

// Format is the inverse of [Parse].
func Format(entries []Entry) string {
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = e.String()
	}
	return strings.Join(parts, ";")
}

// Add hands files to the child that cmd will start, under name and kind:
// it appends them to cmd.ExtraFiles and records name -> descriptors in
// cmd.Env. When cmd.Env is nil it starts from os.Environ() without this
// process's own [EnvVar] (those numbers describe this process, not the
// child). Several calls on one cmd accumulate. Entries of a user-supplied
// cmd.Env that cannot refer to this cmd's ExtraFiles are dropped.
//
// The caller keeps its files; after cmd.Start it should close the copies it
// gave away, or the other side never sees EOF when the child dies.
func Add(cmd *exec.Cmd, name, kind string, files ...*os.File) error {
	if cmd == nil {
		panic("mproc: Share with a nil *exec.Cmd")
	}
	if !ValidName(name) {
		return fmt.Errorf("%w %q: use ASCII letters, digits, '_', '-' and '.'", ErrBadName, name)
	}
	if cmd.Process != nil {
		return fmt.Errorf("mproc: Share %q: the command has already started", name)
	}
	env := cmd.Env
	var entries []Entry
	if env == nil {
		env = withoutVar(os.Environ())
	} else {
		env = slices.Clone(env)
		if i := varIndex(env); i >= 0 {
			parsed, err := Parse(strings.TrimPrefix(env[i], EnvVar+"="))
			if err == nil {
				limit := firstExtraFD + len(cmd.ExtraFiles)
				for _, e := range parsed {
					if slices.IndexFunc(e.FDs, func(fd int) bool { return fd < firstExtraFD || fd >= limit }) < 0 {
						entries = append(entries, e)
					}
				}
			}
			env = withoutVar(env)
		}
	}
	for _, e := range entries {
		if e.Name == name {
			return fmt.Errorf("mproc: Share %q: the name is already shared with this command", name)
		}
	}
	e := Entry{Name: name, Kind: kind}
	for _, f := range files {
		e.FDs = append(e.FDs, firstExtraFD+len(cmd.ExtraFiles))
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	entries = append(entries, e)
	cmd.Env = append(env, EnvVar+"="+Format(entries))
	return nil
}

func varIndex(env []string) int {
	i := -1
	for j, kv := range env {
		if strings.HasPrefix(kv, EnvVar+"=") {
			i = j // the last one wins, as in os/exec
		}
	}
	return i
}

func withoutVar(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, EnvVar+"=") })
}
