// Package conn sends whole messages between processes over one pipe or
// socket descriptor. It is the Go counterpart of Python's
// multiprocessing.connection.Connection, and speaks its wire format: a
// Python process can exchange messages with a Go process through one.
//
// # Messages
//
// [Conn.Send] encodes a value with msgpack (github.com/vmihailenco/msgpack/v5)
// and sends it as one frame; [Conn.Recv] receives one frame and decodes it
// into a pointer. [Conn.SendBytes] and [Conn.RecvBytes] carry raw payloads,
// with no encoding. Encoding happens in the caller: a value that cannot be
// encoded fails at Send, and nothing is written. A frame is read whole
// before it is decoded: a payload that does not decode into the target is
// consumed and reported, and the Conn stays usable.
//
// Conns come from [github.com/mproc-go/mproc/pipe.Duplex] (a socketpair,
// both ends send and receive) and [github.com/mproc-go/mproc/pipe.Simplex]
// (a pipe: Send on the read end is [ErrReadOnly], Recv on the write end
// [ErrWriteOnly]), from [New] over a pipe or socket made elsewhere, and
// from [Inherit] in a child process, and from [Dial] and [Listener.Accept]
// between processes that did not start each other.
//
// # Wire format
//
// A frame is a 4-byte big-endian signed length, then the payload; a payload
// over 0x7fffffff bytes has the length -1 followed by an 8-byte big-endian
// unsigned length. This is exactly what Connection.send_bytes writes and
// recv_bytes reads on Unix, so Python pairs Connection(fd).recv_bytes()
// with msgpack.unpackb and send_bytes with msgpack.packb. FORMAT.md in
// this directory describes the format and the MPROC_FDS variable for
// programs in other languages; [AppendHeader], [HeaderLen] and [ReadFrame]
// expose the framing for hand-written peers.
//
// A reader never allocates on the word of a header alone: whatever length
// a header announces, the buffer grows with the bytes that actually arrive
// (at most about twice them, plus 1 MiB). So [DefaultMaxMessageSize] is
// large (1 GiB, Python has no limit and its users send big arrays); set a
// smaller one with [Conn.SetMaxMessageSize].
//
// # Sharing with a child process
//
// [Conn.Share] hands one end to a child started with os/exec: it appends
// the descriptor to [exec.Cmd.ExtraFiles] and records it under a name in
// the child's environment (MPROC_FDS). The child calls [Inherit] with the
// same name. After cmd.Start the parent closes its copy of the end it gave
// away; otherwise the parent never sees EOF when the child dies. A child
// can Share what it inherited with its own children.
//
// # Listening and dialing
//
// [Listen] and [Dial] connect processes that did not start each other, on
// this host ("unix": a socket file, or "@name" in Linux's abstract
// namespace) or across hosts ("tcp"), like Python's
// multiprocessing.connection.Listener and Client:
//
//	l, err := conn.Listen("unix", "/run/app.sock", conn.WithAuthKey(key))
//	c, err := l.Accept(ctx) // a *Conn like any other
//
//	c, err := conn.Dial(ctx, "unix", "/run/app.sock", conn.WithAuthKey(key))
//
// [WithAuthKey] runs Python's authkey handshake: each side sends the other
// a random challenge and checks the HMAC of it under the key, so that
// neither ever sends the key. It is Python's own protocol, in both of its
// forms (Python 3.11 and earlier: HMAC-MD5; 3.12 and later: the digest
// named in the challenge, SHA-256 by default), so a stock Python process
// with the same key is a peer either way round: its Client connects to a
// Go Listener, and Dial connects to its Listener. A failed handshake is
// [ErrAuth] at Dial; a Listener drops the client (and reports it to
// [WithLogger]'s logger) and goes on accepting. [WithTLS] adds TLS
// (between Go processes; the authkey handshake, if any, runs inside it).
// On "tcp" one of the two is required: without them Listen and Dial fail
// with [ErrInsecure] unless [WithInsecure] says that anyone who can reach
// the port may connect.
//
// Before a client has passed the handshake nothing it sends is decoded:
// the handshake reads frames of at most 256 bytes (a longer header is
// refused before a byte of its body is read, as Python refuses it), and
// each client has [DefaultHandshakeTimeout] ([WithHandshakeTimeout]) to
// finish. Each client's handshake runs on its own, so a silent or slow
// client holds up no other. [Listener.Close] wakes a blocked Accept with
// [ErrClosed].
//
// # Waiting on many Conns
//
// [Wait] is Python's multiprocessing.connection.wait: it returns the Conns,
// of any number given, that have a message waiting or whose peer has
// closed, as soon as there is one, or ctx.Err() when ctx ends first. A
// server of many clients loops on Wait and Recv.
//
// # Handing objects to a running process
//
// [Conn.SendShare] sends a lock, a queue of any kind, a Conn (any mproc
// object with a Share method: a [Sharer]) to the process at the other end
// of a unix socket Conn (a pipe.Duplex end, or a Conn from Dial or Accept
// on "unix"). The descriptors travel with the message (SCM_RIGHTS). The
// other process receives it with [Conn.RecvShare], which registers it
// under the name the sender gave, and then calls the object's package's
// Inherit with that name, exactly as a child does for an object shared
// before it started: the same kind checks, the same errors, the same item
// type check for queues.
//
//	// parent, after the worker started
//	q, _ := queue.New[Job](0)
//	err := c.SendShare(ctx, q, "jobs")
//
//	// worker
//	name, err := c.RecvShare(ctx) // "jobs"
//	q, err := queue.Inherit[Job](name)
//
// This is what Python does with multiprocessing.reduction.send_handle and
// by pickling a Connection. Over tcp, TLS or a Simplex pipe SendShare fails
// with [ErrNotUnixSocket] and sends nothing. A shared object that reaches
// [Conn.Recv] instead of RecvShare is [ErrUnexpectedShare] (its descriptors
// are closed), and a message that reaches RecvShare is [ErrNotShared]; a
// name the receiving process already has is [ErrNameTaken].
//
// # Concurrency
//
// A Conn is safe for use by several goroutines. [Conn.Send], [Conn.SendBytes]
// and their Context variants are serialized with each other: frames sent by
// goroutines of one process never interleave. [Conn.Recv], [Conn.RecvBytes],
// [Conn.Poll] and their Context variants are serialized with each other:
// each receive gets one whole frame. A sender never waits for a receiver
// of the same Conn, and [Conn.Close] may be called at any time, from any
// goroutine.
//
// Several processes may hold the same end (each Share gives a child its own
// descriptor). Writers in different processes do not share a lock: on a
// pipe, a frame written in one write of at most PIPE_BUF (4096) bytes,
// header included, stays whole against the other writers, and a larger one
// may interleave; a stream socket promises nothing. A receive reads ahead
// (below), and a frame may arrive in several reads, so two processes
// receiving on one end can split a frame between them. For many writers or readers use the queue
// packages, which keep whole frames under any sharing.
//
// # Reading ahead
//
// A receive asks the descriptor for as many bytes as are waiting, up to
// the size of the Conn's buffer (4 KiB at first, doubling up to 64 KiB when
// reads fill it or a message needs more), and keeps those past its frame in
// the Conn for the next receives: when messages arrive faster than they are received, one
// read(2) brings many of them, and the receiver parks in the runtime
// poller only when the descriptor is empty. (A receive used to read the
// header and then the body: two read(2) calls per message, plus a park
// whenever the descriptor was empty, held conn to about half of what the
// descriptor carries. A send was one write(2) per frame and still is.) A
// message that fits in the buffer is decoded from it, with no copy; a
// larger one is read into its own buffer, which grows with the bytes that
// arrive as before.
//
// Reading ahead assumes that this process is the only reader of the
// Conn's descriptor, the usual case: a pair made by pipe.Duplex or
// pipe.Simplex, one end kept and the other shared with a child. What it
// changes for a user:
//
//   - [Conn.Share] refuses, with [ErrBuffered], a Conn that holds bytes it
//     has received and not yet returned: the child would start in the
//     middle of the stream. Receive what is waiting first ([Conn.Poll]
//     with a zero timeout tells whether anything is).
//   - Once a readable Conn has been shared, this process reads from it
//     exactly the bytes of each frame and no more, as it used to, so
//     that it never takes bytes another reader was to get.
//   - [Conn.Poll] reports a message waiting when the Conn holds buffered
//     bytes, even though the descriptor itself is empty. A poll(2) or
//     select(2) of the descriptor made elsewhere does not see them.
//   - Do not read the descriptor behind a Conn by other means (the file
//     given to [New], say) while the Conn receives.
//
// # Blocking, contexts and Close
//
// Every blocking call returns when its Conn is closed, with [ErrClosed]:
// [Conn.Close] wakes at once every Send, Recv and Poll of this process
// blocked on the Conn. Close is idempotent. Other processes holding the
// same end keep their own descriptors open.
//
// The Context variants give up when ctx ends before the frame has begun:
// [Conn.RecvContext] and [Conn.RecvBytesContext] before its first byte has
// arrived, [Conn.SendContext] and [Conn.SendBytesContext] before its first
// byte is written. Then they return ctx.Err() and have consumed or written
// nothing. Once a frame has begun it is finished regardless of ctx, so that
// no peer ever sees half a frame from a cancelled call; Close still
// interrupts it. [Conn.PollContext] waits until a message is waiting or
// ctx ends.
//
// [Conn.Poll] reports whether Recv would return without blocking: true when
// a message is waiting, and also when the peer has closed (Recv then
// returns io.EOF) or the Conn's receive side is broken. A zero timeout
// does not wait, a negative one waits as long as it takes.
//
// # Errors
//
// Test errors with errors.Is; never match their text.
//
//   - io.EOF: the peer closed, or died, between frames.
//   - io.ErrUnexpectedEOF: the peer closed, or died, inside a frame.
//   - [ErrProtocol]: a header no writer of this format produces (a negative
//     length other than -1).
//   - [ErrMessageTooLarge]: a payload over the maximum. A Send is refused
//     before anything is written; on receive, the frame cannot be skipped.
//   - [ErrClosed]: the Conn was closed by this process.
//   - [ErrPeerClosed]: Send found the other end gone (EPIPE, ECONNRESET).
//   - [ErrReadOnly], [ErrWriteOnly]: the wrong end of a Simplex pipe.
//   - [ErrNotInherited], [ErrWrongKind], [ErrBadFD]: from [Inherit].
//   - [ErrAuth]: the authkey handshake failed (Dial).
//   - [ErrInsecure]: tcp without an authkey or TLS (Listen, Dial).
//   - [ErrNotUnixSocket], [ErrNotShared], [ErrUnexpectedShare],
//     [ErrNameTaken]: handing objects over with SendShare and RecvShare.
//
// After io.ErrUnexpectedEOF, ErrProtocol or ErrMessageTooLarge on receive
// the position in the stream is lost: every later receive returns the same
// error instead of reading garbage.
//
// # When a process dies
//
// A process killed at any moment, even with SIGKILL, costs its peers no
// hang and no corrupted frame. The kernel closes its descriptors: a
// receiver blocked in Recv returns io.EOF (or io.ErrUnexpectedEOF if the
// dead process was in the middle of a frame), and a sender gets
// ErrPeerClosed instead of a SIGPIPE. This holds only when no other process
// keeps a copy of the dead process's end open, which is why the parent
// closes what it shared after cmd.Start.
package conn
