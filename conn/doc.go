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
// from [Inherit] in a child process.
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
// may interleave; a stream socket promises nothing. A receive reads a
// frame in several reads, so two processes receiving on one end can split
// a frame between them. For many writers or readers use the queue
// packages, which keep whole frames under any sharing.
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
