// Package mq is the engine of mproc's queues (simplequeue, queue,
// joinable): a multi-process FIFO of msgpack-encoded items with no lock on
// the data path.
//
// # Transport
//
// A queue is one SOCK_SEQPACKET socketpair that every process holds both
// ends of. Items are sent on the first end and received from the second;
// each send is one sendmsg of one packet and each receive one recvmsg of
// one whole packet, so that packets never interleave or split, whatever
// the number of processes on either side, and a process killed at any
// moment leaves no partial packet behind. A packet carries one or more
// frames in conn's format (a 4-byte big-endian length, then msgpack), up
// to 64 KiB; an item larger than that travels through a pipe of its own,
// whose read end the packet carries (see big.go). A bounded queue adds a
// token pipe that holds one byte per free slot (tokens.go). A packet that
// never leaves the socketpair describes the queue to the processes that
// inherit it (meta.go).
//
// # Sending
//
// Put encodes in the caller. When nothing of this process is waiting to
// be sent it hands the item to the kernel at once; when the socket is
// full, it keeps the encoded item in a per-process backlog that one
// flusher goroutine sends in order, several items per packet. How many is
// set by measuring how fast the consumers drain the queue (see pacer): a
// packet's items all go to the consumer that receives it, which keeps the
// extra ones for its next Gets, so packets hold about 100 µs of the
// consumers' work: many items when items are quick to handle (this is
// what makes a queue several times faster than one packet per item), one
// when they are slow (so that idle consumers are not starved). NewSync
// makes a queue whose Put always sends in the caller, one item per packet;
// its consumers take up to 8 waiting packets per system call instead, as
// many as about 100 µs of their own work.
//
// # What a crash may cost
//
// A process killed with SIGKILL loses only what it held: the items it had
// buffered and not sent, the items it had received and not returned from
// Get (one packet, or for a synchronous queue up to 8 one-item packets),
// the large item it was sending or receiving. Every other process
// goes on, sees no corrupted item and does not hang. In a bounded queue
// each item holds a slot until a Get returns it, so the slots of the items
// a killed process held are lost with them: the queue's capacity shrinks
// by that many, at most the items of one packet for a consumer, and for a
// producer at most maxBuffered (1024): a bounded queue's producer buffers no
// more (its Puts wait for room in its backlog before taking a slot). A
// large item whose producer dies mid-body keeps its slot (and joinable's
// count): a body that ends early gives nothing back (see below).
//
// # Foreign packets
//
// Any process that holds the descriptors can send anything. A packet no
// mq writer produces (not whole frames, a frame that is not exactly one
// msgpack value or that nests deeper than codec.MaxDepth, a descriptor
// where none belongs, a stub without its pipe or whose descriptor is not
// a pipe) is reported once, by the Get that meets it (ErrCorrupt), gives
// back no slot and runs no hook. A large item's body is read nonblocking,
// with the Get's ctx: a stub whose pipe is kept open and never written
// costs a Get its ctx (the next Get of the process goes on with it), and
// Close interrupts it. A body that ends early is dropped without giving
// anything back, because a forged stub and the item of a producer killed
// mid-body look the same. A well-formed item sent without a slot is
// delivered like any other, but gives no slot back once the token pipe
// holds maxsize tokens. What stays possible: such a process can add
// well-formed items, consume items, or take the token pipe's bytes.
//
// # Close
//
// Close flushes the backlog, waiting as long as that takes, unless a Flush
// of this process returned on its ctx before: then Close sends what the
// socket takes at once and drops the rest (ErrDropped, with the count),
// so that Flush(ctx) then Close is bounded. Calls that race Close in the
// queue's last holder fail with ErrClosed.
//
// # Item type
//
// The engine (the unexported engine type: sender, receiver, token pipe,
// Close) is not generic: it moves encoded frames. Put's encBuf comes in
// already encoded, and a Get's payload goes out already checked
// (codec.Check) with its slot given back. Queue[T] (typed.go) is the thin
// typed layer over it: Put encodes its item in the caller (an item that
// cannot be encoded fails there), Get decodes the payload into a value
// the Queue keeps for that (so a Get of a small struct allocates only
// what the value needs), under the receive semaphore that keeps the
// payload valid until the decode is done.
//
// The description packet records T's msgpack shape (shape.go); FromFiles
// with a T of another shape fails with ErrItemType.
//
// # Limits
//
// Linux only. Items up to MaxItemSize (1 GiB) encoded. A bounded queue's
// maxsize is limited by the capacity of a pipe: about one million with the
// default fs.pipe-max-size of 1 MiB; New refuses more with ErrMaxsize.
package mq
