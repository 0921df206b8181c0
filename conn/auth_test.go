package conn

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Test vectors of Python 3.12+'s handshake, computed by running
// deliver_challenge, answer_challenge and _create_response from
// python/cpython Lib/multiprocessing/connection.py (commit
// 00507c93978eea5aec2db571c785f6de06a1c37b) with os.urandom replaced by
// bytes 1..40 and the key below. Python 3.11's form is checked against the
// real interpreter (listen_python_test.go).
var (
	vecKey    = []byte("mproc test vector key")
	vecRandom = func() []byte {
		b := make([]byte, 40)
		for i := range b {
			b[i] = byte(i + 1)
		}
		return b
	}()
	// The payload of the challenge frame a 3.12 server sends.
	vecChallenge = unhex("234348414c4c454e4745237b7368613235367d0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728")
	// A 3.12 client's answers to "{digest}" + vecRandom.
	vecAnswers = map[string][]byte{
		"sha256":   unhex("7b7368613235367da018ff78cdb73a961919c14df1a3e4ac67fec17ecb339897802bbf68aee38406"),
		"sha384":   unhex("7b7368613338347dde3017f34d2f53ab44d3200c4fce62dfeaa13a058e1545beddcf1ef659e6d5760c1e232033e8a73fd0c5907b7f583c91"),
		"sha3_256": unhex("7b736861335f3235367d9983be9b8a688e1bcce6a9cc77b1ca795ec3a0ca98a31769232d66e640b42529"),
		"sha3_384": unhex("7b736861335f3338347dc52756917826a0734517cfa8472815a763cc4faf0aa9c1ec3192b1805959479ec662681e617cd0c97cff5462d2085be9"),
		"md5":      unhex("7b6d64357d87b2d32b85d1ee743ae4ef8bb7a8b3a8"),
	}
	// A 3.12 client's answer to a 3.11 challenge (vecRandom[:20]): a bare
	// HMAC-MD5.
	vecLegacyAnswer = unhex("5b4eaa9a2574690d66c003567390b971")
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestHandshakeVectors(t *testing.T) {
	for d, want := range vecAnswers {
		m := append([]byte("{"+d+"}"), vecRandom...)
		got, err := response(vecKey, m)
		require.NoError(t, err, d)
		assert.Equal(t, want, got, "our answer to a %s challenge is 3.12's", d)
		assert.NoError(t, verify(vecKey, m, want), "we accept 3.12's %s answer", d)
		bad := bytes.Clone(want)
		bad[len(bad)-1] ^= 1
		assert.ErrorIs(t, verify(vecKey, m, bad), ErrAuth, "a wrong %s answer", d)
		assert.ErrorIs(t, verify([]byte("other key"), m, want), ErrAuth, "another key, %s", d)
	}
	legacy := vecRandom[:20]
	got, err := response(vecKey, legacy)
	require.NoError(t, err)
	assert.Equal(t, vecLegacyAnswer, got, "a 3.11 challenge gets a bare HMAC-MD5")
	assert.NoError(t, verify(vecKey, legacy, vecLegacyAnswer))
	// Our own challenge answered the 3.11 way (a bare HMAC-MD5 of the
	// whole message, prefix included) is accepted, as 3.12 accepts it.
	m := append([]byte("{sha256}"), vecRandom...)
	assert.NoError(t, verify(vecKey, m, mac("md5", vecKey, m)))
	// Refused: an unknown digest, no prefix, a prefix without its brace.
	for _, bad := range [][]byte{
		append([]byte("{sha1}"), vecRandom...),
		vecRandom[:30],
		[]byte("{sha256"),
		nil,
	} {
		_, err := response(vecKey, bad)
		assert.ErrorIs(t, err, ErrAuth, "%q", bad)
		assert.ErrorIs(t, verify(vecKey, m, bad), ErrAuth, "%q", bad)
	}
}

// The challenge our server sends is, byte for byte, the one a 3.12 server
// sends for the same random bytes, and 3.12's answer passes.
func TestHandshakeServerBytes(t *testing.T) {
	defer func(f func([]byte) (int, error)) { randRead = f }(randRead)
	randRead = func(b []byte) (int, error) { return copy(b, vecRandom), nil }
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	done := make(chan error, 1)
	go func() { done <- handshake{rw: srv, key: vecKey}.deliver(newChallenge()) }()
	got, err := ReadFrame(cli, 256, nil)
	require.NoError(t, err)
	assert.Equal(t, vecChallenge, got, "the challenge frame")
	_, err = cli.Write(AppendHeader(nil, len(vecAnswers["sha256"])))
	require.NoError(t, err)
	_, err = cli.Write(vecAnswers["sha256"])
	require.NoError(t, err)
	got, err = ReadFrame(cli, 256, nil)
	require.NoError(t, err)
	assert.Equal(t, welcome, string(got))
	require.NoError(t, <-done)
}

// Our client answers a 3.12 server's challenge with 3.12's exact bytes.
func TestHandshakeClientBytes(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	done := make(chan error, 1)
	go func() { done <- handshake{rw: cli, key: vecKey}.answer() }()
	_, err := srv.Write(append(AppendHeader(nil, len(vecChallenge)), vecChallenge...))
	require.NoError(t, err)
	got, err := ReadFrame(srv, 256, nil)
	require.NoError(t, err)
	assert.Equal(t, vecAnswers["sha256"], got)
	_, err = srv.Write(append(AppendHeader(nil, len(failure)), failure...))
	require.NoError(t, err)
	assert.ErrorIs(t, <-done, ErrAuth, "FAILURE is ErrAuth")
}

// FuzzHandshakeMessage: the parsers of what a client or server sends
// before it is authenticated never panic, and accept only what the
// protocol allows.
func FuzzHandshakeMessage(f *testing.F) {
	f.Add(vecChallenge)
	for _, a := range vecAnswers {
		f.Add(a)
	}
	f.Add(vecLegacyAnswer)
	f.Add([]byte("{sha3_384"))
	f.Fuzz(func(t *testing.T, m []byte) {
		name, payload, err := splitDigest(m)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("splitDigest error %v is not ErrAuth", err)
			}
			return
		}
		if name == "" {
			if len(m) != 16 && len(m) != 20 {
				t.Fatalf("no digest for a message of %d bytes", len(m))
			}
		} else if !bytes.Equal(m, append([]byte("{"+name+"}"), payload...)) {
			t.Fatalf("splitDigest(%q) = %q, %q", m, name, payload)
		}
		if _, err := response(vecKey, m); err != nil {
			t.Fatalf("response to an accepted message: %v", err)
		}
		verify(vecKey, vecRandom, m)
	})
}
