package conn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultHandshakeTimeout bounds how long Accept's handshake with one
// client, and Dial's with its server, may take unless WithHandshakeTimeout
// says otherwise: a client that connects and stays silent costs the
// Listener one goroutine for this long, and nothing else.
const DefaultHandshakeTimeout = 5 * time.Second

var (
	// ErrAuth is returned by Dial when the authkey handshake fails: the
	// server rejected our answer to its challenge, or answered ours
	// wrongly, or spoke something other than the handshake. A Listener
	// drops a client whose handshake fails (WithLogger reports it) and
	// goes on accepting. Test with errors.Is.
	ErrAuth = errors.New("conn: authentication failed")
	// ErrInsecure is returned by Listen and Dial on "tcp" without
	// WithAuthKey or WithTLS, unless WithInsecure says that anyone who
	// can reach the port may connect. Test with errors.Is.
	ErrInsecure = errors.New("conn: tcp without an authkey or TLS")
)

// An Option configures Listen and Dial.
type Option func(*settings)

type settings struct {
	key      []byte
	tls      *tls.Config
	insecure bool
	timeout  time.Duration
	log      *slog.Logger
}

// WithAuthKey makes Listen and Dial authenticate the other side with key,
// by the challenge-response handshake of Python's multiprocessing
// (Listener(authkey=key), Client(authkey=key)): each side proves that it
// knows key without sending it. A Python 3.11 or later peer with the same
// key is a valid peer. The key is copied. An empty key is refused: Python
// skips the handshake for it on one side and not on the other.
func WithAuthKey(key []byte) Option {
	key = append(make([]byte, 0, len(key)), key...)
	return func(s *settings) { s.key = key }
}

// WithTLS makes Listen and Dial speak TLS with cfg (a server config with
// certificates for Listen, a client config for Dial; Dial fills in
// ServerName from the address when cfg leaves it empty). With WithAuthKey
// too, the authkey handshake runs inside TLS. A TLS peer is another Go
// program: Python's multiprocessing has no TLS. Close of a TLS Conn
// returns once what was sent before it has gone to the peer, or after 5
// seconds of a peer that does not read.
func WithTLS(cfg *tls.Config) Option {
	return func(s *settings) { s.tls = cfg }
}

// WithInsecure allows "tcp" without WithAuthKey or WithTLS: anyone who can
// reach the address can connect and exchange messages. Use it only on a
// network where that is true of trusted processes alone.
func WithInsecure() Option {
	return func(s *settings) { s.insecure = true }
}

// WithHandshakeTimeout bounds each handshake (TLS and authkey) to d; d <= 0
// means DefaultHandshakeTimeout.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// WithLogger makes a Listener report to l, at level Warn, each client it
// dropped and why (a failed handshake, a timeout). By default nothing is
// logged.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) { s.log = l }
}

func newSettings(op, network string, opts []Option) (settings, error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultHandshakeTimeout
	}
	switch network {
	case "unix":
	case "tcp", "tcp4", "tcp6":
		if s.key == nil && s.tls == nil && !s.insecure {
			return s, fmt.Errorf("%w: %s %s: anyone who can reach the port could connect; pass WithAuthKey, WithTLS or WithInsecure", ErrInsecure, op, network)
		}
	default:
		return s, fmt.Errorf("conn: %s: network %q: want \"unix\" or \"tcp\"", op, network)
	}
	if s.key != nil && len(s.key) == 0 {
		return s, fmt.Errorf("conn: %s: WithAuthKey with an empty key", op)
	}
	return s, nil
}
