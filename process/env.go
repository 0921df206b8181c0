package process

import (
	"fmt"
	"strings"
	"time"
)

// The child's environment variable envName carries the function's name and
// the child-side options, comma-separated:
//
//	MPROC_PROCESS=<name>[,flush=<duration>][,grace=<duration>][,outlive]
//
// flush is Cmd.FlushTimeout and grace Cmd.Grace (time.Duration syntax;
// grace 0 when Grace is negative), outlive tells the child not to watch
// its control channel for the parent's death. The environment, not a
// message, carries them: the child has them before it touches a descriptor,
// and pays no decoding at startup.
type options struct {
	name         string
	flushTimeout time.Duration
	grace        time.Duration
	outlive      bool
}

func (o options) String() string {
	s := o.name + ",flush=" + o.flushTimeout.String() + ",grace=" + o.grace.String()
	if o.outlive {
		s += ",outlive"
	}
	return s
}

func parseOptions(v string) (options, error) {
	parts := strings.Split(v, ",")
	o := options{name: parts[0], flushTimeout: DefaultFlushTimeout, grace: DefaultGrace}
	if o.name == "" {
		return o, fmt.Errorf("process: malformed %s=%q: no function name", envName, v)
	}
	for _, p := range parts[1:] {
		switch k, val, _ := strings.Cut(p, "="); k {
		case "flush":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return o, fmt.Errorf("process: malformed %s=%q: bad flush timeout", envName, v)
			}
			o.flushTimeout = d
		case "grace":
			d, err := time.ParseDuration(val)
			if err != nil || d < 0 {
				return o, fmt.Errorf("process: malformed %s=%q: bad grace", envName, v)
			}
			o.grace = d
		case "outlive":
			o.outlive = true
		default:
			return o, fmt.Errorf("process: malformed %s=%q: unknown option %q", envName, v, p)
		}
	}
	return o, nil
}
