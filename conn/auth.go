package conn

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
)

// The authkey handshake of Python's multiprocessing.connection
// (deliver_challenge and answer_challenge), in both of its forms. It runs
// over ordinary frames, each read with a 256-byte cap as Python does, and
// decodes nothing with msgpack. FORMAT.md describes it byte by byte.
//
// The server sends CHALLENGE followed by a random message; the client
// answers with an HMAC of the message under the key; the server sends
// WELCOME or FAILURE. Then the roles swap. Python 3.11 and earlier send 20
// random bytes and answer with a bare HMAC-MD5 (16 bytes). Python 3.12
// and later send "{sha256}" and 40 random bytes, answer a message with a
// "{digest}" prefix with "{digest}" and the HMAC under that digest of the
// whole message (prefix included), answer a 20-byte message the old way,
// and accept a bare 16-byte HMAC-MD5 answer. This file does what 3.12
// does, so it pairs with both.
const (
	challengePrefix = "#CHALLENGE#"
	welcome         = "#WELCOME#"
	failure         = "#FAILURE#"

	// authMax is the largest handshake message read: Python's
	// recv_bytes(256).
	authMax = 256
	// challengeLen is the random part of the challenge we send (Python
	// 3.12's MESSAGE_LENGTH).
	challengeLen = 40
	// legacyChallengeLen is the length of a Python 3.11 challenge, and
	// legacyAnswerLen of its answer (HMAC-MD5): messages of these lengths
	// carry no digest prefix.
	legacyChallengeLen = 20
	legacyAnswerLen    = md5.Size
	// ourDigest is the digest our challenges ask for.
	ourDigest = "sha256"
	// maxDigestName is the longest digest name Python accepts.
	maxDigestName = len("sha3_256")
)

// digests are the HMAC digests Python 3.12 accepts (_ALLOWED_DIGESTS).
var digests = map[string]func() hash.Hash{
	"md5":      md5.New,
	"sha256":   sha256.New,
	"sha384":   sha512.New384,
	"sha3_256": func() hash.Hash { return sha3.New256() },
	"sha3_384": func() hash.Hash { return sha3.New384() },
}

// splitDigest returns the digest a handshake message names and its
// payload: "" for a message of a legacy length, which has no prefix.
func splitDigest(m []byte) (name string, payload []byte, err error) {
	if len(m) == legacyChallengeLen || len(m) == legacyAnswerLen {
		return "", m, nil
	}
	if len(m) > 0 && m[0] == '{' {
		if end := bytes.IndexByte(m[1:min(len(m), maxDigestName+2)], '}'); end > 0 {
			name := string(m[1 : 1+end])
			if digests[name] != nil {
				return name, m[2+end:], nil
			}
		}
	}
	return "", nil, fmt.Errorf("%w: a handshake message of %d bytes without a known digest prefix", ErrAuth, len(m))
}

func mac(digest string, key, msg []byte) []byte {
	h := hmac.New(digests[digest], key)
	h.Write(msg)
	return h.Sum(nil)
}

// response is our answer to the challenge message m (without
// challengePrefix): Python 3.12's _create_response.
func response(key, m []byte) ([]byte, error) {
	name, _, err := splitDigest(m)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return mac("md5", key, m), nil
	}
	return append([]byte("{"+name+"}"), mac(name, key, m)...), nil
}

// verify checks the answer resp to our challenge message m: Python 3.12's
// _verify_challenge.
func verify(key, m, resp []byte) error {
	name, got, err := splitDigest(resp)
	if err != nil {
		return err
	}
	if name == "" {
		name = "md5"
	}
	if !hmac.Equal(got, mac(name, key, m)) {
		return fmt.Errorf("%w: the digest received was wrong", ErrAuth)
	}
	return nil
}

// randRead fills a challenge; tests replace it to check exact bytes.
var randRead = rand.Read // never fails (crypto/rand's contract)

// newChallenge returns a challenge message: "{sha256}" and 40 random bytes.
func newChallenge() []byte {
	m := make([]byte, 0, len(ourDigest)+2+challengeLen)
	m = append(m, "{"+ourDigest+"}"...)
	r := make([]byte, challengeLen)
	randRead(r)
	return append(m, r...)
}

// handshake reads and writes handshake frames on rw. The caller bounds it
// in time (a deadline on the connection).
type handshake struct {
	rw  io.ReadWriter
	key []byte
}

func (h handshake) send(p []byte) error {
	_, err := h.rw.Write(append(AppendHeader(make([]byte, 0, headerSize+len(p)), len(p)), p...))
	return err
}

// recv reads one frame of at most authMax bytes; a longer header is an
// error before a byte of the body is read.
func (h handshake) recv() ([]byte, error) {
	p, err := ReadFrame(h.rw, authMax, nil)
	if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrProtocol) {
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return p, err
}

// deliver is Python's deliver_challenge with challenge m.
func (h handshake) deliver(m []byte) error {
	if err := h.send(append([]byte(challengePrefix), m...)); err != nil {
		return err
	}
	resp, err := h.recv()
	if err != nil {
		return err
	}
	if err := verify(h.key, m, resp); err != nil {
		h.send([]byte(failure))
		return err
	}
	return h.send([]byte(welcome))
}

// answer is Python's answer_challenge.
func (h handshake) answer() error {
	m, err := h.recv()
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(m, []byte(challengePrefix)) {
		return fmt.Errorf("%w: expected a challenge, got %d other bytes", ErrAuth, len(m))
	}
	m = m[len(challengePrefix):]
	if len(m) < legacyChallengeLen {
		return fmt.Errorf("%w: a challenge of %d bytes is too short", ErrAuth, len(m))
	}
	resp, err := response(h.key, m)
	if err != nil {
		return err
	}
	if err := h.send(resp); err != nil {
		return err
	}
	ok, err := h.recv()
	if err != nil {
		return err
	}
	if string(ok) != welcome {
		return fmt.Errorf("%w: the other side rejected our digest (is the authkey the same?)", ErrAuth)
	}
	return nil
}

// server is what Python's Listener.accept does: challenge, then answer.
func (h handshake) server() error {
	if err := h.deliver(newChallenge()); err != nil {
		return err
	}
	return h.answer()
}

// client is what Python's Client does: answer, then challenge.
func (h handshake) client() error {
	if err := h.answer(); err != nil {
		return err
	}
	return h.deliver(newChallenge())
}
