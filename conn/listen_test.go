package conn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mproc-go/mproc/conn"
	"github.com/mproc-go/mproc/internal/testproc"
)

var testKey = []byte("the test's authkey")

// testTLS returns a server and a client config around a fresh self-signed
// certificate for 127.0.0.1 and "localhost".
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mproc test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return server, client
}

// listenAddr returns an address to listen on for network: a socket path
// in a fresh directory, or a loopback port chosen by the system.
func listenAddr(t testing.TB, network string) string {
	if network == "unix" {
		return filepath.Join(t.TempDir(), "l.sock")
	}
	return "127.0.0.1:0"
}

func listen(t testing.TB, network string, opts ...conn.Option) *conn.Listener {
	t.Helper()
	l, err := conn.Listen(network, listenAddr(t, network), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type ping struct {
	N    int    `msgpack:"n"`
	From string `msgpack:"from"`
}

func TestListenDial(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	type side struct{ listen, dial []conn.Option }
	cases := map[string]side{
		"authkey":     {[]conn.Option{conn.WithAuthKey(testKey)}, []conn.Option{conn.WithAuthKey(testKey)}},
		"tls":         {[]conn.Option{conn.WithTLS(srvTLS)}, []conn.Option{conn.WithTLS(cliTLS)}},
		"tls+authkey": {[]conn.Option{conn.WithTLS(srvTLS), conn.WithAuthKey(testKey)}, []conn.Option{conn.WithTLS(cliTLS), conn.WithAuthKey(testKey)}},
		"insecure":    {[]conn.Option{conn.WithInsecure()}, []conn.Option{conn.WithInsecure()}},
	}
	for _, network := range []string{"unix", "tcp"} {
		for name, c := range cases {
			t.Run(network+"/"+name, func(t *testing.T) {
				testproc.CheckFDs(t)
				l := listen(t, network, c.listen...)
				ctx := ctxTimeout(t, 20*time.Second)
				accepted := make(chan *conn.Conn, 1)
				go func() {
					s, err := l.Accept(ctx)
					assert.NoError(t, err, "Accept")
					accepted <- s
				}()
				cl, err := conn.Dial(ctx, network, l.Addr().String(), c.dial...)
				require.NoError(t, err, "Dial")
				defer cl.Close()
				s := <-accepted
				require.NotNil(t, s)
				defer s.Close()
				if network == "tcp" {
					assert.Equal(t, cl.LocalAddr().String(), s.RemoteAddr().String(), "the server sees the client's address")
					assert.Equal(t, l.Addr().String(), cl.RemoteAddr().String())
				}
				for i := range 3 {
					require.NoError(t, cl.Send(ping{i, "client"}))
					var p ping
					require.NoError(t, s.Recv(&p))
					assert.Equal(t, ping{i, "client"}, p)
					require.NoError(t, s.Send(ping{i, "server"}))
					require.NoError(t, cl.Recv(&p))
					assert.Equal(t, ping{i, "server"}, p)
				}
				// Close is EOF on the other side, whichever closes.
				require.NoError(t, cl.Send(ping{99, "last"}))
				require.NoError(t, cl.Close())
				var p ping
				require.NoError(t, s.Recv(&p), "what was sent before Close arrives")
				assert.Equal(t, 99, p.N)
				assert.ErrorIs(t, s.Recv(&p), io.EOF)
				require.NoError(t, l.Close())
			})
		}
	}
}

func TestListenTCPNeedsAuthOrTLS(t *testing.T) {
	_, err := conn.Listen("tcp", "127.0.0.1:0")
	assert.ErrorIs(t, err, conn.ErrInsecure)
	assert.ErrorContains(t, err, "WithInsecure")
	_, err = conn.Dial(context.Background(), "tcp", "127.0.0.1:1")
	assert.ErrorIs(t, err, conn.ErrInsecure)
	_, err = conn.Listen("udp", "127.0.0.1:0", conn.WithInsecure())
	assert.Error(t, err, "udp is no network for a Conn")
	_, err = conn.Listen("tcp", "127.0.0.1:0", conn.WithAuthKey(nil))
	assert.ErrorContains(t, err, "empty key")
	_, err = conn.Listen("tcp", "127.0.0.1:0", conn.WithTLS(&tls.Config{}))
	assert.ErrorContains(t, err, "no certificate")
}

func TestDialWrongKey(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			testproc.CheckFDs(t)
			logger, rec := testproc.NewLogRecorder()
			l := listen(t, network, conn.WithAuthKey(testKey), conn.WithLogger(logger))
			ctx := ctxTimeout(t, 20*time.Second)
			_, err := conn.Dial(ctx, network, l.Addr().String(), conn.WithAuthKey([]byte("another key")))
			assert.ErrorIs(t, err, conn.ErrAuth, "Dial with the wrong key")
			waitFor(t, func() bool { return len(rec.Records("conn: Listener: client dropped")) == 1 }, "the listener reports the drop")
			assert.ErrorIs(t, rec.Records("")[0].Attrs["err"].(error), conn.ErrAuth)
			// The listener goes on.
			good, err := conn.Dial(ctx, network, l.Addr().String(), conn.WithAuthKey(testKey))
			require.NoError(t, err)
			defer good.Close()
			s, err := l.Accept(ctx)
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, good.Send("hello"))
			var got string
			require.NoError(t, s.Recv(&got))
			assert.Equal(t, "hello", got)
		})
	}
}

// waitFor polls cond until it holds, failing t after 20 s.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestListenerHostileClients: clients that do not follow the handshake are
// dropped, each for its own reason, without holding up a good client.
func TestListenerHostileClients(t *testing.T) {
	testproc.CheckFDs(t)
	logger, rec := testproc.NewLogRecorder()
	const timeout = 300 * time.Millisecond
	l := listen(t, "tcp", conn.WithAuthKey(testKey), conn.WithLogger(logger), conn.WithHandshakeTimeout(timeout))
	ctx := ctxTimeout(t, 30*time.Second)
	addr := l.Addr().String()
	raw := func() net.Conn {
		nc, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		// Read the challenge, as a client would.
		p, err := conn.ReadFrame(nc, 256, nil)
		require.NoError(t, err)
		require.Contains(t, string(p), "#CHALLENGE#{sha256}")
		return nc
	}
	dropped := func(n int) func() bool {
		return func() bool { return len(rec.Records("conn: Listener: client dropped")) >= n }
	}

	// A silent client: still in its handshake while a good client is
	// served, dropped when its time is up.
	start := time.Now()
	silent := raw()
	good, err := conn.Dial(ctx, "tcp", addr, conn.WithAuthKey(testKey))
	require.NoError(t, err)
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, good.Close())
	require.NoError(t, s.Close())
	assert.Empty(t, rec.Records(""), "the silent client has not been dropped yet")
	waitFor(t, dropped(1), "the silent client is dropped")
	assert.GreaterOrEqual(t, time.Since(start), timeout)
	assert.ErrorIs(t, rec.Records("")[0].Attrs["err"].(error), context.DeadlineExceeded)
	_, err = silent.Read(make([]byte, 1))
	assert.Error(t, err, "the listener closed the silent client")

	// Headers announcing 2 GiB, short and long forms: refused at once,
	// no byte of a body read.
	for i, hdr := range [][]byte{
		binary.BigEndian.AppendUint32(nil, 1<<31-1),
		binary.BigEndian.AppendUint64([]byte{0xff, 0xff, 0xff, 0xff}, 2<<30),
	} {
		nc := raw()
		_, err := nc.Write(hdr)
		require.NoError(t, err)
		waitFor(t, dropped(2+i), "the 2 GiB header is refused")
		err = rec.Records("")[1+i].Attrs["err"].(error)
		assert.ErrorIs(t, err, conn.ErrMessageTooLarge)
		assert.ErrorIs(t, err, conn.ErrAuth)
		assert.ErrorContains(t, err, "maximum 256")
	}

	// Garbage: a well-framed answer of the wrong shape, then bytes that
	// are no frame at all.
	nc := raw()
	_, err = nc.Write([]byte{0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'})
	require.NoError(t, err)
	waitFor(t, dropped(4), "a garbage answer is refused")
	assert.ErrorIs(t, rec.Records("")[3].Attrs["err"].(error), conn.ErrAuth)
	nc = raw()
	_, err = nc.Write([]byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad})
	require.NoError(t, err)
	waitFor(t, dropped(5), "garbage is refused")
	assert.ErrorIs(t, rec.Records("")[4].Attrs["err"].(error), conn.ErrProtocol)

	// A client that goes before answering.
	nc = raw()
	require.NoError(t, nc.Close())
	waitFor(t, dropped(6), "a client gone is dropped")
	assert.ErrorIs(t, rec.Records("")[5].Attrs["err"].(error), io.EOF)

	// None of them reached Accept.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = l.Accept(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestListenerMany: 100 clients at once with the right key are all served;
// 100 with the wrong key are none of them, and the listener serves a good
// one afterwards.
func TestListenerMany(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			testproc.CheckFDs(t)
			logger, rec := testproc.NewLogRecorder()
			l := listen(t, network, conn.WithAuthKey(testKey), conn.WithLogger(logger), conn.WithHandshakeTimeout(20*time.Second))
			ctx := ctxTimeout(t, 60*time.Second)
			const n = 100
			dialAll := func(key []byte) []error {
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c, err := conn.Dial(ctx, network, l.Addr().String(), conn.WithAuthKey(key), conn.WithHandshakeTimeout(20*time.Second))
						if err == nil {
							err = c.Send(i)
							if err == nil {
								var echo int
								if err = c.Recv(&echo); err == nil && echo != i {
									err = fmt.Errorf("echo %d, want %d", echo, i)
								}
							}
							c.Close()
						}
						errs[i] = err
					}()
				}
				wg.Wait()
				return errs
			}
			// The server echoes on every Conn it accepts, until Close.
			var served sync.WaitGroup
			var mu sync.Mutex
			seen := map[int]bool{}
			served.Add(1)
			go func() {
				defer served.Done()
				for {
					s, err := l.Accept(ctx)
					if err != nil {
						assert.ErrorIs(t, err, conn.ErrClosed)
						return
					}
					served.Add(1)
					go func() {
						defer served.Done()
						defer s.Close()
						var i int
						if s.Recv(&i) == nil {
							mu.Lock()
							seen[i] = true
							mu.Unlock()
							s.Send(i)
						}
					}()
				}
			}()
			for i, err := range dialAll(testKey) {
				assert.NoError(t, err, "client %d with the right key", i)
			}
			mu.Lock()
			assert.Len(t, seen, n, "every client was served")
			clear(seen)
			mu.Unlock()
			for i, err := range dialAll([]byte("wrong")) {
				assert.ErrorIs(t, err, conn.ErrAuth, "client %d with the wrong key", i)
			}
			waitFor(t, func() bool { return len(rec.Records("conn: Listener: client dropped")) == n }, "every wrong client is dropped")
			good, err := conn.Dial(ctx, network, l.Addr().String(), conn.WithAuthKey(testKey))
			require.NoError(t, err)
			require.NoError(t, good.Send(1000))
			var echo int
			require.NoError(t, good.Recv(&echo))
			assert.Equal(t, 1000, echo)
			require.NoError(t, good.Close())
			require.NoError(t, l.Close())
			served.Wait()
			assert.Equal(t, map[int]bool{1000: true}, seen, "no wrong client was served")
		})
	}
}

func TestListenerCloseDuringAccept(t *testing.T) {
	testproc.CheckFDs(t)
	l := listen(t, "unix")
	blocked := make(chan struct{})
	conn.SetAcceptHook(func() { close(blocked) })
	defer conn.SetAcceptHook(nil)
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept(context.Background())
		done <- err
	}()
	<-blocked
	require.NoError(t, l.Close())
	assert.ErrorIs(t, <-done, conn.ErrClosed, "Close wakes Accept")
	_, err := l.Accept(context.Background())
	assert.ErrorIs(t, err, conn.ErrClosed, "Accept after Close")
	assert.NoError(t, l.Close(), "Close is idempotent")
	_, err = conn.Dial(context.Background(), "unix", l.Addr().String())
	assert.Error(t, err, "the socket file is gone")
}

// A client whose handshake passed but that Accept never took is closed by
// Close, and Accept's ctx ends a wait.
func TestListenerCloseDropsPending(t *testing.T) {
	testproc.CheckFDs(t)
	l := listen(t, "unix", conn.WithAuthKey(testKey))
	ctx := ctxTimeout(t, 20*time.Second)
	c, err := conn.Dial(ctx, "unix", l.Addr().String(), conn.WithAuthKey(testKey))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, l.Close())
	var v any
	assert.ErrorIs(t, c.Recv(&v), io.EOF, "the listener's Close closed the client it held")
	short, cancel := context.WithCancel(ctx)
	cancel()
	l2 := listen(t, "unix")
	_, err = l2.Accept(short)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, conn.ErrClosed))
}

// A TLS client that does not trust the server's certificate fails at
// Dial, and the Listener goes on.
func TestDialUntrustedTLS(t *testing.T) {
	testproc.CheckFDs(t)
	srvTLS, cliTLS := testTLS(t)
	logger, rec := testproc.NewLogRecorder()
	l := listen(t, "tcp", conn.WithTLS(srvTLS), conn.WithLogger(logger))
	ctx := ctxTimeout(t, 20*time.Second)
	_, err := conn.Dial(ctx, "tcp", l.Addr().String(), conn.WithTLS(&tls.Config{}))
	var unknown x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &unknown, "Dial without the server's CA")
	waitFor(t, func() bool { return len(rec.Records("conn: Listener: client dropped")) == 1 }, "the listener drops the client")
	c, err := conn.Dial(ctx, "tcp", l.Addr().String(), conn.WithTLS(cliTLS))
	require.NoError(t, err)
	defer c.Close()
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Send("over TLS"))
	var got string
	require.NoError(t, c.Recv(&got))
	assert.Equal(t, "over TLS", got)
}

// Close of a TLS Conn lets what was sent before it reach the peer: the
// pump drains, then closes the TLS connection.
func TestTLSCloseDrains(t *testing.T) {
	testproc.CheckFDs(t)
	srvTLS, cliTLS := testTLS(t)
	l := listen(t, "unix", conn.WithTLS(srvTLS))
	ctx := ctxTimeout(t, 20*time.Second)
	c, err := conn.Dial(ctx, "unix", l.Addr().String(), conn.WithTLS(cliTLS))
	require.NoError(t, err)
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	defer s.Close()
	big := pattern(8<<20, 3)
	done := goSend(func() error {
		if err := c.SendBytes(big); err != nil {
			return err
		}
		return c.Close()
	})
	got, err := s.RecvBytes()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "8 MiB sent before Close arrive intact")
	require.NoError(t, waitErr(t, done, "SendBytes and Close"))
	_, err = s.RecvBytes()
	assert.ErrorIs(t, err, io.EOF)
}
