// Package simplequeue is an unbounded FIFO queue of items shared by any
// number of processes with a synchronous Put: Python's
// multiprocessing.SimpleQueue for Go programs, with no lock on the data
// path.
//
// The parent creates the queue and hands it to its children; each child
// opens it by name:
//
//	results, err := simplequeue.New[Result]()
//	results.Share(cmd, "results")                        // before cmd.Start
//
//	results, err := simplequeue.Inherit[Result]("results") // in the child
//	err = results.Put(ctx, r)
//
// Items are encoded with msgpack (github.com/vmihailenco/msgpack/v5) in the
// process that puts them, so an item that cannot be encoded fails at
// [Queue.Put], in the caller.
//
// # Semantics
//
// [Queue.Put] returns once the item is in the kernel, where any process can
// get it and where it survives the exit of the process that put it: there
// is nothing to flush, and a process may exit right after a Put. Put waits
// while the queue's socket is full (a few hundred small items). Every item
// is received exactly once, whatever the number of producer and consumer
// processes; with one consumer, each producer's items arrive in the order
// it put them. [Queue.Get] and [Queue.Put] give up when their ctx ends, and
// leave the queue unchanged; [Queue.Close] wakes every blocked
// call of its process with ErrClosed.
//
// Use the queue package instead for a bounded queue, for Qsize, Full,
// TryPut and TryGet, or for throughput: its Put buffers and sends several
// items per packet, several times faster than one synchronous send per
// item.
//
// # What a crash may cost
//
// The queue is one SOCK_SEQPACKET socketpair, and each item one packet: a
// packet is sent with one system call and received whole with one, so a
// process killed with SIGKILL at any moment leaves no partial item and
// holds no lock. A killed consumer loses the items it had received and not
// yet returned from Get: one, or up to 8 when it handles items quickly (a
// consumer then takes several waiting items with one system call, as many
// as about 100 µs of its work); a killed producer has delivered exactly
// the items whose Put returned. An
// item larger than a packet streams through a pipe of its own: if its
// producer dies midway, the consumer drops that item alone; if its
// consumer dies midway, the producer's Put returns an error for that item
// alone; if its producer is stopped midway (SIGSTOP), a consumer's Get
// returns on its ctx and its next Get goes on with the item. Every other
// process goes on, sees no corrupted item and does not hang. Packets that
// no queue writes (a process holding the descriptors may send anything)
// are reported once, by the Get that meets them, as in package queue.
//
// # Limits
//
//   - Linux only.
//   - An item is at most [MaxItemSize] (1 GiB) encoded. Items up to 64 KiB
//     encoded travel in the socket; larger ones each get a pipe of their
//     own, passed along with a small packet, and the Put that sends one
//     returns when its last byte is in the pipe.
//   - A process gives each queue it opens 2 descriptors.
package simplequeue
