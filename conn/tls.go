package conn

import (
	"crypto/tls"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mproc-go/mproc/internal/fd"
)

// tlsLinger bounds how long a closed TLS Conn goes on sending what was
// sent before Close to a peer that does not read.
const tlsLinger = 5 * time.Second

// A Conn over TLS is an ordinary Conn over one end of a socketpair; two
// goroutines (a pump) move bytes between the other end and the TLS
// connection. So Poll, Wait, deadlines and Close behave exactly as on any
// other Conn, at the price of one copy each way. Closing the Conn closes
// its end: the pump sends what the Conn had sent, then closes the TLS
// connection (close_notify), within tlsLinger, and Close returns once the
// pump's goroutines have ended; the peer closing the TLS
// connection closes the pump's end, which the Conn sees as EOF after the
// last message.
type tlsPump struct {
	tc  *tls.Conn
	end *os.File // the pump's end of the socketpair
	wg  sync.WaitGroup
}

func newTLSConn(tc *tls.Conn, p *peer) (*Conn, error) {
	a, b, err := fd.Socketpair(unix.SOCK_STREAM, "mproc-tls")
	if err != nil {
		tc.Close()
		return nil, err
	}
	c, err := newConn(a)
	if err != nil {
		a.Close()
		b.Close()
		tc.Close()
		return nil, err
	}
	pump := &tlsPump{tc: tc, end: b}
	p.tls = pump
	c.peer = p
	pump.wg.Add(2)
	go pump.in()
	go pump.out()
	return c, nil
}

// in copies from the TLS connection to the Conn until either ends.
func (p *tlsPump) in() {
	defer p.wg.Done()
	io.Copy(p.end, p.tc)
	// The peer closed (or the Conn did, and out closed tc): the Conn
	// reads what is left, then EOF; its Sends fail.
	p.tc.Close()
	p.end.Close()
}

// out copies from the Conn to the TLS connection until either ends.
func (p *tlsPump) out() {
	defer p.wg.Done()
	io.Copy(p.tc, p.end)
	// The Conn was closed (out has sent all it had sent) or the TLS
	// connection failed: close it, which ends in.
	p.tc.Close()
}

// close is called by Conn.Close, after it closed the Conn's end: what the
// pump is sending must go within tlsLinger, or be dropped; then the pump
// closes the TLS connection and both goroutines end, which close waits for.
func (p *tlsPump) close() {
	p.tc.SetWriteDeadline(time.Now().Add(tlsLinger))
	p.wg.Wait()
}
