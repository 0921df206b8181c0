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
// by that many (at most the items of one packet for a consumer).
//
// # Limits
//
// Linux only. Items up to MaxItemSize (1 GiB) encoded. A bounded queue's
// maxsize is limited by the capacity of a pipe: about one million with the
// default fs.pipe-max-size of 1 MiB; New refuses more with ErrMaxsize.
package mq
